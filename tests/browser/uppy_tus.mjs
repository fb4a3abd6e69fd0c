// Uppy with @uppy/tus (npm, tests/browser/uppy.mjs) on a page of another origin: a file in
// chunks that do not divide the part size, through tus, then read back and compared.
import { env, run } from "./browser.mjs";
import { openWithUppy, uppyBundle } from "./uppy.mjs";

const bundle = await uppyBundle({ Tus: "@uppy/tus" });

await run(async (page) => {
  const console_ = await openWithUppy(page, env("PAGE_URL"), bundle);
  const result = await page.evaluate(async ({ api, token, size }) => {
    const data = testkit.randomBytes(size);
    const out = { origin: location.origin };
    try {
      const uppy = new Uppy().use(Tus, {
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
      out.identical = (await testkit.sha256(await back.arrayBuffer())) === (await testkit.sha256(data));
    } catch (error) {
      out.error = String(error);
    }
    return out;
  }, { api: env("WORKER_URL"), token: env("TOKEN"), size: Number(env("SIZE")) });
  result.corsConsole = console_.corsBlocked();
  return result;
});
