// Uppy with @uppy/aws-s3 6.3.1 and @uppy/golden-retriever 6.0.0 (npm) on a page of another
// origin, signRequest + bearer as in uppy_s3.mjs: an S3 multipart upload of FILE in 5 MiB parts
// is cut off by reloading the page once part HOLD_FROM's PUT goes out (held, so it never reaches
// the Worker), after Golden Retriever has saved the file's state (with `s3Multipart`, {uploadId,
// key}) in IndexedDB, and its blob when it keeps one (KEEPS_BLOB: files up to 10 MiB, its
// IndexedDBStore's maxFileSize). The reloaded page builds the same Uppy; Golden Retriever
// restores the file, as a "ghost" without its bytes when it kept none, which the page then adds
// again as a user re-selects it; confirming the restore (what Dashboard's "resume" does) has the
// plugin ask ListParts and send the parts it does not list, then complete.
import { env, run } from "./browser.mjs";
import { addUppy, openWithUppy, s3Traffic, savedUpload, serveFile, uppyBundle } from "./uppy.mjs";

const bundle = await uppyBundle({ AwsS3: "@uppy/aws-s3", GoldenRetriever: "@uppy/golden-retriever" });
const UPPY_ID = "resumable";

// The page's Uppy, the same before and after the reload (its id names Golden Retriever's store).
function makeUppy({ api, token, key, uppyId }) {
  return new Uppy({ id: uppyId })
    .use(GoldenRetriever)
    .use(AwsS3, {
      signRequest: testkit.bearerSigner(api, "r2mpu", token),
      shouldUseMultipart: true,
      getChunkSize: () => 5 * 1024 * 1024,
      generateObjectKey: () => key,
    });
}

await run(async (page) => {
  const [api, pageUrl, holdFrom] = [env("WORKER_URL"), env("PAGE_URL"), Number(env("HOLD_FROM"))];
  const keepsBlob = env("KEEPS_BLOB") === "true";
  const args = { api, token: env("TOKEN"), key: env("KEY"), uppyId: UPPY_ID, make: `${makeUppy}` };
  const traffic = s3Traffic(page, api);
  traffic.phase = "before";
  await serveFile(page, `${pageUrl}/file.bin`, env("FILE"));

  // Part HOLD_FROM's PUT (and any later one) is held here, never sent, until the reload
  // cancels it; the reloaded page's requests all go through.
  let held;
  const holding = new Promise((resolve) => { held = resolve; });
  const isHeld = (url) =>
    traffic.phase === "before" && url.pathname.startsWith("/s3/") && Number(url.searchParams.get("partNumber")) >= holdFrom;
  await page.route(isHeld, (route) => held(Number(new URL(route.request().url()).searchParams.get("partNumber"))));

  const console_ = await openWithUppy(page, pageUrl, bundle);
  const before = await page.evaluate(async (args) => {
    const uppy = eval(`(${args.make})`)(args);
    window.uppy = uppy;
    const data = await testkit.fetchFile("/file.bin");
    uppy.addFile({ name: "resumed.bin", type: "application/octet-stream", data });
    window.uploadError = null;
    uppy.upload().catch((e) => { window.uploadError = String(e); });
    return { origin: location.origin, fileId: uppy.getFiles()[0].id };
  }, args);
  const heldPart = await holding;

  // Reload only once Golden Retriever's snapshot names the upload, as it would be for a user
  // whose tab closes a moment later.
  before.saved = await savedUpload(page, { uppyId: UPPY_ID, fileId: before.fileId, keepsBlob });
  before.uploadError = await page.evaluate(() => window.uploadError);
  before.heldPart = heldPart;

  traffic.phase = "after";
  await page.reload();
  await addUppy(page, bundle);
  const after = await page.evaluate(async (args) => {
    const out = {};
    try {
      const uppy = eval(`(${args.make})`)(args);
      await testkit.resumeRestored(uppy, "resumed.bin", out);
      const back = await fetch(`${args.api}/objects/${args.key}`, { headers: { Authorization: `Bearer ${args.token}` } });
      out.readStatus = back.status;
      out.etag = back.headers.get("etag");
    } catch (error) {
      out.error = String(error);
    }
    return out;
  }, args);
  return { before, after, s3: await traffic.settled(), corsConsole: console_.corsBlocked(), console: console_.lines.slice(-15) };
});
