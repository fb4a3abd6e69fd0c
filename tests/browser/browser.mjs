// Shared by the browser scenarios: launches Debian's Chromium through playwright-core with a
// fresh profile, and hands back what a scenario found as one JSON line on stdout, which
// tests/browser.rs reads and asserts on.
import { mkdtempSync, rmSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

/** The environment tests/browser.rs passes: WORKER_URL, TOKEN, ARTIFACTS, and per scenario more. */
export const env = (name) => {
  const value = process.env[name];
  if (value === undefined) throw new Error(`${name} is not set`);
  return value;
};

/** Runs `scenario(page, context)` in a fresh headless Chromium and prints its result. */
export async function run(scenario) {
  const profile = mkdtempSync(join(tmpdir(), "r2mpu-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: "/usr/bin/chromium",
    headless: true,
    viewport: { width: 1000, height: 760 },
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync",
    ],
  });
  try {
    const page = context.pages()[0] ?? (await context.newPage());
    page.on("dialog", (dialog) => dialog.accept()); // "leave the page?" while uploading
    const logs = [];
    page.on("console", (m) => logs.push(`console.${m.type()}: ${m.text()}`));
    page.on("pageerror", (e) => logs.push(`page error: ${e}`));
    try {
      const result = await scenario(page, context);
      console.log(JSON.stringify(result));
    } catch (error) {
      // What the page showed and said, for the failure message.
      await screenshot(page, `failed-${process.argv[1].split("/").pop()}`).catch(() => {});
      console.error(logs.join("\n"));
      throw error;
    }
  } finally {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  }
}

/** Saves a screenshot under ARTIFACTS (target/browser-artifacts/). */
export async function screenshot(page, name) {
  const dir = env("ARTIFACTS");
  mkdirSync(dir, { recursive: true });
  await page.screenshot({ path: join(dir, `${name}.png`), fullPage: true });
}

/** Part numbers of the part PUTs the page sends, in order, and those answered 200. */
export function countParts(page) {
  // `inFlight`: sends refused with 409 because another copy of the part was still landing.
  const seen = { sent: [], stored: [], inFlight: [] };
  const partOf = (url) => Number(new URL(url).pathname.match(/\/parts\/(\d+)$/)?.[1] ?? 0);
  page.on("request", (r) => { if (r.method() === "PUT" && partOf(r.url())) seen.sent.push(partOf(r.url())); });
  page.on("response", (r) => {
    if (r.request().method() !== "PUT" || !partOf(r.url())) return;
    if (r.status() === 200) seen.stored.push(partOf(r.url()));
    if (r.status() === 409) seen.inFlight.push(partOf(r.url()));
  });
  return seen;
}
