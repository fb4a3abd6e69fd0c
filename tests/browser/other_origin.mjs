// An app of one's own on another origin, uploading with plain fetch as the README shows:
// create (reading Location), parts (reading each ETag header), complete, then read it back.
// On an origin ALLOWED_ORIGINS does not list, the browser must block the same calls.
import { env, run } from "./browser.mjs";

await run(async (page) => {
  const console_ = [];
  page.on("console", (m) => console_.push(m.text()));
  await page.goto(env("PAGE_URL"));
  const result = await page.evaluate(async ({ api, token, size }) => {
    const auth = { Authorization: `Bearer ${token}` };
    const digest = async (buf) => Array.from(new Uint8Array(await crypto.subtle.digest("SHA-256", buf)), (b) => b.toString(16).padStart(2, "0")).join("");
    const data = new Uint8Array(size);
    for (let i = 0; i < size; i += 65536) crypto.getRandomValues(data.subarray(i, Math.min(size, i + 65536)));
    const out = { origin: location.origin };
    try {
      const created = await fetch(`${api}/uploads`, {
        method: "POST",
        headers: { ...auth, "Content-Type": "application/json" },
        body: JSON.stringify({ key: "apps/from-another-origin.bin", size, partSize: 5 * 1024 * 1024 }),
      });
      out.createStatus = created.status;
      out.location = created.headers.get("Location");
      const upload = await created.json();
      out.uploadId = upload.uploadId;
      const parts = [];
      out.bodyEtags = [];
      for (let n = 1; n <= upload.partCount; n++) {
        const chunk = data.subarray((n - 1) * upload.partSize, n * upload.partSize);
        const put = await fetch(`${api}${out.location}/parts/${n}`, {
          method: "PUT",
          headers: { ...auth, "Content-Type": "application/octet-stream" },
          body: chunk,
        });
        out.bodyEtags.push((await put.json()).etag);
        parts.push({ partNumber: n, etag: JSON.parse(put.headers.get("ETag")) });
      }
      out.headerEtags = parts.map((p) => p.etag);
      const done = await fetch(`${api}${out.location}/complete`, {
        method: "POST",
        headers: { ...auth, "Content-Type": "application/json" },
        body: JSON.stringify({ parts }),
      });
      out.completeStatus = done.status;
      out.object = await done.json();
      const back = await fetch(`${api}/objects/apps/from-another-origin.bin`, { headers: auth });
      out.readStatus = back.status;
      out.readEtag = back.headers.get("ETag");
      out.identical = (await digest(await back.arrayBuffer())) === (await digest(data));
    } catch (error) {
      out.error = String(error);
    }
    try {
      out.healthStatus = (await fetch(`${api}/healthz`)).status;
    } catch (error) {
      out.healthError = String(error);
    }
    return out;
  }, { api: env("WORKER_URL"), token: env("TOKEN"), size: Number(env("SIZE")) });
  result.corsConsole = console_.filter((m) => m.includes("blocked by CORS policy"));
  return result;
});
