// @aws-sdk/lib-storage's Upload under Node against r2mpu's /s3: FILE as KEY in 5 MiB parts,
// 4 at a time, then GetObject back. Prints one JSON line: the ETag, the most UploadPart
// requests seen in flight at once, and the bytes read back as base64 of their length check.
// Env: S3_ENDPOINT, S3_BUCKET, S3_CREDENTIALS (the JSON of POST /credentials).
import { readFileSync, writeFileSync } from "node:fs";
import { S3Client, GetObjectCommand } from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";

const [file, key, out] = process.argv.slice(2);
const creds = JSON.parse(process.env.S3_CREDENTIALS);
const client = new S3Client({
  endpoint: process.env.S3_ENDPOINT,
  region: "auto",
  forcePathStyle: true,
  credentials: {
    accessKeyId: creds.AccessKeyId,
    secretAccessKey: creds.SecretAccessKey,
    sessionToken: creds.SessionToken,
  },
});
let inFlight = 0;
let mostInFlight = 0;
client.middlewareStack.add(
  (next, context) => async (args) => {
    if (context.commandName !== "UploadPartCommand") return next(args);
    mostInFlight = Math.max(mostInFlight, ++inFlight);
    try {
      return await next(args);
    } finally {
      inFlight--;
    }
  },
  { step: "finalizeRequest", name: "countParts" },
);
const upload = new Upload({
  client,
  params: { Bucket: process.env.S3_BUCKET, Key: key, Body: readFileSync(file) },
  partSize: 5 * 1024 * 1024,
  queueSize: 4,
});
const done = await upload.done();
const got = await client.send(new GetObjectCommand({ Bucket: process.env.S3_BUCKET, Key: key }));
writeFileSync(out, Buffer.from(await got.Body.transformToByteArray()));
console.log(JSON.stringify({ etag: done.ETag, location: done.Location, mostInFlight }));
