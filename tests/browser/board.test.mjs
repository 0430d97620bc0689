// The control room's board: panic alerts from simulated handsets show up live, responders
// answer from the browser and the handset hears it; sightings; handsets on air; offline.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { startTown, launchBrowser, openConsole, screenshot, waitOnline } from "./lib.mjs";

const WAIT = 20000;

// Opens the board as `id` and waits until the live feed is on and the alerts are loaded.
async function openBoard(browser, town, id, options) {
  const opened = await openConsole(browser, town, id, options);
  const { page } = opened;
  await waitOnline(page);
  await page.locator("#alert-list").waitFor({ state: "attached", timeout: WAIT });
  await page.waitForFunction(() => !document.querySelector(".b-empty")?.textContent
    .startsWith("Loading"), null, { timeout: WAIT });
  return opened;
}

// The alert id a `saferlink panic` printed on its first line.
async function alertIdOf(handset) {
  const line = await handset.waitFor(/^[a-z0-9-]+:\d+$/, WAIT);
  return line.trim();
}

describe("alert board", () => {
  let town;
  let browser;

  before(async () => {
    town = await startTown({ build: process.env.BUILD_DIR, escalationMs: 60000 });
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await town?.stop();
  });

  it("shows a panic on the CCTV screen; Acknowledge reaches the handset", async () => {
    const { context, page } = await openBoard(browser, town, "cctv-op-01");
    try {
      const handset = town.spawnCli("shop-chatham-01", "panic", "--note", "browser test",
        "--wait", "60");
      const alertId = await alertIdOf(handset);
      const card = page.locator(`[data-alert-id="${alertId}"]`);
      await card.waitFor({ timeout: WAIT });
      await card.getByText("browser test").waitFor({ timeout: WAIT });
      assert.equal(await card.getAttribute("data-state"), "open");
      assert.match(await card.getAttribute("class"), /b-loud/);
      // A sound needs a user gesture: the button is there and reachable.
      await screenshot(page, "board-1280");
      const sound = page.locator("button.b-sound");
      assert.equal(await sound.textContent(), "Enable sound");
      await sound.focus();
      await page.keyboard.press("Enter");
      assert.equal(await sound.getAttribute("aria-pressed"), "true");
      await sound.click();
      assert.equal(await sound.getAttribute("aria-pressed"), "false");

      await page.setViewportSize({ width: 1920, height: 1080 });
      await screenshot(page, "board-1920");
      await page.setViewportSize({ width: 1280, height: 800 });

      await card.locator('button[data-action="ACKNOWLEDGED"]').click();
      const line = await handset.waitFor(/acknowledged by cctv-op-01/, WAIT);
      assert.match(line, /CCTV: acknowledged by cctv-op-01/);
      await card.getByText(/Acknowledged\s*by cctv-op-01/).waitFor({ timeout: WAIT });
      await page.waitForFunction((id) => document.querySelector(
        `[data-alert-id="${id}"]`)?.dataset.state === "acknowledged", alertId, { timeout: WAIT });
      assert.doesNotMatch(await card.getAttribute("class"), /b-loud/);
      // Only Acknowledge for CCTV.
      assert.equal(await card.locator("button[data-action]").count(), 1);
      await handset.exit;
      await screenshot(page, "board-acknowledged");

      // To the handsets screen and back: the board comes back from /api/alerts.
      await page.getByRole("link", { name: "Handsets" }).click();
      await page.locator("#handset-list").waitFor();
      await page.getByRole("link", { name: "Alert board" }).click();
      await page.locator(`[data-alert-id="${alertId}"][data-state="acknowledged"]`)
        .waitFor({ timeout: WAIT });
      assert.deepEqual(page.saferlinkErrors, []);
    } finally {
      await context.close();
    }
  });

  it("a panic pressed on a simulated handset (saferlink-sim) appears on the CCTV screen and the "
    + "handset hears the acknowledgement naming the operator", async () => {
    const { context, page } = await openBoard(browser, town, "cctv-op-01");
    const handset = town.spawnSim("shop-chatham-02", "--hold", "0.2");
    try {
      await handset.waitFor(/ on air /, WAIT);
      handset.key("p");  // the panic button, held
      const raised = await handset.waitFor(/PANIC raised \S+/, WAIT);
      const alertId = raised.match(/PANIC raised (\S+)/)[1];
      const card = page.locator(`[data-alert-id="${alertId}"]`);
      await card.waitFor({ timeout: WAIT });
      assert.equal(await card.getAttribute("data-state"), "open");
      await card.locator('button[data-action="ACKNOWLEDGED"]').click();
      const heard = await handset.waitFor(
        new RegExp(`acknowledged by cctv-op-01 \\(cctv, all\\) for ${alertId}`), WAIT);
      assert.match(heard, /LED/);  // the handset's own status line, not an echo of the board
      await card.getByText(/Acknowledged\s*by cctv-op-01/).waitFor({ timeout: WAIT });
    } finally {
      await handset.kill();
      await context.close();
    }
  });

  it("police: En route, reached with the keyboard alone, reaches the handset", async () => {
    const { context, page } = await openBoard(browser, town, "police-chatham-01");
    try {
      const handset = town.spawnCli("shop-chatham-02", "panic", "--note", "police test",
        "--wait", "60");
      const alertId = await alertIdOf(handset);
      const card = page.locator(`[data-alert-id="${alertId}"]`);
      await card.waitFor({ timeout: WAIT });
      for (const action of ["ACKNOWLEDGED", "EN_ROUTE", "ON_SCENE", "RESOLVED"]) {
        assert.equal(await card.locator(`button[data-action="${action}"]`).count(), 1, action);
      }
      // By keyboard alone: Tab from the top of the page to "En route", then Enter.
      await page.locator("body").focus();
      let reached = false;
      for (let i = 0; i < 40 && !reached; ++i) {
        await page.keyboard.press("Tab");
        reached = await page.evaluate((id) => {
          const b = document.activeElement;
          return b?.dataset.action === "EN_ROUTE" && b.closest("[data-alert-id]")?.dataset.alertId === id;
        }, alertId);
      }
      assert.ok(reached, "En route is reachable with Tab");
      await page.keyboard.press("Enter");
      const line = await handset.waitFor(/en.route by police-chatham-01/i, WAIT);
      assert.match(line, /^Police: en_route by police-chatham-01/);
      await card.getByText(/En route\s*by police-chatham-01/).waitFor({ timeout: WAIT });
      await handset.exit;
      await screenshot(page, "board-police");
    } finally {
      await context.close();
    }
  });

  it("posts a sighting from the console; a shop's handset receives it", async () => {
    const listener = town.spawnCli("shop-chatham-02", "listen", "--seconds", "60");
    await listener.waitFor(/^listening as shop-chatham-02/, WAIT);
    const { context, page } = await openBoard(browser, town, "cctv-op-01");
    try {
      const text = `Man in a red cap, browser test ${Date.now()}`;
      await page.getByLabel("What was seen (required)").fill(text);
      await page.getByLabel("Location").fill("Pentagon Centre, north entrance");
      await page.getByLabel("Heading").fill("towards the bus station");
      await page.getByLabel("Town (required)").fill("chatham");
      await page.getByRole("button", { name: "Post sighting" }).click();
      await page.locator("#sighting-result").filter({ hasText: /Accepted/ })
        .waitFor({ timeout: WAIT });
      const line = await listener.waitFor(new RegExp(`SIGHTING .*${text}`), WAIT);
      assert.match(line, /cctv-op-01/);
      assert.match(line, /Pentagon Centre/);
      // And it is on the board's own sightings list.
      await page.locator("#sighting-list").getByText(text).waitFor({ timeout: WAIT });
      // A board opened later lists it too (GET /api/sightings: the last 12 hours of the
      // viewer's town), not only boards that were open when it was posted.
      const later = await openBoard(browser, town, "police-chatham-01");
      try {
        await later.page.locator("#sighting-list").getByText(text).waitFor({ timeout: WAIT });
      } finally {
        await later.context.close();
      }

      // A town the hub does not know: the hub's error is shown.
      await page.getByLabel("What was seen (required)").fill("nowhere");
      await page.getByLabel("Town (required)").fill("atlantis");
      await page.getByRole("button", { name: "Post sighting" }).click();
      await page.locator("#sighting-result").filter({ hasText: /Refused/ })
        .waitFor({ timeout: WAIT });
      await screenshot(page, "board-sighting");
    } finally {
      await context.close();
      await listener.kill();
    }
  });

  it("flags a sighting of an excluded person as a possible breach", async () => {
    const notices = await town.cli("coord-01", "coord", "--json", "notice", "list",
      "--state", "active");
    assert.equal(notices.code, 0, notices.stderr);
    const active = notices.stdout.trim().split("\n").map((l) => JSON.parse(l))
      .find((n) => n.towns.includes("all") || n.towns.includes("chatham"));
    assert.ok(active, "the demo data has an active notice covering chatham");

    const { context, page } = await openBoard(browser, town, "cctv-op-01");
    try {
      const sent = await town.cli("shop-chatham-01", "sighting", "--text",
        "The excluded man is back", "--profile", String(active.profile_id),
        "--location", "Chatham High Street");
      assert.equal(sent.code, 0, sent.stderr);
      const item = page.locator("#sighting-list li").filter({ hasText: "The excluded man is back" });
      await item.waitFor({ timeout: WAIT });
      await item.getByText(`POSSIBLE BREACH (notice ${active.notice_id})`)
        .waitFor({ timeout: WAIT });
      assert.match(await item.textContent(), /shop-chatham-01/);
      assert.match(await item.textContent(), /Chatham High Street/);
      await screenshot(page, "board-breach");
    } finally {
      await context.close();
    }
  });

  it("lists a connected handset on the handsets screen", async () => {
    const listener = town.spawnCli("shop-chatham-01", "listen", "--seconds", "60");
    await listener.waitFor(/^listening as shop-chatham-01/, WAIT);
    const { context, page } = await openConsole(browser, town, "cctv-op-01");
    try {
      await page.goto(town.consoleUrl + "/#/handsets");
      const row = page.locator('#handset-list tr[data-device-id="shop-chatham-01"]').first();
      await row.waitFor({ timeout: WAIT });
      assert.match(await row.textContent(), /shop/);
      assert.match(await row.textContent(), /on air/);
      assert.doesNotMatch(await row.textContent(), /console/);
      // This page's own live feed is on air too, marked as a console (the list refreshes
      // every 5 s, and the feed may have said hello after the first load).
      await page.locator('#handset-list tr[data-device-id="cctv-op-01"]')
        .filter({ hasText: "cctv (console)" }).waitFor({ timeout: WAIT });
      await screenshot(page, "handsets");
    } finally {
      await context.close();
      await listener.kill();
    }
  });

  it("shows the offline indicator when the hub goes away", async () => {
    const { context, page } = await openBoard(browser, town, "cctv-op-01");
    try {
      assert.equal(await page.locator("#offline").isHidden(), true);
      await town.killHub();
      await page.locator("#offline").waitFor({ state: "visible", timeout: WAIT });
      await screenshot(page, "board-offline");
    } finally {
      await context.close();
    }
  });
});

describe("alert board: escalation and cancel", () => {
  let town;
  let browser;

  before(async () => {
    town = await startTown({ build: process.env.BUILD_DIR, seedDemo: false, escalationMs: 2000 });
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await town?.stop();
  });

  it("shows the escalation rounds of an unanswered alert, then its cancel", async () => {
    const { context, page } = await openBoard(browser, town, "cctv-op-01");
    try {
      const handset = town.spawnCli("shop-chatham-01", "panic", "--note", "nobody answers",
        "--status", "exercise", "--wait", "60");
      const alertId = await alertIdOf(handset);
      const card = page.locator(`[data-alert-id="${alertId}"]`);
      await card.waitFor({ timeout: WAIT });
      await card.getByText(/EXERCISE/).first().waitFor({ timeout: WAIT });
      await card.locator(".b-escalated").filter({ hasText: /round [1-9]/ })
        .waitFor({ timeout: WAIT });
      await handset.waitFor(/^escalated /, WAIT);

      const cancelled = await town.cli("shop-chatham-01", "cancel", alertId, "--reason",
        "false alarm");
      assert.equal(cancelled.code, 0, cancelled.stderr);
      await page.waitForFunction((id) => document.querySelector(
        `[data-alert-id="${id}"]`)?.dataset.state === "cancelled", alertId, { timeout: WAIT });
      await card.getByText(/Cancelled by the sender/).waitFor({ timeout: WAIT });
      assert.equal(await card.locator("button[data-action]").count(), 0);
      await screenshot(page, "board-cancelled");
      await handset.kill();
    } finally {
      await context.close();
    }
  });
});
