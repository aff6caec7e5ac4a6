// The `ferry dev` demo page's resumable upload in a real headless Chromium (Debian's `chromium`,
// driven by playwright-core): start a tus upload of a 24 MiB file with the browser's upload
// throttled, reload the page mid-upload, pick the same file again and finish. The page must
// continue from where ferry stopped (tus-js-client's fingerprint and URL storage, a HEAD for the
// offset), never from zero, and the stored file must be the file. Run through
// `cargo xtask browser`, which installs the packages and builds ferry first.
//
// Environment: FERRY_BIN (the ferry binary, required), FERRY_CHROMIUM (default /usr/bin/chromium),
// FERRY_SCREENSHOT (default <tmp>/ferry-resume-page.png).

import { createHash } from "node:crypto";
import { mkdtemp, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import { CHROMIUM_ARGS, recordProgress, runTest, startFerry, tearDown } from "./dev-server.mjs";

const FERRY_BIN = process.env.FERRY_BIN;
const CHROMIUM = process.env.FERRY_CHROMIUM || "/usr/bin/chromium";
const SCREENSHOT = process.env.FERRY_SCREENSHOT || join(tmpdir(), "ferry-resume-page.png");
const MIB = 1024 * 1024;
const FILE_NAME = "site survey.pdf";
const SIZE = 24 * MIB;
// The page's tus chunk: one PATCH's bytes are committed when it ends.
const CHUNK = 8 * MIB;

/** Deterministic bytes opening like a PDF (ferry sniffs the type). */
function fileBytes() {
  const bytes = Buffer.alloc(SIZE);
  let x = 0x2545_f491_4f6c_dd1dn;
  for (let i = 0; i < SIZE; i += 8) {
    x ^= x >> 12n; x ^= (x << 25n) & 0xffff_ffff_ffff_ffffn; x ^= x >> 27n;
    bytes.writeBigUInt64LE((x * 0x2545_f491_4f6c_dd1dn) & 0xffff_ffff_ffff_ffffn, i);
  }
  Buffer.from("%PDF-1.7\n").copy(bytes, 0);
  return bytes;
}

async function throttle(cdp, bytesPerSecond) {
  await cdp.send("Network.emulateNetworkConditions", {
    offline: false,
    latency: 0,
    downloadThroughput: -1,
    uploadThroughput: bytesPerSecond,
  });
}

async function main() {
  assert.ok(FERRY_BIN, "set FERRY_BIN to the ferry binary (cargo xtask browser does)");
  const started = Date.now();
  const dataDir = await mkdtemp(join(tmpdir(), "ferry-resume-"));
  const bytes = fileBytes();
  const file = join(dataDir, FILE_NAME);
  await writeFile(file, bytes);
  // A fixed modification time: the browser's fingerprint of the file includes it.
  await utimes(file, new Date("2026-11-01T10:00:00Z"), new Date("2026-11-01T10:00:00Z"));
  let ferry;
  let browser;
  try {
    ferry = await startFerry(FERRY_BIN, join(dataDir, "ferry"));
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const problems = [];
    page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
    const progress = await recordProgress(page);
    const cdp = await page.context().newCDPSession(page);
    await cdp.send("Network.enable");

    await page.goto(`${ferry.url}/`);
    await page.waitForSelector('#mode[data-mode="tus"]', { timeout: 15_000 });
    assert.equal(await page.locator("#resumable").isChecked(), true, "resumable uploads are on");

    // Start, throttled to 4 MiB/s, and reload once past the first chunk.
    await throttle(cdp, 4 * MIB);
    await page.setInputFiles("#file", file);
    await page.click("#upload");
    const past = Math.ceil(((CHUNK + 2 * MIB) * 100) / SIZE);
    const deadline = Date.now() + 60_000;
    while (!progress.some((v) => v >= past)) {
      assert.ok(Date.now() < deadline, `the upload did not pass ${past} % in 60 s (${JSON.stringify(progress)})`);
      assert.equal(await page.locator("#status.bad").count(), 0, await page.locator("#status").innerText());
      await page.waitForTimeout(100);
    }
    const before = Math.max(...progress);
    assert.ok(before < 100, `still uploading when reloaded (${before} %)`);
    await page.reload();
    await throttle(cdp, -1);
    progress.length = 0;

    // The page lists the unfinished upload; the same file continues it.
    await page.waitForSelector('#mode[data-mode="tus"]', { timeout: 15_000 });
    await page.waitForSelector("#unfinished:not([hidden])", { timeout: 15_000 });
    const unfinished = await page.locator("#unfinished").innerText();
    assert.ok(unfinished.includes(FILE_NAME), `the unfinished upload is listed: ${unfinished}`);
    await page.setInputFiles("#file", file);
    await page.click("#upload");
    await page.waitForSelector("#status.ok, #status.bad", { timeout: 120_000 });
    const status = await page.locator("#status").innerText();
    const shown = await page.locator("#reference").innerText();
    assert.match(status, /^Uploaded /, `the page reports success, not: ${status}\n${shown}`);

    const resumedAt = Number(await page.locator("#status").getAttribute("data-resumed-at"));
    assert.ok(resumedAt >= CHUNK && resumedAt < SIZE,
      `continued from ferry's offset (at least the first ${CHUNK} bytes), not from zero: ${resumedAt}`);
    const sent = progress.slice(progress.lastIndexOf(0) + 1);
    assert.ok(sent.length >= 1 && sent.at(-1) === 100, `the bar went to 100 (${JSON.stringify(progress)})`);
    assert.ok(sent[0] >= Math.floor((CHUNK * 100) / SIZE), `the bar restarted where it stopped (${JSON.stringify(sent)})`);

    const reference = JSON.parse(shown);
    assert.equal(reference.name, FILE_NAME);
    assert.equal(reference.size, SIZE);
    assert.equal(reference.contentType, "application/pdf");
    assert.equal(reference.checksums.md5, createHash("md5").update(bytes).digest("hex"));
    if (reference.checksums.sha256 !== undefined) {
      assert.equal(reference.checksums.sha256, createHash("sha256").update(bytes).digest("hex"));
    }
    const download = await page.request.get(reference.downloadUrl);
    assert.equal(download.status(), 200);
    assert.ok(Buffer.from(await download.body()).equals(bytes), "the download is the file");

    // Delivered once, and nothing left to resume.
    const conversations = await (await page.request.get(`${ferry.url}/dev/conversations`)).json();
    const list = Array.isArray(conversations) ? conversations : conversations.conversations;
    const messages = list.flatMap((c) => c.messages);
    assert.equal(messages.length, 1, `one message: ${JSON.stringify(messages)}`);
    await page.waitForSelector("#unfinished[hidden]", { state: "attached", timeout: 10_000 });

    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    assert.deepEqual(problems, [], "no errors in the page");
    console.log(`screenshot: ${SCREENSHOT}`);
    console.log(`resumed at ${resumedAt} of ${SIZE} bytes after a reload at ${before} %; ` +
      `verified in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  } finally {
    await tearDown(browser, ferry, dataDir);
  }
}

runTest("browser resume", main);
