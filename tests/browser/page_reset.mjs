// The upload page through the ResetProxy (tests/resets_clients.rs): a file chosen in the input,
// one part's connection broken mid-body by the proxy; the page's withRetries sends it again.
// Reports when (epoch ms) each part PUT was answered 200, so the test can time the re-send.
import { env, run, screenshot, countParts } from "./browser.mjs";

await run(async (page) => {
  await page.goto(`${env("PAGE_URL")}/#token=${env("TOKEN")}`);
  const parts = countParts(page);
  const storedAt = {};
  page.on("response", (r) => {
    const n = Number(new URL(r.url()).pathname.match(/\/parts\/(\d+)$/)?.[1] ?? 0);
    if (r.request().method() === "PUT" && n && r.status() === 200) storedAt[n] = Date.now();
  });
  await page.setInputFiles("#file-input", env("FILE"));
  const item = page.locator("li.file").first();
  // Done, or given up on (the page's "error" state: fail at once rather than at the timeout).
  await page.locator("li.file[data-state=done], li.file[data-state=error]").waitFor({ timeout: 120_000 });
  if (await item.getAttribute("data-state") === "error") throw new Error(`the page gave up: ${await item.textContent()}`);
  // What the page shows once the broken part went again: "Uploaded", the multipart ETag.
  await screenshot(page, "page-reset-done");
  return { key: await item.getAttribute("data-key"), sent: parts.sent, stored: parts.stored, inFlight: parts.inFlight, storedAt };
});
