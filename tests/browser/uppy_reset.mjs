// Uppy with @uppy/tus and its DEFAULT retries, in Chromium, through the ResetProxy
// (tests/resets_clients.rs), which breaks the PATCH mid-body; the page's origin is the proxy's.
// Reports every tus response (method, status, epoch ms) to time the re-send, and whether the
// object read back is the data sent.
import { env, run } from "./browser.mjs";
import { openWithUppy, uppyBundle } from "./uppy.mjs";

const bundle = await uppyBundle({ Tus: "@uppy/tus" });

await run(async (page) => {
  await openWithUppy(page, env("PAGE_URL"), bundle);
  return await page.evaluate(async ({ token, size }) => {
    const data = testkit.randomBytes(size);
    const out = { responses: [] };
    try {
      const uppy = new Uppy().use(Tus, {
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
      out.identical = (await testkit.sha256(await back.arrayBuffer())) === (await testkit.sha256(data));
    } catch (error) {
      out.error = String(error);
    }
    return out;
  }, { token: env("TOKEN"), size: Number(env("SIZE")) });
});
