// The coordinators' screens in chromium (console/coord.js): the two-person rule on a notice,
// every coordinator screen rendering the seeded demo data (with a screenshot of each), the
// hub's refusal of an illegal transition, the review actions and the retention purge.
//
//   BUILD_DIR=build node --test tests/browser/coord.test.mjs
//   (CONSOLE_DIR=console serves console/ from disk, without a rebuild; UPDATE_SCREENS=1 also
//   writes docs/screens/*.png)
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { readFile, writeFile } from "node:fs/promises";
import { startTown, launchBrowser, openConsole, screenshot, coordApi as api, go } from "./lib.mjs";

let town;
let browser;

before(async () => {
  town = await startTown({ build: process.env.BUILD_DIR });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await town?.stop();
});


// Answers the reason dialog (askReason) with `reason`; `before(dialog)` may set extra fields.
async function giveReason(page, reason, beforeConfirm) {
  const dialog = page.locator("#reason-dialog");
  await dialog.waitFor({ state: "visible" });
  if (beforeConfirm) await beforeConfirm(dialog);
  await page.fill("#reason-text", reason);
  await page.click("#reason-ok");
  await dialog.waitFor({ state: "hidden" });
}

test("two-person rule: the proposer cannot approve, a second coordinator can", async () => {
  const one = await openConsole(browser, town, "coord-01");
  const two = await openConsole(browser, town, "coord-02");
  try {
    const page = one.page;
    // A candidate profile (seeded: several incidents from several members), proposed from its
    // page through the candidates screen's "Propose notice".
    await go(page, "#/candidates");
    const row = page.locator(".candidate-list tbody tr[data-profile-id]").first();
    await row.waitFor();
    const profileId = Number(await row.getAttribute("data-profile-id"));
    await row.locator('[data-action="propose"]').click();
    await page.waitForURL(new RegExp(`#/profile/${profileId}/propose$`));
    const form = page.locator("details.propose");
    await form.waitFor();
    assert.equal(await form.getAttribute("open"), "", "the propose form is open");
    const cited = await form.locator('input[type="checkbox"][data-form-id]:checked').count();
    assert.ok(cited > 0, "the profile's incidents are offered for citing, checked");
    await page.fill("#propose-conditions", "Not to enter any member's premises in Chatham.");
    await page.fill("#propose-towns", "chatham");
    await page.fill("#propose-reason", "browser test: persistent offending");
    await page.click('[data-action="propose"][type="submit"]');
    await page.waitForURL(/#\/notice\/\d+$/);
    const noticeId = Number(page.url().match(/#\/notice\/(\d+)$/)[1]);
    await page.locator(".notice-state [data-state=proposed]").waitFor();

    // The proposer: "Approve" is disabled and explained; the hub refuses a direct call too.
    const approve = page.locator('.actions button[data-action="approve"]');
    await approve.waitFor();
    assert.equal(await approve.isDisabled(), true, "coord-01 may not approve its own proposal");
    assert.match(await page.locator("#two-person").innerText(), /two-person rule/);
    assert.equal(await page.locator('.actions button[data-action="serve"]').count(), 0,
      "a proposed notice offers no serve");
    const refused = await api(page, "notice.approve", { notice_id: noticeId, reason: "myself" });
    assert.equal(refused.status, 403);
    assert.match(refused.body.error, /proposer cannot approve their own notice/);
    assert.match(refused.body.error, /two-person rule/);

    // An illegal transition, asked directly: the hub's message.
    const illegal = await api(page, "notice.serve", { notice_id: noticeId, reason: "too soon" });
    assert.equal(illegal.status, 400);
    assert.equal(illegal.body.error,
      `notice ${noticeId} is proposed; only an approved notice can be served`);

    // The second coordinator approves it with a reason.
    await go(two.page, `#/notice/${noticeId}`);
    const approve2 = two.page.locator('.actions button[data-action="approve"]');
    await approve2.waitFor();
    assert.equal(await approve2.isDisabled(), false);
    await approve2.click();
    await giveReason(two.page, "second coordinator agrees");
    await two.page.locator(".notice-state [data-state=approved]").waitFor();
    assert.match(await two.page.locator(".approved-by").innerText(), /approved by coord-02/);
    assert.match(await two.page.locator("#flash").innerText(), /is now approved/);
    const history = two.page.locator("table.events tbody tr");
    assert.equal(await history.count(), 2);
    assert.match(await history.nth(1).innerText(), /second coordinator agrees/);
    // Now it can be served (and not approved again).
    assert.equal(await two.page.locator('.actions button[data-action="serve"]').count(), 1);
    assert.equal(await two.page.locator('.actions button[data-action="approve"]').count(), 0);

    // The proposer's page, reloaded, shows it approved by coord-02.
    await page.reload();
    await page.locator(".notice-state [data-state=approved]").waitFor();
    assert.match(await page.locator(".approved-by").innerText(), /approved by coord-02/);
  } finally {
    await one.context.close();
    await two.context.close();
  }
});

test("a refused action in the browser shows the hub's message", async () => {
  const { context, page } = await openConsole(browser, town, "coord-02");
  try {
    // Serve an approved notice, then dispute and resolve it, all through the buttons.
    const approved = await api(page, "notice.list", { state: "approved" });
    assert.equal(approved.status, 200);
    assert.ok(approved.body.length > 0, "the demo seeds approved notices");
    const id = approved.body[0].notice_id;
    await go(page, `#/notice/${id}`);
    await page.locator('.actions button[data-action="serve"]').click();
    await giveReason(page, "served in person");
    await page.locator(".notice-state [data-state=active]").waitFor();
    await page.locator('.actions button[data-action="dispute"]').click();
    await giveReason(page, "appeal received");
    await page.locator(".notice-state [data-state=disputed]").waitFor();
    await page.locator('.actions button[data-action="resolve"]').click();
    await giveReason(page, "appeal rejected", async (dialog) => {
      await dialog.locator("#resolve-outcome").selectOption("active");
    });
    await page.locator(".notice-state [data-state=active]").waitFor();

    // Meanwhile another coordinator revokes it: this page's dispute is then refused and the
    // hub's message is shown; the page reloads to the real state.
    const revoked = await api(page, "notice.revoke", { notice_id: id, reason: "withdrawn" });
    assert.equal(revoked.status, 200);
    await page.locator('.actions button[data-action="dispute"]').click();
    await giveReason(page, "late appeal");
    const flashBox = page.locator("#flash.error");
    await flashBox.waitFor();
    assert.match(await flashBox.innerText(), new RegExp(`notice ${id} is revoked`));
    await page.locator(".notice-state [data-state=revoked]").waitFor();
    assert.equal(await page.locator(".actions button").count(), 0, "a revoked notice has no action");
  } finally {
    await context.close();
  }
});

test("every coordinator screen renders the demo data", async () => {
  const { context, page } = await openConsole(browser, town, "coord-01");
  try {
    // Review queue, newest first.
    await go(page, "#/review");
    const queue = page.locator(".review-queue tbody tr[data-form-id]");
    await queue.first().waitFor();
    assert.ok((await queue.count()) > 0);
    await screenshot(page, "review");

    // One form: details, linked profiles, and the actions.
    const formId = await queue.first().getAttribute("data-form-id");
    await queue.first().locator("a").first().click();
    await page.waitForURL(/#\/form\//);
    await page.locator("#form-facts").waitFor();
    assert.match(await page.locator(".form-page dl.facts").innerText(), new RegExp(formId.replace(/[.:]/g, "\\$&")));
    await screenshot(page, "form");
    // Link it to a profile found by search, then mark it reviewed.
    const panel = page.locator("details.panel", { hasText: "Link to an existing profile" });
    if ((await panel.getAttribute("open")) === null) await panel.locator("summary").click();
    await page.click('[data-action="search"]');
    const pick = page.locator('.link-results button[data-action="link"]:not([disabled])').first();
    await pick.waitFor();
    const picked = await pick.getAttribute("data-profile-id");
    await pick.click();
    await page.locator(`ul.linked li[data-profile-id="${picked}"]`).waitFor();
    await page.click('button[data-action="review"]');
    await page.locator('button[data-action="review"][disabled]', { hasText: "Reviewed" }).waitFor();
    const after = await api(page, "incidents.list", { unreviewed: true, limit: 10000 });
    assert.ok(!after.body.some((f) => f.form_id === formId), "the form left the queue");

    // Another form: create a profile from it; the new profile's page lists the form.
    const other = after.body[0].form_id;
    await go(page, `#/form/${encodeURIComponent(other)}`);
    await page.locator("#form-facts").waitFor();
    await page.locator("summary", { hasText: "Create a profile from this form" }).click();
    await page.fill("#new-name", "Browser Test Person");
    await page.fill("#new-aliases", "BTP, Tester");
    await page.check("#new-weapons");
    await page.click('button[data-action="create-profile"]');
    await page.waitForURL(/#\/profile\/\d+$/);
    await page.locator(`.profile-incidents tbody tr[data-form-id="${other}"]`).waitFor();
    assert.match(await page.locator(".profile-page h2").innerText(), /Browser Test Person/);
    assert.equal(await page.locator(".profile-page .heading .flag-weapons").count(), 1);

    // Candidates.
    await go(page, "#/candidates");
    const candidates = page.locator(".candidate-list tbody tr[data-profile-id]");
    await candidates.first().waitFor();
    await screenshot(page, "candidates");

    // A profile with incidents: the audit note, the SAR link, photos, notices. Give it a photo
    // first (uploaded from the command line, added with profiles.photo_add).
    const profileId = await candidates.first().getAttribute("data-profile-id");
    const png = path.join(town.dir, "face.png");
    // A neutral silhouette drawn on a canvas (no real face in the screenshots).
    const dataUrl = await page.evaluate(() => {
      const canvas = document.createElement("canvas");
      canvas.width = 120;
      canvas.height = 150;
      const g = canvas.getContext("2d");
      g.fillStyle = "#dfe4ec";
      g.fillRect(0, 0, 120, 150);
      g.fillStyle = "#7d8799";
      g.beginPath();
      g.arc(60, 55, 28, 0, 2 * Math.PI);
      g.fill();
      g.beginPath();
      g.ellipse(60, 150, 50, 55, 0, Math.PI, 2 * Math.PI);
      g.fill();
      return canvas.toDataURL("image/png");
    });
    await writeFile(png, Buffer.from(dataUrl.split(",")[1], "base64"));
    const upload = await town.cli("coord-01", "upload", png);
    assert.equal(upload.code, 0, upload.stderr);
    const sha = upload.stdout.match(/[0-9a-f]{64}/)[0];
    const added = await api(page, "profiles.photo_add", { profile_id: Number(profileId), sha256: sha });
    assert.equal(added.status, 200, JSON.stringify(added.body));
    await candidates.first().locator("td a").first().click();
    await page.waitForURL(new RegExp(`#/profile/${profileId}$`));
    await page.locator(".profile-incidents tbody tr[data-form-id]").first().waitFor();
    assert.match(await page.locator(".audit-note").innerText(), /recorded in the audit log/);
    const sar = page.locator('a[data-action="sar"]');
    assert.equal(await sar.getAttribute("href"), `/api/sar/${profileId}`);
    assert.notEqual(await sar.getAttribute("download"), null);
    const img = page.locator(`.profile-page img.photo[src="/api/photo/${sha}"]`);
    await img.waitFor();
    await page.waitForFunction((src) => {
      const i = document.querySelector(`img[src="${src}"]`);
      return i && i.complete && i.naturalWidth > 0;
    }, `/api/photo/${sha}`);
    await screenshot(page, "profile");
    // The subject access export downloads as one JSON file, the profile's photo inside.
    const [download] = await Promise.all([page.waitForEvent("download"), sar.click()]);
    assert.equal(download.suggestedFilename(), `sar-profile-${profileId}.json`);
    const exported = JSON.parse(await readFile(await download.path(), "utf8"));
    assert.equal(String(exported.profile_id), String(profileId));
    assert.equal(typeof exported.export, "object");
    const photoOut = exported.photos.find((p) => p.sha256 === sha);
    assert.ok(photoOut, "the export carries the profile's photo");
    assert.ok(photoOut.data_b64.length > 0);

    // Notices: all, then by state tab.
    await go(page, "#/notices");
    const notices = page.locator(".notice-list tbody tr[data-notice-id]");
    await notices.first().waitFor();
    assert.ok((await notices.count()) >= 5);
    await screenshot(page, "notices");
    await page.click('.tabs a[data-state="active"]');
    await page.waitForURL(/#\/notices\/active$/);
    await page.locator(".count", { hasText: "active" }).waitFor();
    const states = await page.locator(".notice-list tbody tr[data-notice-id]").evaluateAll(
      (rows) => rows.map((r) => r.dataset.state));
    assert.ok(states.length > 0 && states.every((s) => s === "active"), states.join(","));

    // One active notice: its history and the gallery handsets (a shop's handset syncs the
    // gallery first, so it holds every active notice).
    const sync = await town.cli("shop-chatham-01", "gallery", "--dir", path.join(town.dir, "gallery"));
    assert.equal(sync.code, 0, sync.stderr);
    await page.locator(".notice-list tbody tr[data-notice-id] a[data-notice-id]").first().click();
    await page.waitForURL(/#\/notice\/\d+$/);
    await page.locator(".notice-state [data-state=active]").waitFor();
    assert.ok((await page.locator("table.events tbody tr").count()) >= 3);
    await page.locator(".gallery-handsets").waitFor();
    assert.equal(await page.locator('.actions button[data-action="dispute"]').count(), 1);
    assert.equal(await page.locator('.actions button[data-action="revoke"]').count(), 1);
    await page.locator('[data-list="holding"] li[data-device-id="shop-chatham-01"]').waitFor();
    await screenshot(page, "notice");

    // The audit log: the chain verified, rows, paging.
    await go(page, "#/audit");
    await page.locator(".verdict-ok").waitFor();
    assert.match(await page.locator(".verdict").innerText(), /verified/);
    const rows = page.locator(".audit-rows tbody tr[data-seq]");
    await rows.first().waitFor();
    const newest = Number(await rows.first().getAttribute("data-seq"));
    await screenshot(page, "audit");
    await page.click('button[data-action="older"]');
    await page.waitForFunction((n) => {
      const first = document.querySelector(".audit-rows tbody tr[data-seq]");
      return first && Number(first.dataset.seq) < n;
    }, newest);
    // Filtered by actor: only coord-01's rows.
    await page.fill("#audit-actor", "coord-01");
    await page.click('button[data-action="filter"]');
    await page.waitForFunction(() => {
      const cells = [...document.querySelectorAll(".audit-rows tbody tr td:nth-child(3)")];
      return cells.length > 0 && cells.every((c) => c.textContent.startsWith("coord-01"));
    });

    // Retention purge: the preview, then run it (confirmed with a reason).
    await go(page, "#/purge");
    await page.locator('.purge-report[data-dry-run="true"]').waitFor();
    await screenshot(page, "purge");
    await page.click('button[data-action="purge"]');
    await giveReason(page, "browser test: run the purge");
    await page.locator('.purge-result .purge-report[data-dry-run="false"]').waitFor();
    assert.match(await page.locator("#flash").innerText(), /Purge done/);
  } finally {
    await context.close();
  }
});

test("the coordinator screens are not for the control room", async () => {
  const { context, page } = await openConsole(browser, town, "cctv-op-01");
  try {
    await go(page, "#/notices");
    await page.locator("main h2", { hasText: "Not available" }).waitFor();
    const answer = await api(page, "notice.list", {});
    assert.equal(answer.status, 403);
  } finally {
    await context.close();
  }
});
