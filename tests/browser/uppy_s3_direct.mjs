// Uppy with @uppy/aws-s3 6.3.1 (npm) on a page of another origin, with direct parts (issue 22):
// the page's signRequest is `testkit.directParts` over `testkit.bearerSigner`, so each part's
// bytes go straight to R2 when the Worker offers direct parts and everything else goes to its
// /s3 surface with the page's JWT. FILE is uploaded to KEY in 5 MiB parts; with REPORTS=true
// the page also reports each part R2 took (`s3-multipart:part-uploaded`).
//
// HOLD_FROM=n: with @uppy/golden-retriever 6.0.0, the upload is cut off by reloading the page
// once part n is about to be signed (the page's hook holds it, so neither its URL nor its
// bytes go out: no Playwright route is installed, which would answer R2's CORS preflights
// itself) and the reports of the parts before it are answered; the reloaded page resumes the
// restored upload (as uppy_s3_resume.mjs does), its hook holding nothing.
// Reports what Uppy said, every request to /s3, to the direct-part routes and to R2, and the
// object's ETag as read back.
import { env, run } from "./browser.mjs";
import { addUppy, directTraffic, openWithUppy, s3Traffic, savedUpload, serveFile, uppyBundle } from "./uppy.mjs";

const holdFrom = process.env.HOLD_FROM ? Number(process.env.HOLD_FROM) : null;
const bundle = await uppyBundle({ AwsS3: "@uppy/aws-s3", ...(holdFrom ? { GoldenRetriever: "@uppy/golden-retriever" } : {}) });

// The page's Uppy, the same before and after a reload (its id names Golden Retriever's store);
// `holdFrom` only before it.
function makeUppy({ api, token, key, reports, holdFrom }) {
  const uppy = new Uppy({ id: "direct" });
  if (window.GoldenRetriever) uppy.use(GoldenRetriever);
  const getChunkSize = () => 5 * 1024 * 1024;
  const viaWorker = testkit.bearerSigner(api, "r2mpu", token);
  const direct = testkit.directParts({ uppy, api, token, getChunkSize, viaWorker });
  window.reports = [];
  if (reports) uppy.on("s3-multipart:part-uploaded", (file, part) => window.reports.push(direct.report(file, part)));
  const held = (request) => {
    window.heldPart = request.partNumber;
    return new Promise(() => {}); // until the reload
  };
  const signRequest = (request) =>
    holdFrom && request.partNumber >= holdFrom ? held(request) : direct.signRequest(request);
  return uppy.use(AwsS3, { signRequest, shouldUseMultipart: true, getChunkSize, generateObjectKey: () => key });
}

/** In the page: the object as read back, into `out`. */
async function readBack({ api, token, key }, out) {
  const back = await fetch(`${api}/objects/${key}`, { headers: { Authorization: `Bearer ${token}` } });
  out.readStatus = back.status;
  out.etag = back.headers.get("etag");
}

await run(async (page) => {
  const [api, pageUrl] = [env("WORKER_URL"), env("PAGE_URL")];
  const args = { api, token: env("TOKEN"), key: env("KEY"), reports: env("REPORTS") === "true", holdFrom };
  const functions = { make: `${makeUppy}`, readBack: `${readBack}` };
  const traffic = s3Traffic(page, api);
  directTraffic(page, api, traffic);
  await serveFile(page, `${pageUrl}/file.bin`, env("FILE"));
  const console_ = await openWithUppy(page, pageUrl, bundle);
  const result = { origin: await page.evaluate(() => location.origin) };

  if (holdFrom === null) {
    Object.assign(result, await page.evaluate(async ({ args, functions }) => {
      const out = {};
      try {
        const uppy = eval(`(${functions.make})`)(args);
        uppy.addFile({ name: "direct.bin", type: "application/octet-stream", data: await testkit.fetchFile("/file.bin") });
        const result = await uppy.upload();
        out.successful = result.successful.length;
        out.failed = result.failed.map((f) => String(f.error));
        await Promise.allSettled(window.reports);
        await eval(`(${functions.readBack})`)(args, out);
      } catch (error) {
        out.error = String(error);
      }
      return out;
    }, { args, functions }));
  } else {
    traffic.phase = "before";
    const before = await page.evaluate(async ({ args, functions }) => {
      const uppy = eval(`(${functions.make})`)(args);
      const data = await testkit.fetchFile("/file.bin");
      uppy.addFile({ name: "direct.bin", type: "application/octet-stream", data });
      window.uploadError = null;
      uppy.upload().catch((e) => { window.uploadError = String(e); });
      return { fileId: uppy.getFiles()[0].id };
    }, { args, functions });
    before.heldPart = await (await page.waitForFunction(() => window.heldPart, null, { timeout: 60_000 })).jsonValue();
    // Every part before the held one is through by now (the plugin sends them in turn).
    before.reports = await page.evaluate(async () => (await Promise.all(window.reports)).map((r) => r?.status ?? null));
    before.saved = await savedUpload(page, { uppyId: "direct", fileId: before.fileId, keepsBlob: false });
    before.uploadError = await page.evaluate(() => window.uploadError);

    traffic.phase = "after";
    await page.reload();
    await addUppy(page, bundle);
    const after = await page.evaluate(async ({ args, functions }) => {
      const out = {};
      try {
        const uppy = eval(`(${functions.make})`)({ ...args, holdFrom: null });
        await testkit.resumeRestored(uppy, "direct.bin", out);
        await Promise.allSettled(window.reports);
        await eval(`(${functions.readBack})`)(args, out);
      } catch (error) {
        out.error = String(error);
      }
      return out;
    }, { args, functions });
    Object.assign(result, { before, after });
  }
  result.s3 = await traffic.settled();
  Object.assign(result, { r2: traffic.r2, direct: traffic.direct });
  result.corsConsole = console_.corsBlocked();
  result.refusedHeaders = console_.refusedHeaders();
  result.console = console_.lines.slice(-15);
  return result;
});
