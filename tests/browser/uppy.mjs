// Shared by the Uppy scenarios (uppy_*.mjs): Uppy and its plugins from npm (package-lock.json),
// bundled with esbuild and loaded into a page of the test's static site, another origin than
// the Worker's; page-side helpers (`window.testkit`); and a log of the page's traffic to the
// Worker's S3 surface, its direct-part routes and local R2.
import { build } from "esbuild";

/** One script that sets `window.Uppy` and `window[name]` for each `{name: "npm package"}`. */
export async function uppyBundle(plugins) {
  const modules = { Uppy: "@uppy/core", ...plugins };
  const contents = Object.entries(modules)
    .map(([name, pkg]) => `import ${name} from ${JSON.stringify(pkg)}; window.${name} = ${name};`)
    .join("\n");
  const bundle = await build({
    stdin: { contents, resolveDir: process.cwd() },
    bundle: true,
    format: "iife",
    write: false,
    logLevel: "warning",
  });
  return bundle.outputFiles[0].text;
}

/** Loads the bundle and `window.testkit` into the page at hand (after a `goto` or a reload). */
export async function addUppy(page, bundle) {
  await page.addScriptTag({ content: bundle });
  await page.addScriptTag({ content: `(${pageHelpers})();` });
}

/** Opens `url` with Uppy loaded; the page's console lines, to look for CORS refusals in. */
export async function openWithUppy(page, url, bundle) {
  const lines = [];
  page.on("console", (m) => lines.push(m.text()));
  await page.goto(url);
  await addUppy(page, bundle);
  return {
    lines,
    corsBlocked: () => lines.filter((m) => m.includes("blocked by CORS policy")),
    /** Headers a script may not set (`Content-Length`, ...), which Chromium drops with a line. */
    refusedHeaders: () => lines.filter((m) => m.includes("Refused to set unsafe header")),
  };
}

/** Answers `url` (on the page's own origin) with the bytes of the file at `path`. */
export async function serveFile(page, url, path) {
  await page.route(url, (route) => route.fulfill({ path, contentType: "application/octet-stream" }));
}

/**
 * Every request the page sends to the Worker's `/s3`, as the browser sent it (`authorization`
 * from its real headers) and as the Worker answered it (`status`, and the body of each
 * ListParts answer); `phase` is whatever `traffic.phase` was when the request went out.
 */
export function s3Traffic(page, workerUrl) {
  const traffic = { phase: "", requests: [], pending: [] };
  const isS3 = (url) => url.startsWith(`${workerUrl}/s3/`);
  const byRequest = new Map();
  page.on("request", (request) => {
    if (!isS3(request.url()) || request.method() === "OPTIONS") return;
    const url = new URL(request.url());
    const seen = {
      phase: traffic.phase,
      method: request.method(),
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      status: null,
    };
    traffic.requests.push(seen);
    byRequest.set(request, seen);
    traffic.pending.push(request.allHeaders().then((h) => { seen.authorization = h.authorization ?? null; }));
  });
  recordAnswers(page, traffic, byRequest, async (seen, response) => {
    if (seen.method === "GET" && "uploadId" in seen.query) seen.body = await response?.text();
  });
  /** The log once every header and body in it has been read. */
  traffic.settled = async () => {
    await Promise.allSettled(traffic.pending);
    return traffic.requests;
  };
  return traffic;
}

/**
 * Adds to `traffic` (from `s3Traffic`, whose `phase` it shares) what direct parts (issue 22)
 * send: `traffic.r2`, every request to local R2's S3 endpoint (on the Worker's port), as the
 * browser sent it (`host`, `origin`) and as R2 answered (`status`, `etag`, or `failure`); and
 * `traffic.direct`, every part URL asked of the Worker (`kind: "url"`, with the `length`
 * asked) and every part reported to it (`kind: "report"`, with the `etag` reported).
 */
export function directTraffic(page, workerUrl, traffic) {
  Object.assign(traffic, { r2: [], direct: [] });
  const r2Path = "/cdn-cgi/local/r2/s3/";
  const partRoute = /^\/uploads\/([^/]+)\/parts\/(\d+)(\/url)?$/;
  const byRequest = new Map();
  page.on("request", (request) => {
    if (!request.url().startsWith(`${workerUrl}/`) || request.method() === "OPTIONS") return;
    const url = new URL(request.url());
    if (url.pathname.startsWith(r2Path)) {
      const seen = { phase: traffic.phase, method: request.method(), host: url.host, partNumber: Number(url.searchParams.get("partNumber")) };
      traffic.r2.push(seen);
      byRequest.set(request, seen);
      traffic.pending.push(request.allHeaders().then((h) => { seen.origin = h.origin ?? null; seen.authorization = h.authorization ?? null; }));
      return;
    }
    const [, uploadId, n, isUrl] = url.pathname.match(partRoute) ?? [];
    if (!uploadId || request.method() !== "POST") return;
    const body = JSON.parse(request.postData() ?? "{}");
    const seen = { phase: traffic.phase, kind: isUrl ? "url" : "report", uploadId, partNumber: Number(n), ...body };
    traffic.direct.push(seen);
    byRequest.set(request, seen);
  });
  recordAnswers(page, traffic, byRequest, async (seen, response) => {
    if ("host" in seen) seen.etag = response?.headers().etag ?? null;
    else if (seen.status !== 200) seen.code = (await response?.json())?.code;
  });
}

/**
 * How the requests recorded in `byRequest` (request -> its record) ended: each record gets the
 * answer's `status`, then whatever `read(record, response)` takes from the answer (awaited
 * through `traffic.pending`), or the `failure` of a request that got none.
 */
function recordAnswers(page, traffic, byRequest, read) {
  page.on("requestfinished", (request) => {
    const seen = byRequest.get(request);
    if (!seen) return;
    traffic.pending.push((async () => {
      const response = await request.response();
      seen.status = response?.status() ?? null;
      await read(seen, response);
    })());
  });
  page.on("requestfailed", (request) => {
    const seen = byRequest.get(request);
    if (seen) seen.failure = request.failure()?.errorText ?? "failed";
  });
}

/**
 * Waits until Golden Retriever's IndexedDB snapshot for Uppy `uppyId` names file `fileId`'s
 * upload (its `s3Multipart`) and, when it keeps the file's bytes (`keepsBlob`), holds them:
 * it writes on its own schedule (throttled), and a tab that closes a moment after that
 * leaves what the test then reloads from. Answers the saved state and the blob's size.
 */
export async function savedUpload(page, { uppyId, fileId, keepsBlob }) {
  return await page.evaluate(async ({ uppyId, fileId, keepsBlob }) => {
    const open = () => new Promise((resolve, reject) => {
      const request = indexedDB.open("uppy-blobs");
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
    const get = (db, store, id) => new Promise((resolve, reject) => {
      const request = db.transaction([store]).objectStore(store).get(id);
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
    const deadline = Date.now() + 20_000;
    for (;;) {
      const db = await open();
      try {
        const names = Array.from(db.objectStoreNames);
        if (names.includes("metadata") && names.includes("files")) {
          const snapshot = await get(db, "metadata", uppyId);
          const state = snapshot && JSON.parse(snapshot.metadata).files?.[fileId]?.s3Multipart;
          const blob = await get(db, "files", `${uppyId}!${fileId}`);
          if (state?.uploadId && (blob?.data || !keepsBlob)) return { s3Multipart: state, blobSize: blob?.data.size ?? null };
        }
      } finally {
        db.close();
      }
      if (Date.now() > deadline) throw new Error("Golden Retriever never saved the upload's state");
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }, { uppyId, fileId, keepsBlob });
}

// Runs in the page: serialised with Function.prototype.toString, so self-contained.
function pageHelpers() {
  const hex = (buffer) => Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, "0")).join("");
  const s3Key = (key) => key.split("/").map(encodeURIComponent).join("/"); // S3's path, `/` kept
  window.testkit = {
    sha256: async (data) => hex(await crypto.subtle.digest("SHA-256", data)),
    randomBytes: (size) => {
      const data = new Uint8Array(size);
      for (let i = 0; i < size; i += 65536) crypto.getRandomValues(data.subarray(i, Math.min(size, i + 65536)));
      return data;
    },
    /** The bytes of a file the test serves on the page's origin (`serveFile`). */
    fetchFile: async (path) => await (await fetch(path)).blob(),
    /**
     * After a reload, `uppy` (built as before it, with Golden Retriever) resumes its one file,
     * filling in `out`: waits for the restore, adds the file (`/file.bin`, as `name`) again
     * when it came back a "ghost" without its bytes (Uppy then keeps the ghost's state,
     * `s3Multipart` included), confirms the restore (what Dashboard's "resume" does) and
     * notes what Uppy said once it completes. Call it right after building `uppy`.
     */
    resumeRestored: async (uppy, name, out) => {
      await new Promise((resolve) => uppy.once("restored", resolve));
      const file = uppy.getFiles()[0];
      out.restored = file && { id: file.id, isGhost: file.isGhost, size: file.data?.size ?? null, s3Multipart: file.s3Multipart ?? null };
      if (file?.isGhost) {
        uppy.addFile({ name, type: "application/octet-stream", data: await window.testkit.fetchFile("/file.bin") });
        const again = uppy.getFile(file.id);
        out.reselected = { isGhost: again.isGhost, size: again.data?.size ?? null, s3Multipart: again.s3Multipart ?? null };
      }
      const complete = new Promise((resolve) => uppy.once("complete", resolve));
      uppy.emit("restore-confirmed");
      const result = await complete;
      out.successful = result.successful.length;
      out.failed = result.failed.map((f) => String(f.error));
    },
    /** `getCredentials` for @uppy/aws-s3: S3 credentials from the Worker's POST /credentials. */
    credentialsFrom: (api, token, onCall) => async () => {
      onCall();
      const answer = await fetch(`${api}/credentials`, { method: "POST", headers: { Authorization: `Bearer ${token}` } });
      const c = await answer.json();
      return {
        credentials: { accessKeyId: c.AccessKeyId, secretAccessKey: c.SecretAccessKey, sessionToken: c.SessionToken, expiration: c.Expiration },
        region: "auto",
      };
    },
    /**
     * `signRequest` for @uppy/aws-s3 6.x (src/s3-client/types.ts: PresignableRequest in,
     * PresignedResponse out): the S3 URL of each request on the Worker's `/s3/{bucket}`, with
     * the S3 subresource its method and fields name, and the user's JWT as a bearer token.
     */
    // The README's "S3 clients" shows this hook.
    bearerSigner: (api, bucket, token) => ({ method, key, uploadId, partNumber }) => {
      const query = new URLSearchParams();
      if (partNumber !== undefined) query.set("partNumber", partNumber);
      if (uploadId !== undefined) query.set("uploadId", uploadId);
      const sub = method === "POST" && uploadId === undefined ? "uploads" : query.toString();
      return { url: `${api}/s3/${bucket}/${s3Key(key)}${sub ? `?${sub}` : ""}`, headers: { Authorization: `Bearer ${token}` } };
    },
    /**
     * Direct parts (issue 22) for @uppy/aws-s3 6.x: `signRequest` sends each UploadPart's bytes
     * straight to R2 with a URL from r2mpu's `POST /uploads/{id}/parts/{n}/url`, and every
     * other request (and every part, once the Worker answers `501 direct_parts_unavailable`)
     * as `viaWorker` signs it. The plugin tells the hook no part's length, and R2 takes only
     * the signed one, so it is cut here as S3Uploader cuts the file, from the same
     * `getChunkSize` (an upload created over S3 has no size for the Worker to cut by). The
     * optional `report`, for `s3-multipart:part-uploaded`, records each part sent so, so that
     * ListParts lists it and a reload resumes after it; without it, complete records them.
     */
    // The README's "S3 clients" shows this hook.
    directParts: ({ uppy, api, token, getChunkSize, viaWorker }) => {
      const MiB = 1024 * 1024, auth = { Authorization: `Bearer ${token}` };
      const json = { ...auth, "Content-Type": "application/json" };
      const partLength = (size, n) => { // S3Uploader's cut: at least 5 MiB, at most 10,000 parts
        let chunk = Math.max(getChunkSize ? getChunkSize({ size }) : Math.ceil(size / 10_000), 5 * MiB);
        if (Math.ceil(size / chunk) > 10_000) chunk = Math.ceil(size / 10_000);
        return Math.min(chunk, size - (n - 1) * chunk);
      };
      let offered = true; // until the Worker answers 501
      const direct = new Set(); // "uploadId n" of parts sent straight to R2, not yet reported
      const reports = new Map(); // uploadId -> its reports on their way; complete waits for them
      const signRequest = async (request) => {
        const { method, uploadId, partNumber } = request;
        if (method === "POST" && uploadId !== undefined) await Promise.allSettled(reports.get(uploadId) ?? []);
        const file = offered && method === "PUT" && partNumber !== undefined
          && uppy.getFiles().find((f) => f.s3Multipart?.uploadId === uploadId);
        if (!file) return viaWorker(request);
        const answer = await fetch(`${api}/uploads/${uploadId}/parts/${partNumber}/url`, {
          method: "POST", headers: json, body: JSON.stringify({ length: partLength(file.data.size, partNumber) }),
        });
        if (answer.status === 501) { offered = false; return viaWorker(request); }
        if (!answer.ok) throw new Error(`no URL for part ${partNumber}: ${(await answer.json()).detail}`);
        const { url, headers } = await answer.json();
        direct.add(`${uploadId} ${partNumber}`);
        // The browser sets Content-Length itself, and refuses a script's.
        const rest = Object.entries(headers).filter(([name]) => name.toLowerCase() !== "content-length");
        return { url, headers: Object.fromEntries(rest) };
      };
      const report = (file, { PartNumber, ETag }) => {
        const { uploadId } = uppy.getFile(file.id).s3Multipart; // the event's `file` may predate it
        if (!direct.delete(`${uploadId} ${PartNumber}`)) return; // through the Worker: recorded there
        const sent = fetch(`${api}/uploads/${uploadId}/parts/${PartNumber}`, {
          method: "POST", headers: json, body: JSON.stringify({ etag: ETag }),
        });
        reports.set(uploadId, [...(reports.get(uploadId) ?? []), sent]);
        return sent;
      };
      return { signRequest, report };
    },
  };
}
