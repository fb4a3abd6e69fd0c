// tus-js-client (npm) under Node with its DEFAULT retries ([0, 1000, 3000, 5000] ms), for
// tests/resets_clients.rs: upload FILE as KEY through the ResetProxy, which breaks the PATCH
// mid-body. Prints one JSON line: every response (method, status, epoch ms), to time the re-send.
// Env: R2MPU_URL (the proxy), R2MPU_TOKEN.
import { readFileSync } from "node:fs";
import { Upload } from "tus-js-client";

const [file, key] = process.argv.slice(2);
const responses = [];
await new Promise((resolve, reject) => {
  const upload = new Upload(readFileSync(file), {
    endpoint: `${process.env.R2MPU_URL}/tus`,
    headers: { Authorization: `Bearer ${process.env.R2MPU_TOKEN}` },
    metadata: { filename: key, filetype: "application/octet-stream" },
    onAfterResponse: (req, res) => { responses.push({ method: req.getMethod(), status: res.getStatus(), at: Date.now() }); },
    onError: reject,
    onSuccess: resolve,
  });
  upload.start();
});
console.log(JSON.stringify({ responses }));
