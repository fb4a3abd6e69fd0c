// Uppy with @uppy/aws-s3 6.3.1 (npm) on a page of another origin, uploading FILE in 5 MiB parts
// to {worker}/s3/r2mpu/KEY, signed one of two ways (SIGNING):
// - `credentials`: getCredentials asks r2mpu's POST /credentials for S3 credentials with the
//   page's bearer token, and the plugin presigns every S3 request itself (SigV4 query auth)
//   against s3Endpoint = {worker}/s3/r2mpu;
// - `bearer`: a signRequest hook names each request's URL on /s3 and hands the page's JWT as
//   `Authorization: Bearer`, which the plugin sends.
// Reports what Uppy said, every /s3 request as the browser sent it, and the object read back.
import { env, run } from "./browser.mjs";
import { openWithUppy, s3Traffic, serveFile, uppyBundle } from "./uppy.mjs";

const bundle = await uppyBundle({ AwsS3: "@uppy/aws-s3" });

await run(async (page) => {
  const [api, pageUrl] = [env("WORKER_URL"), env("PAGE_URL")];
  const traffic = s3Traffic(page, api);
  await serveFile(page, `${pageUrl}/file.bin`, env("FILE"));
  const console_ = await openWithUppy(page, pageUrl, bundle);
  const result = await page.evaluate(async ({ api, token, key, signing }) => {
    const out = { origin: location.origin, credentialCalls: 0 };
    try {
      const data = await testkit.fetchFile("/file.bin");
      const signed = signing === "bearer"
        ? { signRequest: testkit.bearerSigner(api, "r2mpu", token) }
        : { s3Endpoint: `${api}/s3/r2mpu`, region: "auto", getCredentials: testkit.credentialsFrom(api, token, () => out.credentialCalls++) };
      const uppy = new Uppy().use(AwsS3, {
        ...signed,
        shouldUseMultipart: true,
        getChunkSize: () => 5 * 1024 * 1024,
        generateObjectKey: () => key,
      });
      uppy.addFile({ name: "from-uppy.bin", type: "application/octet-stream", data });
      const result = await uppy.upload();
      out.successful = result.successful.length;
      out.failed = result.failed.map((f) => String(f.error));
      out.location = result.successful[0]?.response?.body?.location ?? result.successful[0]?.uploadURL;
      const back = await fetch(`${api}/objects/${key}`, { headers: { Authorization: `Bearer ${token}` } });
      out.readStatus = back.status;
      out.etag = back.headers.get("etag");
      out.identical = (await testkit.sha256(await back.arrayBuffer())) === (await testkit.sha256(await data.arrayBuffer()));
    } catch (error) {
      out.error = String(error);
    }
    return out;
  }, { api, token: env("TOKEN"), key: env("KEY"), signing: env("SIGNING") });
  result.s3 = await traffic.settled();
  result.corsConsole = console_.corsBlocked();
  result.console = console_.lines.slice(-10);
  return result;
});
