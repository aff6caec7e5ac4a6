// Links only the organisation's agents can open (issue 15), in a real headless Chromium through
// `ferry dev`: on `/dev/links`, click an agents link → the emulated Genesys Cloud sign-in page →
// pick a demo agent → back through ferry's callback → the file's bytes (a download); a second
// agents link in the same browser opens without signing in again; an agent of another
// organisation gets ferry's 403 page; a bearer link downloads without any sign-in. Run through
// `cargo xtask browser`.
//
// Environment: FERRY_BIN (the ferry binary, required), FERRY_CHROMIUM (default /usr/bin/chromium).

import { mkdtemp, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import { CHROMIUM_ARGS, runTest, startFerry, tearDown } from "./dev-server.mjs";

const FERRY_BIN = process.env.FERRY_BIN;
const CHROMIUM = process.env.FERRY_CHROMIUM || "/usr/bin/chromium";

/** A fresh browser context with the links page open; records every page it navigates to. */
async function openLinks(browser, url) {
  const context = await browser.newContext({ acceptDownloads: true });
  const page = await context.newPage();
  const visited = [];
  page.on("framenavigated", (frame) => {
    if (frame === page.mainFrame()) visited.push(frame.url());
  });
  const problems = [];
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  const response = await page.goto(`${url}/dev/links`);
  assert.equal(response.status(), 200, "ferry dev serves /dev/links");
  return { context, page, visited, problems };
}

/** The letter a link on the page stands for. */
async function letterOf(page, id) {
  return page.locator(`#${id}`).getAttribute("data-text");
}

/** Clicks `selector` and waits for the download it ends in; its bytes as text. */
async function downloadBy(page, selector) {
  const [download] = await Promise.all([page.waitForEvent("download", { timeout: 30_000 }), page.click(selector)]);
  const path = await download.path();
  return readFile(path, "utf8");
}

async function main() {
  assert.ok(FERRY_BIN, "set FERRY_BIN to the ferry binary (cargo xtask browser does)");
  const started = Date.now();
  const dataDir = await mkdtemp(join(tmpdir(), "ferry-agents-"));
  let ferry;
  let browser;
  try {
    ferry = await startFerry(FERRY_BIN, dataDir);
    // The banner may arrive in pieces: wait (bounded) for its line about agents links.
    const banner = /agents links\s+http:\/\/127\.0\.0\.1:\d+\/dev\/links/;
    for (let i = 0; i < 50 && !banner.test(ferry.output()); i++) await new Promise((r) => setTimeout(r, 100));
    assert.match(ferry.output(), banner, "ferry dev says where the links are");
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });

    // An agent of the demo organisation.
    const ada = await openLinks(browser, ferry.url);
    const first = await letterOf(ada.page, "agents-link");
    const second = await letterOf(ada.page, "agents-link-2");
    const bearer = await letterOf(ada.page, "bearer-link");
    assert.ok(first && second && bearer && first !== second, "three different letters");
    await ada.page.click("#agents-link");
    await ada.page.waitForSelector("text=Genesys Cloud sign-in", { timeout: 15_000 });
    const signInUrl = ada.page.url();
    assert.match(signInUrl, /\/oauth\/authorize\?/, "the link led to the sign-in page");
    const query = new URL(signInUrl).searchParams;
    assert.equal(query.get("code_challenge_method"), "S256");
    assert.equal(query.get("redirect_uri"), `${ferry.url}/v1/agents/callback`);
    const cookies = await ada.context.cookies(ferry.url + "/v1/agents/callback");
    const signin = cookies.find((c) => c.name === "ferry_signin");
    assert.ok(signin && signin.httpOnly && signin.sameSite === "Lax", `a sign-in cookie: ${JSON.stringify(cookies)}`);
    const got = await downloadBy(ada.page, 'button[value="agent-ada"]');
    assert.equal(got, first, "after sign-in the browser got the file's bytes");
    const session = (await ada.context.cookies(ferry.url + "/v1/files/x")).find((c) => c.name.startsWith("ferry_agent_"));
    assert.ok(session && session.httpOnly, "an HttpOnly agent session");

    // A second link: no second sign-in.
    await ada.page.goto(`${ferry.url}/dev/links`);
    const fresh = await letterOf(ada.page, "agents-link-2");
    const before = ada.visited.filter((u) => u.includes("/oauth/authorize")).length;
    assert.equal(await downloadBy(ada.page, "#agents-link-2"), fresh, "the second link opened at once");
    assert.equal(ada.visited.filter((u) => u.includes("/oauth/authorize")).length, before, "no sign-in page again");
    // A bearer link needs no sign-in.
    assert.equal(await downloadBy(ada.page, "#bearer-link"), await letterOf(ada.page, "bearer-link"));
    assert.deepEqual(ada.problems, []);

    // An agent of another organisation: 403, and a page that says why.
    const olga = await openLinks(browser, ferry.url);
    await olga.page.click("#agents-link");
    await olga.page.waitForSelector("text=Olga Outsider", { timeout: 15_000 });
    const [answer] = await Promise.all([
      olga.page.waitForResponse((r) => r.url().includes("/v1/agents/callback"), { timeout: 15_000 }),
      olga.page.click('button[value="agent-olga"]'),
    ]);
    assert.equal(answer.status(), 403);
    await olga.page.waitForSelector("#code");
    assert.equal(await olga.page.locator("#code").innerText(), "wrong_organization");
    assert.match(await olga.page.locator("#message").innerText(), /organisation other than the one/);
    const olgaCookies = await olga.context.cookies(ferry.url + "/v1/files/x");
    assert.ok(!olgaCookies.some((c) => c.name.startsWith("ferry_agent_")), "no session for another organisation");
    await ada.context.close();
    await olga.context.close();
    console.log(`agents links verified in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  } finally {
    await tearDown(browser, ferry, dataDir);
  }
}

runTest("browser agents", main);
