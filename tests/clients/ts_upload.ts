/**
 * A whole upload through a TypeScript client generated from openapi.yaml (types from
 * openapi-typescript, requests by openapi-fetch): create, binary parts, resume state, complete,
 * download. Driven by tests/clients.rs, which generates the types, type-checks this file against
 * them (tsconfig.json here), bundles it with esbuild and runs it with node.
 *
 * Usage: ts_upload.mjs FILE KEY OUT   (env: R2MPU_URL, R2MPU_TOKEN, PART_SIZE)
 */

import assert from "node:assert/strict";
import { open, stat, writeFile } from "node:fs/promises";

import createClient from "openapi-fetch";
import type { paths } from "r2mpu-openapi";

/** What openapi-fetch answers: `data` on a 2xx, `error` (the problem document) otherwise. */
type Answer<T> = { data?: T; error?: unknown; response: Response };

/** The answer's data, after checking its status. */
function expect<T>({ data, error, response }: Answer<T>, status: number): T {
  assert.equal(response.status, status, `${response.url}: ${JSON.stringify(error)}`);
  assert.ok(data !== undefined, response.url);
  return data;
}

/**
 * openapi-typescript types a `format: binary` body as `string`; the bytes are what is sent, as
 * they are (`bodySerializer` passes them through and fetch sets `Content-Length`).
 */
function binary(bytes: Uint8Array): string {
  return bytes as unknown as string;
}

function env(name: string): string {
  const value = process.env[name];
  assert.ok(value, `${name} is not set`);
  return value;
}

async function main(path: string, key: string, out: string): Promise<void> {
  const client = createClient<paths>({
    baseUrl: env("R2MPU_URL"),
    headers: { Authorization: `Bearer ${env("R2MPU_TOKEN")}` },
    signal: AbortSignal.timeout(120_000),
  });
  const partSize = Number(env("PART_SIZE"));
  const { size } = await stat(path);

  const created = expect(await client.POST("/uploads", { body: { key, size, partSize } }), 201);
  const { uploadId, partCount } = created;
  assert.ok(partCount !== undefined, "a declared size gives a partCount");
  const file = await open(path, "r");
  try {
    for (let number = 1; number <= partCount; number++) {
      const buffer = new Uint8Array(partSize);
      const { bytesRead } = await file.read(buffer, 0, partSize, null);
      const chunk = buffer.subarray(0, bytesRead);
      const part = expect(
        await client.PUT("/uploads/{uploadId}/parts/{partNumber}", {
          params: { path: { uploadId, partNumber: number } },
          headers: { "Content-Type": "application/octet-stream" },
          body: binary(chunk),
          bodySerializer: (body) => body,
        }),
        200,
      );
      assert.equal(part.partNumber, number);
      assert.equal(part.size, chunk.length);
    }
  } finally {
    await file.close();
  }

  const state = expect(await client.GET("/uploads/{uploadId}", { params: { path: { uploadId } } }), 200);
  assert.deepEqual(
    state.parts.map((p) => p.partNumber),
    Array.from({ length: partCount }, (_, i) => i + 1),
  );

  const done = expect(await client.POST("/uploads/{uploadId}/complete", { params: { path: { uploadId } } }), 200);
  assert.equal(done.size, size);
  assert.equal(done.key, key);

  // openapi-fetch percent-encodes the whole key, `/` included (`%2F`); the server decodes it.
  const got = expect(await client.GET("/objects/{key}", { params: { path: { key } }, parseAs: "arrayBuffer" }), 200);
  await writeFile(out, new Uint8Array(got));
  console.log(`etag=${done.etag}`);
}

const [path, key, out] = process.argv.slice(2);
assert.ok(path && key && out, "usage: ts_upload.mjs FILE KEY OUT");
await main(path, key, out);
