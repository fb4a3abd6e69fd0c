// Shared by the Uppy scenarios (uppy_*.mjs): Uppy and its plugins from npm (package-lock.json),
// bundled with esbuild and loaded into a page of the test's static site, another origin than
// the Worker's; page-side helpers (`window.testkit`); and a log of the page's S3 traffic.
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
  page.on("requestfinished", (request) => {
    const seen = byRequest.get(request);
    if (!seen) return;
    traffic.pending.push((async () => {
      const response = await request.response();
      seen.status = response?.status() ?? null;
      if (seen.method === "GET" && "uploadId" in seen.query) seen.body = await response?.text();
    })());
  });
  page.on("requestfailed", (request) => {
    const seen = byRequest.get(request);
    if (seen) seen.failure = request.failure()?.errorText ?? "failed";
  });
  /** The log once every header and body in it has been read. */
  traffic.settled = async () => {
    await Promise.allSettled(traffic.pending);
    return traffic.requests;
  };
  return traffic;
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
  };
}
