// `ferry dev` for the browser tests: started on a free loopback port with its own data folder and
// stopped with SIGINT (SIGKILL after 15 s). Shared by the demo, resume and agents tests.

import { spawn } from "node:child_process";
import { rm } from "node:fs/promises";
import { createServer } from "node:net";

export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Starts `ferry dev` (the binary `ferryBin`) and resolves with `{ child, url }` once it runs. */
export async function startFerry(ferryBin, dataDir) {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const child = spawn(ferryBin, ["dev", "--listen", `127.0.0.1:${port}`, "--data", dataDir], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, RUST_LOG: process.env.RUST_LOG || "warn" },
    });
    let output = "";
    const ready = await new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), 60_000);
      child.stdout.on("data", (chunk) => {
        output += chunk;
        if (output.includes("ferry dev is running")) {
          clearTimeout(timer);
          resolve(true);
        }
      });
      child.stderr.on("data", (chunk) => { output += chunk; });
      child.once("exit", () => { clearTimeout(timer); resolve(false); });
    });
    if (ready) return { child, url: `http://127.0.0.1:${port}`, output: () => output };
    child.kill("SIGKILL");
    // Another process may have taken the port between our probe and ferry's bind: try again.
    if (attempt >= 3 || !/binding|address/i.test(output)) {
      throw new Error(`ferry dev did not start:\n${output}`);
    }
  }
}

/** Stops `ferry dev` (SIGINT, then SIGKILL after 15 s). */
export async function stopFerry(child) {
  if (child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGINT");
  const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
  await exited;
  clearTimeout(timer);
}

/** The end of every test, passed or not: the browser closed, `ferry dev` stopped, its data gone. */
export async function tearDown(browser, ferry, dataDir) {
  if (browser) await browser.close();
  if (ferry) await stopFerry(ferry.child);
  await rm(dataDir, { recursive: true, force: true });
}

/** Runs `main` and prints `<label>: 1 passed, 0 failed` (or the error and `0 passed, 1 failed`). */
export function runTest(label, main) {
  main().then(
    () => console.log(`${label}: 1 passed, 0 failed`),
    (error) => {
      console.error(error && error.stack ? error.stack : error);
      console.log(`${label}: 0 passed, 1 failed`);
      process.exitCode = 1;
    },
  );
}

/** Every value `page` writes into a `<progress>` bar, in order (the array fills as the page runs). */
export async function recordProgress(page) {
  const progress = [];
  await page.exposeFunction("__progress", (value) => progress.push(value));
  await page.addInitScript(() => {
    const value = Object.getOwnPropertyDescriptor(HTMLProgressElement.prototype, "value");
    Object.defineProperty(HTMLProgressElement.prototype, "value", {
      get() { return value.get.call(this); },
      set(v) { value.set.call(this, v); window.__progress(Number(v)); },
    });
  });
  return progress;
}
