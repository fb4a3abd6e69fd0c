// Uppy with @uppy/aws-s3 6.3.1 (npm, bundled here with esbuild) on a page of another origin, in
// its getCredentials mode: the page asks r2mpu's POST /credentials for S3 credentials with its
// bearer token, and the plugin presigns every S3 request itself (SigV4 query auth) against
// s3Endpoint = {worker}/s3/{bucket}: a multipart upload in 5 MiB parts, read back and compared.
import { build } from "esbuild";
import { env, run } from "./browser.mjs";

const bundle = await build({
  stdin: {
    contents: 'import Uppy from "@uppy/core"; import AwsS3 from "@uppy/aws-s3"; window.Uppy = Uppy; window.AwsS3 = AwsS3;',
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
  const result = await page.evaluate(async ({ api, token, size, key }) => {
    const digest = async (buf) => Array.from(new Uint8Array(await crypto.subtle.digest("SHA-256", buf)), (b) => b.toString(16).padStart(2, "0")).join("");
    const data = new Uint8Array(size);
    for (let i = 0; i < size; i += 65536) crypto.getRandomValues(data.subarray(i, Math.min(size, i + 65536)));
    const out = { origin: location.origin, credentialCalls: 0 };
    try {
      const uppy = new window.Uppy().use(window.AwsS3, {
        s3Endpoint: `${api}/s3/r2mpu`,
        region: "auto",
        shouldUseMultipart: true,
        getChunkSize: () => 5 * 1024 * 1024,
        generateObjectKey: () => key,
        getCredentials: async () => {
          out.credentialCalls++;
          const answer = await fetch(`${api}/credentials`, { method: "POST", headers: { Authorization: `Bearer ${token}` } });
          const c = await answer.json();
          return {
            credentials: { accessKeyId: c.AccessKeyId, secretAccessKey: c.SecretAccessKey, sessionToken: c.SessionToken, expiration: c.Expiration },
            region: "auto",
          };
        },
      });
      uppy.addFile({ name: "from-uppy.bin", type: "application/octet-stream", data: new Blob([data]) });
      const result = await uppy.upload();
      out.successful = result.successful.length;
      out.failed = result.failed.map((f) => String(f.error));
      out.location = result.successful[0]?.response?.body?.location ?? result.successful[0]?.uploadURL;
      const back = await fetch(`${api}/objects/${key}`, { headers: { Authorization: `Bearer ${token}` } });
      out.readStatus = back.status;
      out.etag = back.headers.get("etag");
      out.identical = (await digest(await back.arrayBuffer())) === (await digest(data));
    } catch (error) {
      out.error = String(error);
    }
    return out;
  }, { api: env("WORKER_URL"), token: env("TOKEN"), size: Number(env("SIZE")), key: env("KEY") });
  result.corsConsole = console_.filter((m) => m.includes("blocked by CORS policy"));
  result.console = console_.slice(-10);
  return result;
});
