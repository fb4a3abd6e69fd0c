// Uppy with @uppy/tus (npm, bundled here with esbuild) on a page of another origin: a file in
// chunks that do not divide the part size, through tus, then read back and compared.
import { build } from "esbuild";
import { env, run } from "./browser.mjs";

const bundle = await build({
  stdin: {
    contents: 'import Uppy from "@uppy/core"; import Tus from "@uppy/tus"; window.Uppy = Uppy; window.Tus = Tus;',
    resolveDir: process.cwd(),
  },
  bundle: true,
  format: "iife",
  write: false,
  logLevel: "warning",
});

await run(async (page) => {
  const console_ = [];
  page.on("console", (m) => console_.push(m.text()));
  await page.goto(env("PAGE_URL"));
  await page.addScriptTag({ content: bundle.outputFiles[0].text });
  const result = await page.evaluate(async ({ api, token, size }) => {
    const digest = async (buf) => Array.from(new Uint8Array(await crypto.subtle.digest("SHA-256", buf)), (b) => b.toString(16).padStart(2, "0")).join("");
    const data = new Uint8Array(size);
    for (let i = 0; i < size; i += 65536) crypto.getRandomValues(data.subarray(i, Math.min(size, i + 65536)));
    const out = { origin: location.origin };
    try {
      const uppy = new window.Uppy().use(window.Tus, {
        endpoint: `${api}/tus`,
        headers: { Authorization: `Bearer ${token}` },
        chunkSize: 3 * 1024 * 1024 + 17,
        retryDelays: [],
      });
      uppy.addFile({ name: "uppy/from-another-origin.bin", type: "application/octet-stream", data: new Blob([data]) });
      const result = await uppy.upload();
      out.successful = result.successful.length;
      out.failed = result.failed.map((f) => String(f.error));
      out.uploadURL = result.successful[0]?.tus?.uploadUrl ?? result.successful[0]?.uploadURL;
      const back = await fetch(`${api}/objects/uppy/from-another-origin.bin`, { headers: { Authorization: `Bearer ${token}` } });
      out.readStatus = back.status;
      out.identical = (await digest(await back.arrayBuffer())) === (await digest(data));
    } catch (error) {
      out.error = String(error);
    }
    return out;
  }, { api: env("WORKER_URL"), token: env("TOKEN"), size: Number(env("SIZE")) });
  result.corsConsole = console_.filter((m) => m.includes("blocked by CORS policy"));
  return result;
});
