// Uppy with @uppy/tus and its DEFAULT retries, in Chromium, through the ResetProxy
// (tests/resets_clients.rs), which breaks the PATCH mid-body; the page's origin is the proxy's.
// Reports every tus response (method, status, epoch ms) to time the re-send, and whether the
// object read back is the data sent.
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
  await page.goto(env("PAGE_URL"));
  await page.addScriptTag({ content: bundle.outputFiles[0].text });
  return await page.evaluate(async ({ token, size }) => {
    const digest = async (buf) => Array.from(new Uint8Array(await crypto.subtle.digest("SHA-256", buf)), (b) => b.toString(16).padStart(2, "0")).join("");
    const data = new Uint8Array(size);
    for (let i = 0; i < size; i += 65536) crypto.getRandomValues(data.subarray(i, Math.min(size, i + 65536)));
    const out = { responses: [] };
    try {
      const uppy = new window.Uppy().use(window.Tus, {
        endpoint: `${location.origin}/tus`,
        headers: { Authorization: `Bearer ${token}` },
        onAfterResponse: (req, res) => { out.responses.push({ method: req.getMethod(), status: res.getStatus(), at: Date.now() }); },
      });
      uppy.addFile({ name: "uppy-reset/interrupted.bin", type: "application/octet-stream", data: new Blob([data]) });
      const result = await uppy.upload();
      out.successful = result.successful.length;
      out.failed = result.failed.map((f) => String(f.error));
      const back = await fetch("/objects/uppy-reset/interrupted.bin", { headers: { Authorization: `Bearer ${token}` } });
      out.readStatus = back.status;
      out.identical = (await digest(await back.arrayBuffer())) === (await digest(data));
    } catch (error) {
      out.error = String(error);
    }
    return out;
  }, { token: env("TOKEN"), size: Number(env("SIZE")) });
});
