// The upload page, as a person uses it: open the link with #token=, choose a file in the
// input, pause and resume it from the keyboard, watch it finish; then choose another and
// cancel it. Screenshots mid-upload, paused and after.
import { env, run, screenshot, countParts } from "./browser.mjs";

/** Holds the page's PUTs of parts numbered `from` and up until `release()`, so that the
 *  upload cannot move on before the test has acted on it. */
async function holdParts(page, from) {
  let release;
  const released = new Promise((resolve) => { release = resolve; });
  await page.route((url) => Number(url.pathname.match(/\/parts\/(\d+)$/)?.[1] ?? 0) >= from, async (route) => {
    await released;
    await route.continue().catch(() => {}); // the page may have aborted it meanwhile
  });
  return release;
}

await run(async (page) => {
  const token = env("TOKEN");
  await page.goto(`${env("WORKER_URL")}/#token=${token}`);
  const parts = countParts(page);
  const releaseHeld = await holdParts(page, 2); // part 1 goes through, the others wait
  let failedOnce = false; // ... once the Worker has failed it once, which the page retries
  await page.route(/\/parts\/1$/, (route) => {
    if (failedOnce) return route.continue();
    failedOnce = true;
    return route.fulfill({ status: 503, contentType: "application/problem+json", body: '{"code":"internal"}' });
  });
  const firstStored = page.waitForResponse((r) => r.request().method() === "PUT" && r.status() === 200);
  const mainCreated = page.waitForResponse((r) => r.request().method() === "POST" && r.url().endsWith("/uploads"));
  await page.setInputFiles("#file-input", env("FILE"));
  const uploadId = (await (await mainCreated).json()).uploadId;
  await firstStored;
  while (parts.sent.length < 6) await page.waitForTimeout(20); // 1 twice; 2 to 5 in flight
  await page.waitForTimeout(300); // let the progress line repaint
  await screenshot(page, "page-mid-upload");

  // Keyboard only: from the file input, Tab reaches the upload's Pause button.
  await page.focus("#file-input");
  await page.keyboard.press("Tab");
  const focusedBeforePause = await page.evaluate(() => document.activeElement.textContent);
  await page.keyboard.press("Enter");
  const item = page.locator("li.file").first();
  await page.locator("li.file[data-state=paused]").waitFor();
  const focusAfterPause = await page.evaluate(() => document.activeElement.textContent);
  // The parts held since before the pause are let go: a paused page has aborted them, so none
  // may reach the Worker now (the Worker's log of this window says; the page's own request
  // events would miss them, as they were sent before the pause).
  const pausedFrom = Date.now();
  releaseHeld();
  const sentAtPause = parts.sent.length;
  await page.waitForTimeout(1000);
  const sentWhilePaused = parts.sent.length - sentAtPause;
  await screenshot(page, "page-paused");
  const pausedUntil = Date.now();
  await page.keyboard.press("Enter"); // on Resume
  await page.locator("li.file[data-state=done]").waitFor({ timeout: 120_000 });
  await page.locator("#objects td.key").first().waitFor();
  const key = await item.getAttribute("data-key");
  const stored = [...parts.stored];
  const sentMain = [...parts.sent];
  await screenshot(page, "page-after-upload");

  // Another file, cancelled while its last part is in flight.
  await page.unrouteAll();
  const releaseCancelled = await holdParts(page, 3);
  const created = page.waitForResponse((r) => r.request().method() === "POST" && r.url().endsWith("/uploads"));
  await page.setInputFiles("#file-input", env("CANCEL_FILE"));
  const cancelledId = (await (await created).json()).uploadId;
  await page.locator("li.file[data-state=uploading]").getByRole("button", { name: /^Cancel/ }).click();
  await page.locator("li.file[data-state=cancelled]").waitFor({ state: "detached" });
  releaseCancelled();

  return {
    parts: stored,
    part1Sent: sentMain.filter((n) => n === 1).length,
    focusedBeforePause,
    focusAfterPause,
    sentWhilePaused,
    uploadId,
    pausedFrom,
    pausedUntil,
    key,
    cancelledId,
    listed: await page.locator("#objects td.key").allTextContents(),
    url: page.url(),
    tokenInSession: await page.evaluate((t) => sessionStorage.getItem("r2mpu.token") === t, token),
    localStorage: await page.evaluate(() => JSON.stringify(localStorage)),
  };
});
