// The browser tests' harness: a town (a CA, a hub with its console, handsets on the command
// line) in a temporary directory on loopback, and Debian's chromium driven by playwright-core.
//
//   const town = await startTown({ build: process.env.BUILD_DIR });
//   const browser = await launchBrowser();
//   const { page } = await openConsole(browser, town, "cctv-op-01");
//   ...
//   await browser.close(); await town.stop();
//
// The console wants a client certificate (mutual TLS 1.3). Playwright's `clientCertificates`
// does the TLS itself (a local proxy between chromium and the hub that presents the
// certificate), which carries the page, the API and the WebSocket /api/live alike.
import { spawn, execFile } from "node:child_process";
import { mkdtemp, rm, writeFile, mkdir, copyFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const SOURCE_ROOT = path.resolve(HERE, "..", "..");

let playwright = null;
async function chromiumDriver() {
  if (!playwright) {
    try {
      playwright = await import("playwright-core");
    } catch (error) {
      throw new Error(
        "playwright-core is not installed in tests/browser/node_modules: run `./run test` " +
          "(it runs `npm ci` there) or `npm ci --prefix tests/browser`. (" + error.message + ")",
      );
    }
  }
  return playwright.chromium;
}

// The build directory: the argument, else $BUILD_DIR, else build/ of the source tree.
function buildDir(build) {
  const dir = path.resolve(build || process.env.BUILD_DIR || path.join(SOURCE_ROOT, "build"));
  for (const bin of ["server/saferlink-hub", "certs/saferlink-ca", "client/saferlink"]) {
    if (!existsSync(path.join(dir, bin))) {
      throw new Error(`${path.join(dir, bin)} is missing: build first (./run build)`);
    }
  }
  return dir;
}

function run(file, args, { timeoutMs = 60000 } = {}) {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: timeoutMs, maxBuffer: 16 << 20 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === "number" ? error.code : -1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

async function mustRun(file, args) {
  const result = await run(file, args);
  if (result.code !== 0) {
    throw new Error(`${path.basename(file)} ${args.join(" ")} failed (${result.code}): ${result.stderr}`);
  }
  return result;
}

// The identities every town has: [id, role, town, member].
export const IDENTITIES = [
  ["cctv-op-01", "cctv", "all", "Medway CCTV Control Room"],
  ["police-chatham-01", "police", "chatham", "Kent Police"],
  ["coord-01", "coordinator", "all", "Safer Medway Partnership"],
  ["coord-02", "coordinator", "all", "Safer Medway Partnership"],
  ["shop-chatham-01", "shop", "chatham", "Chatham Hardware"],
  ["shop-chatham-02", "shop", "chatham", "Pentagon News"],
];

// A child process whose stdout is read line by line.
function watched(proc) {
  const lines = [];
  const waiters = [];
  let stderr = "";
  const rl = createInterface({ input: proc.stdout });
  rl.on("line", (line) => {
    lines.push(line);
    for (const w of [...waiters]) {
      if (w.regex.test(line)) {
        waiters.splice(waiters.indexOf(w), 1);
        clearTimeout(w.timer);
        w.resolve(line);
      }
    }
  });
  proc.stderr.on("data", (chunk) => (stderr += chunk));
  let exited = false;
  const exit = new Promise((resolve) => {
    proc.on("exit", (code, signal) => {
      exited = true;
      resolve({ code, signal });
    });
  });
  return {
    proc,
    lines: () => [...lines],
    stderr: () => stderr,
    exited: () => exited,
    exit,
    // Resolves with the first line (already read or to come) matching `regex`.
    waitFor(regex, ms = 20000) {
      const seen = lines.find((line) => regex.test(line));
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const w = { regex, resolve };
        w.timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(w), 1);
          reject(new Error(`no line matching ${regex} within ${ms} ms; stdout so far:\n` +
            `${lines.join("\n")}\nstderr:\n${stderr}`));
        }, ms);
        waiters.push(w);
      });
    },
    async kill() {
      if (!exited) {
        proc.kill("SIGTERM");
        const timer = setTimeout(() => !exited && proc.kill("SIGKILL"), 3000);
        await exit;
        clearTimeout(timer);
      }
    },
  };
}

// Starts a town: CA + identities, a hub with --console on loopback port 0 and --seed-demo.
export async function startTown({ build, seedDemo = true, escalationMs = 15000 } = {}) {
  const bin = buildDir(build);
  const hubBin = path.join(bin, "server/saferlink-hub");
  const caBin = path.join(bin, "certs/saferlink-ca");
  const cliBin = path.join(bin, "client/saferlink");
  const simBin = path.join(bin, "firmware-sim/saferlink-sim");

  const dir = await mkdtemp(path.join(os.tmpdir(), "saferlink-browser-"));
  const caDir = path.join(dir, "ca");
  const children = new Set();
  let hub = null;

  const stop = async () => {
    for (const child of children) await child.kill();
    children.clear();
    if (hub) await hub.kill();
    hub = null;
    await rm(dir, { recursive: true, force: true });
  };

  try {
    await mustRun(caBin, ["init", "--dir", caDir, "--name", "Browser Test CA"]);
    await mustRun(caBin, ["issue", "--dir", caDir, "--role", "hub", "--id", "hub",
      "--host", "127.0.0.1"]);
    for (const [id, role, t, member] of IDENTITIES) {
      await mustRun(caBin, ["issue", "--dir", caDir, "--role", role, "--town", t,
        "--member", member, "--id", id]);
    }

    const args = ["--certs", caDir, "--db", path.join(dir, "hub.db"),
      "--listen", "127.0.0.1:0", "--console", "127.0.0.1:0",
      "--escalation-ms", String(escalationMs)];
    if (seedDemo) args.push("--seed-demo");
    // Development: serve console/ from disk, so that a test run needs no rebuild after an edit.
    if (process.env.CONSOLE_DIR) args.push("--console-dir", process.env.CONSOLE_DIR);
    hub = watched(spawn(hubBin, args, { stdio: ["ignore", "pipe", "pipe"] }));
    const hubExit = hub.exit.then(({ code, signal }) => {
      throw new Error(`the hub exited (${code ?? signal}) before it listened:\n${hub.stderr()}`);
    });
    const [listening, consoleLine] = await Promise.race([
      Promise.all([hub.waitFor(/^listening \d+$/, 30000), hub.waitFor(/^console \d+$/, 30000)]),
      hubExit,
    ]);
    hubExit.catch(() => {});
    const hubPort = listening.split(" ")[1];
    const consolePort = consoleLine.split(" ")[1];

    const p12s = new Map();
    const town = {
      dir,
      caDir,
      hubAddr: `127.0.0.1:${hubPort}`,
      consoleUrl: `https://127.0.0.1:${consolePort}`,
      hubLog: () => hub?.stderr() ?? "",
      cert(id) {
        return {
          certPath: path.join(caDir, "issued", `${id}.crt`),
          keyPath: path.join(caDir, "issued", `${id}.key`),
        };
      },
      async p12(id) {
        if (!p12s.has(id)) {
          const out = path.join(dir, "p12");
          await mkdir(out, { recursive: true });
          const passphrase = `browser-test-${id}`;
          const pwFile = path.join(out, `${id}.pw`);
          await writeFile(pwFile, passphrase + "\n", { mode: 0o600 });
          const pfxPath = path.join(out, `${id}.p12`);
          await mustRun(caBin, ["export", "--dir", caDir, "--id", id, "--out", pfxPath,
            "--password-file", pwFile]);
          p12s.set(id, { pfxPath, passphrase });
        }
        return p12s.get(id);
      },
      cli(id, ...cliArgs) {
        return run(cliBin, ["--hub", town.hubAddr, "--certs", caDir, "--id", id, ...cliArgs]);
      },
      spawnCli(id, ...cliArgs) {
        const proc = spawn(cliBin, ["--hub", town.hubAddr, "--certs", caDir, "--id", id,
          ...cliArgs], { stdio: ["ignore", "pipe", "pipe"] });
        const child = watched(proc);
        children.add(child);
        child.exit.then(() => children.delete(child));
        return child;
      },
      // A simulated handset (saferlink-sim handset: the firmware's state machine) as `id`;
      // key(k) types a key on its keypad (p: panic with a long press, a: acknowledge, …).
      spawnSim(id, ...simArgs) {
        const proc = spawn(simBin, ["handset", "--hub", town.hubAddr, "--certs", caDir, "--id", id,
          "--flash", path.join(dir, `${id}.flash`), ...simArgs],
        { stdio: ["pipe", "pipe", "pipe"] });
        const child = watched(proc);
        child.key = (k) => proc.stdin.write(`${k}\n`);
        children.add(child);
        child.exit.then(() => children.delete(child));
        return child;
      },
      // Kills the hub only (the offline indicator); stop() still cleans up.
      async killHub() {
        if (hub) await hub.kill();
        hub = null;
      },
      stop,
    };
    return town;
  } catch (error) {
    await stop();
    throw error;
  }
}

export async function launchBrowser() {
  const chromium = await chromiumDriver();
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox"],
  });
}

// A new browser context holding `id`'s certificate, with the console open and /api/me answered.
export async function openConsole(browser, town, id,
  { viewport = { width: 1280, height: 800 }, usePfx = false } = {}) {
  let clientCertificate;
  if (usePfx) {
    const { pfxPath, passphrase } = await town.p12(id);
    clientCertificate = { origin: town.consoleUrl, pfxPath, passphrase };
  } else {
    clientCertificate = { origin: town.consoleUrl, ...town.cert(id) };
  }
  const context = await browser.newContext({
    viewport,
    ignoreHTTPSErrors: true,
    clientCertificates: [clientCertificate],
  });
  const page = await context.newPage();
  // Uncaught errors of the page's scripts, for tests to assert there were none.
  page.saferlinkErrors = [];
  page.on("pageerror", (error) => page.saferlinkErrors.push(error.message));
  // Count the live feed's Welcomes (see waitOnline).
  page.saferlinkWelcomes = 0;
  page.on("websocket", (ws) => {
    ws.on("framereceived", ({ payload }) => {
      if (typeof payload === "string" && payload.includes('"welcome"')) page.saferlinkWelcomes += 1;
    });
  });
  await page.goto(town.consoleUrl + "/");
  await page.waitForFunction(() => {
    const who = document.getElementById("who");
    return who && !/Checking/.test(who.textContent);
  }, null, { timeout: 20000 });
  return { context, page };
}

// Waits until the console's live feed is online: at least `count` Welcomes received on
// /api/live (counted from openConsole on) and #offline hidden.
export async function waitOnline(page, { count = 1, timeout = 20000 } = {}) {
  const deadline = Date.now() + timeout;
  while ((page.saferlinkWelcomes || 0) < count) {
    if (Date.now() > deadline) throw new Error("the console's live feed did not come online");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await page.locator("#offline").waitFor({ state: "hidden", timeout });
}

// Saves the page as NAME.png in $SCREENS_OUT (default tests/browser/out/screens/); with
// UPDATE_SCREENS=1 also as docs/screens/NAME.png.
export async function screenshot(page, name) {
  const out = process.env.SCREENS_OUT || path.join(HERE, "out", "screens");
  await mkdir(out, { recursive: true });
  const file = path.join(out, `${name}.png`);
  await page.screenshot({ path: file });
  if (process.env.UPDATE_SCREENS === "1") {
    const docs = path.join(SOURCE_ROOT, "docs", "screens");
    await mkdir(docs, { recursive: true });
    await copyFile(file, path.join(docs, `${name}.png`));
  }
  return file;
}

// A coordinator query from inside the page (the page's certificate): {status, body}.
export function coordApi(page, op, args = {}) {
  return page.evaluate(async ([op, args]) => {
    const response = await fetch(`/api/coord/${op}`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(args),
    });
    let body = null;
    try {
      body = await response.json();
    } catch {
      body = null;
    }
    return { status: response.status, body };
  }, [op, args]);
}

// Opens a screen of the console's hash router (e.g. "#/notices").
export async function go(page, hash) {
  await page.evaluate((h) => { location.hash = h; }, hash);
}
