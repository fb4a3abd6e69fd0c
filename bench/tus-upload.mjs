// bench/run's tus row (issue 10): tus-js-client (npm, pinned in package.json) under Node uploads
// FILE as KEY to the Worker's /tus endpoint in CHUNK_SIZE chunks (one PATCH per chunk, over
// Node's keep-alive agent), reading the file as a stream so memory stays at about one chunk.
// Env: R2MPU_ENDPOINT, R2MPU_TOKEN, CHUNK_SIZE (bytes). Prints the upload URL; exits non-zero on
// any error (no retries: a bench run that needed one should fail, not hide it).
import { createReadStream, statSync } from "node:fs";
import { Upload } from "tus-js-client";

const [file, key] = process.argv.slice(2);
if (!file || !key) {
  console.error("usage: node bench/tus-upload.mjs FILE KEY");
  process.exit(1);
}
const chunkSize = Number(process.env.CHUNK_SIZE);
const url = await new Promise((resolve, reject) => {
  const upload = new Upload(createReadStream(file, { highWaterMark: 1 << 20 }), {
    endpoint: `${process.env.R2MPU_ENDPOINT.replace(/\/$/, "")}/tus`,
    headers: { Authorization: `Bearer ${process.env.R2MPU_TOKEN}` },
    chunkSize,
    uploadSize: statSync(file).size,
    metadata: { filename: key, filetype: "application/octet-stream" },
    retryDelays: [],
    storeFingerprintForResuming: false,
    onError: reject,
    onSuccess: () => resolve(upload.url),
  });
  upload.start();
});
console.log(`uploaded ${file} as ${key}: ${url}`);
