// The `ferry dev` demo page in a real headless Chromium (Debian's `chromium`, driven by
// playwright-core): start `ferry dev` on a free loopback port, pick a file on the page, upload it,
// and check what the page shows (the attachment reference and the emulator's conversation) against
// what the file really is. Run through `cargo xtask browser`, which installs the packages and
// builds ferry first.
//
// Environment: FERRY_BIN (the ferry binary, required), FERRY_CHROMIUM (default /usr/bin/chromium),
// FERRY_SCREENSHOT (default <tmp>/ferry-demo-page.png).

import { createHash } from "node:crypto";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import { CHROMIUM_ARGS, recordProgress, runTest, startFerry, tearDown } from "./dev-server.mjs";

const FERRY_BIN = process.env.FERRY_BIN;
const CHROMIUM = process.env.FERRY_CHROMIUM || "/usr/bin/chromium";
const SCREENSHOT = process.env.FERRY_SCREENSHOT || join(tmpdir(), "ferry-demo-page.png");
// A name that must survive percent-encoding (spaces, accents, quote) and must be shown as text,
// never as markup: if the page put it into innerHTML, an <img> would appear and its onerror fire.
const FILE_NAME = "rapport d'été <img src=x onerror=window.__xss=1>.txt";
const CAPTION = "Here is the report you asked for";
// 3 MiB of text: big enough for several progress events, small enough for a native attachment.
const FILE_BYTES = Buffer.alloc(3 * 1024 * 1024, "ferry carries large files into Genesys conversations.\n");

async function main() {
  assert.ok(FERRY_BIN, "set FERRY_BIN to the ferry binary (cargo xtask browser does)");
  const started = Date.now();
  const dataDir = await mkdtemp(join(tmpdir(), "ferry-browser-"));
  let ferry;
  let browser;
  try {
    ferry = await startFerry(FERRY_BIN, dataDir);
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const problems = [];
    page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
    page.on("console", (message) => {
      if (message.type() === "error") problems.push(`console error: ${message.text()}`);
    });
    page.on("dialog", (dialog) => {
      problems.push(`unexpected dialog: ${dialog.message()}`);
      return dialog.dismiss();
    });
    // Progress as the page reports it: every value the page writes into the <progress> bar.
    const progress = await recordProgress(page);

    const response = await page.goto(`${ferry.url}/`);
    assert.equal(response.status(), 200, "the demo page is served at /");
    await page.waitForSelector("#conversations .conversation", { timeout: 15_000 });
    const before = await page.locator("#conversations").innerText();
    assert.match(before, /Attachments\s*none/, "the demo conversation starts without attachments");

    await page.setInputFiles("#file", { name: FILE_NAME, mimeType: "text/plain", buffer: FILE_BYTES });
    await page.fill("#caption", CAPTION);
    await page.click("#upload");
    await page.waitForSelector("#status.ok, #status.bad", { timeout: 60_000 });
    const status = await page.locator("#status").innerText();
    const shown = await page.locator("#reference").innerText();
    assert.match(status, /^Uploaded /, `the page reports success, not: ${status}\n${shown}`);

    // The reference as shown, against the file as it is.
    assert.ok(shown.includes('"status": "uploaded"'), `the reference shows "status": "uploaded":\n${shown}`);
    const reference = JSON.parse(shown);
    assert.equal(reference.type, "file");
    assert.equal(reference.name, FILE_NAME, "the name survived percent-encoding unchanged");
    assert.ok(shown.includes(JSON.stringify(FILE_NAME)), "the name is shown as text");
    assert.equal(reference.size, FILE_BYTES.length);
    assert.equal(reference.contentType, "text/plain");
    assert.equal(reference.checksums.md5, createHash("md5").update(FILE_BYTES).digest("hex"));
    assert.equal(reference.checksums.sha256, createHash("sha256").update(FILE_BYTES).digest("hex"));
    assert.equal(reference.delivery.mode, "native", "a 3 MiB file fits the demo deployment's limits");
    assert.equal(reference.text, CAPTION);
    assert.ok(reference.downloadUrl.startsWith(`${ferry.url}/v1/files/${reference.id}?`));

    // The progress bar moved and finished.
    const sent = progress.slice(progress.lastIndexOf(0));
    assert.ok(sent.length >= 2 && sent.at(-1) === 100, `the progress bar went to 100 (${JSON.stringify(progress)})`);
    assert.ok(sent.every((v, i) => i === 0 || v >= sent[i - 1]), `progress only grows (${JSON.stringify(sent)})`);
    assert.equal(await page.locator("#progress").evaluate((bar) => bar.value), 100);

    // The conversation view lists the attachment, uploaded, and the message with the caption.
    await page.waitForFunction(
      (name) => [...document.querySelectorAll('#conversations [data-role="attachments"] li')]
        .some((li) => li.textContent.includes(name) && li.textContent.includes("uploaded")),
      FILE_NAME,
      { timeout: 15_000 },
    );
    const attachments = await page.locator('#conversations [data-role="attachments"]').innerText();
    assert.ok(attachments.includes(createHash("sha256").update(FILE_BYTES).digest("hex")),
      "the emulator received exactly the file's bytes");
    const messages = await page.locator('#conversations [data-role="messages"]').innerText();
    assert.ok(messages.includes(`${CAPTION} [attachment: ${FILE_NAME}]`), `the message is listed:\n${messages}`);

    // Escaping: the name and everything else were rendered as text.
    assert.equal(await page.evaluate(() => document.querySelectorAll("img").length), 0, "no markup injected");
    assert.equal(await page.evaluate(() => window.__xss), undefined, "no script ran from data");

    // The signed download link answers with the same bytes.
    const download = await page.request.get(reference.downloadUrl);
    assert.equal(download.status(), 200);
    assert.match(download.headers()["content-disposition"] || "", /^attachment;/);
    assert.ok(Buffer.from(await download.body()).equals(FILE_BYTES), "the download is the file");

    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    assert.deepEqual(problems, [], "no errors in the page");
    console.log(`screenshot: ${SCREENSHOT}`);
    console.log(`demo page upload of ${FILE_BYTES.length} bytes verified in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  } finally {
    await tearDown(browser, ferry, dataDir);
  }
}

runTest("browser", main);
