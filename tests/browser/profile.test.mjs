// A coordinator keeping a profile right on its page (console/coord.js, #/profile/ID): editing
// it (profiles.edit), adding a photo uploaded over the live feed (UploadBegin/UploadChunk, then
// profiles.photo_add with the SHA-256 the hub stored it under) and removing it, the hub's
// refusal of a file that is not an image, and merging a duplicate into it (profiles.merge).
//
//   BUILD_DIR=build node --test tests/browser/profile.test.mjs
//   (CONSOLE_DIR=console serves console/ from disk, without a rebuild; UPDATE_SCREENS=1 also
//   writes docs/screens/profile-edit.png)
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { deflateSync } from "node:zlib";
import { startTown, launchBrowser, openConsole, waitOnline, screenshot, coordApi as api, go } from "./lib.mjs";

let town;
let browser;
let session;

before(async () => {
  town = await startTown({ build: process.env.BUILD_DIR });
  browser = await launchBrowser();
  session = await openConsole(browser, town, "coord-01");
  await waitOnline(session.page);
});

after(async () => {
  await session?.context.close();
  await browser?.close();
  await town?.stop();
});


// --- a small valid PNG, built here (with a tEXt chunk the hub strips) -------------------------

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k += 1) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(bytes) {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type, data) {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, "latin1"), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([length, body, crc]);
}

// A width x height RGB image: a grey silhouette (a disc on a light background).
function makePng(width = 48, height = 60) {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bit depth
  header[9] = 2; // colour type: RGB
  const rows = [];
  for (let y = 0; y < height; y += 1) {
    const row = Buffer.alloc(1 + width * 3); // filter byte 0, then pixels
    for (let x = 0; x < width; x += 1) {
      const inside = (x - width / 2) ** 2 + (y - height / 3) ** 2 < (width / 4) ** 2 ||
        (y > height * 0.7 && Math.abs(x - width / 2) < width * 0.4);
      const v = inside ? 0x7d : 0xdf;
      row[1 + x * 3] = v;
      row[2 + x * 3] = v + 10;
      row[3 + x * 3] = v + 28;
    }
    rows.push(row);
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", header),
    chunk("tEXt", Buffer.from("Comment\0taken at 51.38N 0.52E by browser test", "latin1")),
    chunk("IDAT", deflateSync(Buffer.concat(rows))),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

// Two live (not merged) profiles of the seeded demo data.
async function twoProfiles(page) {
  const list = await api(page, "profiles.list", { limit: 500 });
  assert.equal(list.status, 200, JSON.stringify(list.body));
  const live = list.body.filter((p) => !p.merged_into);
  assert.ok(live.length >= 2, "the demo seed has at least two profiles");
  return [live[0], live[1]];
}

// Waits for the flash message of `kind` ("ok" | "error") matching `pattern`.
async function expectFlash(page, kind, pattern) {
  await page.locator(`#flash.${kind}`, { hasText: pattern }).waitFor({ state: "visible" });
}

test("edit a profile, add and remove a photo, a non-image refused, merge a duplicate", async () => {
  const { page } = session;
  const [target, duplicate] = await twoProfiles(page);

  // --- edit ---------------------------------------------------------------------------------
  await go(page, `#/profile/${target.profile_id}`);
  const edit = page.locator('.profile-page [data-action="edit-profile"]');
  await edit.waitFor();
  await edit.click();
  const panel = page.locator("details#edit-profile");
  assert.equal(await panel.getAttribute("open"), "", "the edit panel opens");
  assert.equal(await page.inputValue("#edit-name"), target.name, "the form holds the current name");
  assert.equal(await page.evaluate(() => document.activeElement?.id), "edit-name",
    "the name field has the focus");
  const description = "Tall, grey hooded top, walks with a limp. Edited in the browser test.";
  await page.fill("#edit-description", description);
  await page.fill("#edit-aliases", "Limping Lenny\nThe Grey Hood");
  await screenshot(page, "profile-edit");
  await page.click('[data-action="save-profile"]');
  await page.locator(".profile-page .description", { hasText: "Edited in the browser test" }).waitFor();
  await expectFlash(page, "ok", /saved \(aliases, description changed\)/);
  assert.equal(await page.locator(".profile-page .aliases").innerText(), "Limping Lenny, The Grey Hood");
  assert.equal(await panel.getAttribute("open"), null, "the panel closes after saving");
  const shown = await api(page, "profiles.show", { profile_id: target.profile_id });
  assert.equal(shown.status, 200);
  assert.equal(shown.body.description, description);
  assert.deepEqual([...shown.body.aliases].sort(), ["Limping Lenny", "The Grey Hood"]);
  assert.equal(shown.body.name, target.name, "the name was not sent, so not changed");

  // An edit the hub refuses (a name over 200 bytes; the field's maxlength lifted to get it
  // past the browser): the hub's message is shown and nothing changes.
  await edit.click();
  await page.evaluate(() => document.getElementById("edit-name").removeAttribute("maxlength"));
  await page.fill("#edit-name", "x".repeat(201));
  await page.click('[data-action="save-profile"]');
  await expectFlash(page, "error", /name/);
  const unchanged = await api(page, "profiles.show", { profile_id: target.profile_id });
  assert.equal(unchanged.body.name, target.name, "the refused edit changed nothing");
  await page.locator('[data-action="cancel-edit"]').click();
  assert.equal(await panel.getAttribute("open"), null);

  // --- add a photo ----------------------------------------------------------------------------
  const png = makePng();
  const sentSha = createHash("sha256").update(png).digest("hex");
  await page.setInputFiles('.profile-page input[data-action="add-photo"]',
    { name: "subject.png", mimeType: "image/png", buffer: png });
  const item = page.locator(".profile-page ul.photo-list li[data-sha256]");
  await item.first().waitFor();
  assert.equal(await item.count(), 1);
  const storedSha = await item.first().getAttribute("data-sha256");
  assert.match(storedSha, /^[0-9a-f]{64}$/);
  assert.notEqual(storedSha, sentSha, "the hub stripped the tEXt chunk: stored under another SHA-256");
  await page.waitForFunction((src) => {
    const img = document.querySelector(`img.photo[src="${src}"]`);
    return img && img.complete && img.naturalWidth === 48;
  }, `/api/photo/${storedSha}`);
  const fetched = await page.evaluate(async (sha) => {
    const r = await fetch(`/api/photo/${sha}`);
    return { status: r.status, type: r.headers.get("content-type") };
  }, storedSha);
  assert.deepEqual(fetched, { status: 200, type: "image/png" });
  const withPhoto = await api(page, "profiles.show", { profile_id: target.profile_id });
  assert.deepEqual(withPhoto.body.photos, [storedSha]);
  await screenshot(page, "profile-photo");

  // --- remove it (confirmed) --------------------------------------------------------------------
  // Cancelling first keeps it.
  await item.first().locator('[data-action="remove-photo"]').click();
  const confirm = page.locator("dialog.confirm-dialog");
  await confirm.waitFor();
  await confirm.locator('[data-action="confirm-cancel"]').click();
  await confirm.waitFor({ state: "detached" });
  assert.equal(await item.count(), 1, "cancelled: the photo stays");
  await item.first().locator('[data-action="remove-photo"]').click();
  await confirm.waitFor();
  await confirm.locator('[data-action="confirm"]').click();
  await page.locator(".profile-page .no-photos").waitFor();
  const withoutPhoto = await api(page, "profiles.show", { profile_id: target.profile_id });
  assert.deepEqual(withoutPhoto.body.photos, []);

  // --- a text file named .png: the hub refuses it, the page says why ---------------------------
  await page.setInputFiles('.profile-page input[data-action="add-photo"]', {
    name: "not-a-photo.png", mimeType: "image/png",
    buffer: Buffer.from("This is a text file, not an image.\n".repeat(20)),
  });
  const refused = page.locator('.profile-page .upload-state[data-state="error"]');
  await refused.waitFor();
  assert.match(await refused.innerText(), /not a JPEG, PNG or WebP image/);
  await expectFlash(page, "error", /not a JPEG, PNG or WebP image/);
  assert.equal(await item.count(), 0, "no photo was added");
  assert.equal(await page.locator('.profile-page input[data-action="add-photo"]').isEnabled(), true,
    "another file can be chosen");

  // --- merge the duplicate into the target -------------------------------------------------------
  await go(page, `#/profile/${duplicate.profile_id}`);
  const merge = page.locator('.profile-page [data-action="merge-profile"]');
  await merge.waitFor();
  await merge.click();
  assert.equal(await page.evaluate(() => document.activeElement?.id), "merge-search");
  await page.fill("#merge-search", target.name);
  await page.press("#merge-search", "Enter");
  const pick = page.locator(`.merge-results [data-action="merge-into"][data-profile-id="${target.profile_id}"]`);
  await pick.waitFor();
  assert.equal(
    await page.locator(`.merge-results [data-profile-id="${duplicate.profile_id}"]`).count(), 0,
    "a profile is not offered as its own merge target");
  await pick.click();
  await confirm.waitFor();
  assert.match(await confirm.innerText(), new RegExp(`Merge profile ${duplicate.profile_id} into ${target.profile_id}`));
  await screenshot(page, "profile-merge-confirm");
  await confirm.locator('[data-action="confirm"]').click();
  await page.waitForURL(new RegExp(`#/profile/${target.profile_id}$`));
  await page.locator(`.profile-page .merged-from a[data-profile-id="${duplicate.profile_id}"]`).waitFor();
  await expectFlash(page, "ok", new RegExp(`Profile ${duplicate.profile_id} merged into`));
  const merged = await api(page, "profiles.show", { profile_id: target.profile_id });
  assert.ok(merged.body.merged_from.includes(duplicate.profile_id));
  assert.ok(merged.body.aliases.includes(duplicate.name), "the duplicate's name became an alias");

  // The merged profile's page points to the target and offers no change.
  await go(page, `#/profile/${duplicate.profile_id}`);
  const note = page.locator(".profile-page .merged-into");
  await note.waitFor();
  assert.match(await note.innerText(), /merged into/);
  assert.equal(await note.locator(`a[href="#/profile/${target.profile_id}"]`).count(), 1);
  await screenshot(page, "profile-merged");
  assert.equal(await page.locator('.profile-page [data-action="edit-profile"]').count(), 0);
  assert.equal(await page.locator('.profile-page [data-action="merge-profile"]').count(), 0);
  assert.equal(await page.locator('.profile-page [data-action="add-photo"]').count(), 0);
  assert.equal(await page.locator('.profile-page [data-action="open-propose"]').count(), 0);

  assert.deepEqual(page.saferlinkErrors, [], "no uncaught errors in the page");
});

test("a photo of several chunks, at 1920x1080", async () => {
  const { context, page } = await openConsole(browser, town, "coord-02",
    { viewport: { width: 1920, height: 1080 } });
  try {
    await waitOnline(page);
    const [target] = await twoProfiles(page);
    // ~100 KiB of PNG (noise barely compresses): seven 16 KiB chunks.
    const width = 190;
    const height = 180;
    const header = Buffer.alloc(13);
    header.writeUInt32BE(width, 0);
    header.writeUInt32BE(height, 4);
    header[8] = 8;
    header[9] = 2;
    const raw = randomBytes(height * (1 + width * 3));
    for (let y = 0; y < height; y += 1) raw[y * (1 + width * 3)] = 0; // filter: none
    const png = Buffer.concat([
      Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
      chunk("IHDR", header), chunk("IDAT", deflateSync(raw)), chunk("IEND", Buffer.alloc(0)),
    ]);
    assert.ok(png.length > 6 * 16 * 1024, `${png.length} bytes: several chunks`);
    const sha = createHash("sha256").update(png).digest("hex");
    await go(page, `#/profile/${target.profile_id}`);
    const input = page.locator('.profile-page input[data-action="add-photo"]');
    await input.waitFor();
    await input.setInputFiles({ name: "noise.png", mimeType: "image/png", buffer: png });
    const item = page.locator(`.profile-page ul.photo-list li[data-sha256="${sha}"]`);
    await item.waitFor();
    await page.waitForFunction((src) => {
      const img = document.querySelector(`img.photo[src="${src}"]`);
      return img && img.complete && img.naturalWidth === 190;
    }, `/api/photo/${sha}`);
    const shown = await api(page, "profiles.show", { profile_id: target.profile_id });
    assert.ok(shown.body.photos.includes(sha), "stored as sent (no metadata to strip)");
    await screenshot(page, "profile-photo-1920");
    assert.deepEqual(page.saferlinkErrors, []);
  } finally {
    await context.close();
  }
});
