// The upload page, as a person uses it: open the link with #token=, choose a file in the
// input, watch it finish. Screenshots mid-upload and after.
import { env, run, screenshot, countParts } from "./browser.mjs";

await run(async (page) => {
  const token = env("TOKEN");
  await page.goto(`${env("WORKER_URL")}/#token=${token}`);
  const parts = countParts(page);
  const midway = page.waitForResponse((r) => r.request().method() === "PUT" && r.status() === 200);
  await page.setInputFiles("#file-input", env("FILE"));
  await midway;
  await page.waitForTimeout(300); // let the progress line repaint
  await screenshot(page, "page-mid-upload");
  const item = page.locator("li.file[data-state=done]");
  await item.waitFor({ timeout: 120_000 });
  await page.locator("#objects td.key").first().waitFor();
  await screenshot(page, "page-after-upload");
  return {
    parts: parts.sent,
    key: await item.getAttribute("data-key"),
    listed: await page.locator("#objects td.key").allTextContents(),
    url: page.url(),
    tokenInSession: await page.evaluate((t) => sessionStorage.getItem("r2mpu.token") === t, token),
    localStorage: await page.evaluate(() => JSON.stringify(localStorage)),
  };
});
