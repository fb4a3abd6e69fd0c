// The upload page with direct parts (issue 22): the page, opened at PAGE_URL (the Worker under
// another host name than the one its R2 S3 endpoint is signed for, so each part's PUT is a
// cross-origin request that local R2's own CORS must let through), uploads FILE. Records every
// request to R2's S3 endpoint, every URL asked and report sent to the Worker, and every part
// PUT to the Worker, each with the phase it happened in.
//
// UNREACHABLE=n: the browser cannot reach R2 for part n (its PUTs fail as a refused connection,
// by a Playwright route; while any route is installed, Playwright answers CORS preflights
// itself, so only this scenario routes anything).
// RELOAD_AFTER=n: once n parts are reported, the page reloads (PUTs on their way die with it,
// or land unreported) and the same file is chosen again to resume.
import { env, run, screenshot } from "./browser.mjs";

const S3_PATH = "/cdn-cgi/local/r2/s3/";

await run(async (page) => {
  const unreachable = process.env.UNREACHABLE;
  const reloadAfter = process.env.RELOAD_AFTER ? Number(process.env.RELOAD_AFTER) : null;
  let phase = "before";
  const seen = { r2: [], urls: [], reports: [], workerPuts: [], corsConsole: [] };
  page.on("console", (m) => { if (/CORS|Access-Control/i.test(m.text())) seen.corsConsole.push(m.text()); });
  const toR2 = (url) => new URL(url).pathname.startsWith(S3_PATH);
  const workerPart = (url) => Number(new URL(url).pathname.match(/^\/uploads\/[0-9a-f]+\/parts\/(\d+)(\/url)?$/)?.[1] ?? 0);
  // One record per request the page sends to R2, whatever Playwright reports of it after.
  const r2Requests = new Map();
  page.on("request", (request) => {
    if (!toR2(request.url())) return;
    const url = new URL(request.url());
    const record = { phase, method: request.method(), host: url.host, partNumber: Number(url.searchParams.get("partNumber")) };
    r2Requests.set(request, record);
    seen.r2.push(record);
  });
  page.on("response", async (r) => {
    const request = r.request();
    const url = new URL(r.url());
    if (toR2(r.url())) {
      const record = r2Requests.get(request);
      record.status = r.status();
      record.etag = r.headers()["etag"] ?? null;
      record.origin = (await request.allHeaders())["origin"] ?? null;
      return;
    }
    if (request.method() === "POST" && url.pathname === "/uploads" && r.status() === 201) {
      seen.created = [...(seen.created ?? []), (await r.json()).uploadId];
    }
    const n = workerPart(r.url());
    if (!n) return;
    const uploadId = url.pathname.split("/")[2];
    if (request.method() === "PUT") seen.workerPuts.push({ phase, partNumber: n, uploadId, status: r.status() });
    else if (url.pathname.endsWith("/url")) seen.urls.push({ phase, partNumber: n, uploadId, status: r.status() });
    else seen.reports.push({ phase, partNumber: n, uploadId, status: r.status(), body: JSON.parse(request.postData()) });
  });
  page.on("requestfailed", (request) => {
    const record = r2Requests.get(request);
    if (record && record.status === undefined) record.failure = request.failure()?.errorText;
  });

  if (unreachable) {
    await page.route((url) => toR2(url.href) && url.searchParams.get("partNumber") === unreachable, (route) =>
      route.abort("connectionrefused"));
  }

  await page.goto(`${env("PAGE_URL")}/#token=${env("TOKEN")}`);
  seen.pageOrigin = await page.evaluate(() => location.origin);
  await page.setInputFiles("#file-input", env("FILE"));
  const item = page.locator("#uploads li.file").first();

  if (reloadAfter !== null) {
    while (seen.reports.filter((r) => r.status === 200).length < reloadAfter) await page.waitForTimeout(10);
    seen.reportedBeforeReload = seen.reports.filter((r) => r.status === 200).map((r) => r.partNumber);
    phase = "reloading"; // what the old page's last requests did, while it goes
    await page.reload();
    phase = "after";
    const pendingLine = page.locator("#pending li", { hasText: "stored" }).first();
    await pendingLine.waitFor();
    seen.pending = await pendingLine.textContent();
    const resumeState = page.waitForResponse((r) => r.request().method() === "GET" && /\/uploads\/[0-9a-f]+$/.test(r.url()));
    await page.setInputFiles("#file-input", env("FILE"));
    seen.resumedFrom = (await (await resumeState).json()).parts.map((p) => p.partNumber);
  }

  // Done, or given up on (the page's "error" state: fail at once rather than at the timeout).
  await page.locator("li.file[data-state=done], li.file[data-state=error]").waitFor({ timeout: 120_000 });
  if (await item.getAttribute("data-state") === "error") throw new Error(`the page gave up: ${await item.textContent()}`);
  await page.waitForTimeout(300); // let the card repaint before the screenshot
  await screenshot(page, reloadAfter !== null ? "page-direct-resumed" : unreachable ? "page-direct-fallback" : "page-direct-after-upload");
  seen.key = await item.getAttribute("data-key");
  seen.status = await item.locator(".status").textContent();
  seen.detail = await item.locator(".stats").textContent();
  return seen;
});
