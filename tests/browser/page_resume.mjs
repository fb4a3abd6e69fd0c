// A reload in the middle of a large upload, then the same file chosen again: the page asks
// the Worker which parts it holds (GET /uploads/{id}) and sends only the others.
import { env, run, screenshot, countParts } from "./browser.mjs";

await run(async (page) => {
  const file = env("FILE");
  // This time the token is pasted into the page's field; the tab keeps it across the reload.
  await page.goto(`${env("WORKER_URL")}/`);
  await screenshot(page, "page-sign-in");
  await page.getByLabel("Access token").fill(env("TOKEN"));
  await page.keyboard.press("Enter");
  const before = countParts(page);
  await page.setInputFiles("#file-input", file);
  while (before.stored.length < Number(env("RELOAD_AFTER"))) await page.waitForTimeout(20);
  const storedBeforeReload = [...before.stored];
  await page.reload();
  // The page lists the unfinished upload with what the Worker holds of it (its own GET, done
  // before the one that resumes, which the test reads below).
  const pendingLine = page.locator("#pending li", { hasText: "stored" }).first();
  await pendingLine.waitFor();
  const pending = await pendingLine.textContent();
  await screenshot(page, "page-after-reload");

  const after = countParts(page);
  const resumeState = page.waitForResponse((r) => r.request().method() === "GET" && /\/uploads\/[0-9a-f]+$/.test(r.url()));
  await page.setInputFiles("#file-input", file);
  const seen = await (await resumeState).json();
  await page.locator("li.file[data-state=done]").waitFor({ timeout: 180_000 });
  await screenshot(page, "page-resumed");
  return {
    storedBeforeReload,
    pending,
    resumedFrom: seen.parts.map((p) => p.partNumber),
    sentAfterReload: after.sent,
    inFlightAfterReload: after.inFlight,
    status: await page.locator("li.file .status").first().textContent(),
  };
});
