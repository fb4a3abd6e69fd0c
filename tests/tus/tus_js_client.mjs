// tus-js-client (npm) under Node: upload FILE as KEY in CHUNK_SIZE chunks, stop half-way, then
// resume from the upload URL alone with a fresh client. The fresh client has no `endpoint`: given
// one, tus-js-client silently creates a new upload when its HEAD fails, and that would pass for a
// resume. Prints "stopped at OFFSET URL" and "resumed from OFFSET" (the HEAD's Upload-Offset).
// Env: R2MPU_URL, R2MPU_TOKEN, CHUNK_SIZE, TUS_PROTOCOL (default tus-v1).
import { readFileSync } from "node:fs";
import { Upload } from "tus-js-client";

const [file, key] = process.argv.slice(2);
const data = readFileSync(file);
const options = {
  headers: { Authorization: `Bearer ${process.env.R2MPU_TOKEN}` },
  chunkSize: Number(process.env.CHUNK_SIZE),
  protocol: process.env.TUS_PROTOCOL ?? "tus-v1",
  metadata: { filename: key, filetype: "application/octet-stream" },
  retryDelays: [],
};

const half = await new Promise((resolve, reject) => {
  const upload = new Upload(data, {
    ...options,
    endpoint: `${process.env.R2MPU_URL}/tus`,
    onError: reject,
    onSuccess: () => reject(new Error("finished before it was stopped")),
    onChunkComplete: (_chunk, sent, total) => {
      if (sent >= total / 2) upload.abort().then(() => resolve([sent, upload.url]), reject);
    },
  });
  upload.start();
});
console.log("stopped at", half[0], half[1]);

await new Promise((resolve, reject) => {
  const upload = new Upload(data, {
    ...options,
    uploadUrl: half[1],
    onError: reject,
    onSuccess: resolve,
    onAfterResponse: (req, res) => {
      if (req.getMethod() === "HEAD") console.log("resumed from", res.getHeader("Upload-Offset"));
    },
  });
  upload.start();
});
console.log("done");
