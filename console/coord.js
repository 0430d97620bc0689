// The coordinators' screens: the review queue of incident forms, offender profiles, exclusion
// notices (the two-person rule), candidates for a notice, the audit log and the retention purge.
//
// Every datum comes from the hub through coord(op, args) (POST /api/coord/OP, docs/protocol.md
// section 5.8) and goes into the page as text (el()). Each screen draws into its own container
// appended to the view: when the user leaves, the view is emptied and any answer that arrives
// later lands in a detached node instead of the next screen.
import { coord, el, flash, clearFlash, askReason, fmtTime, photo } from "/api.js";

// --- helpers ----------------------------------------------------------------------------------

const CATEGORY = {
  theft_from_shop: "Theft from shop",
  violence_or_threats: "Violence or threats",
  anti_social_behaviour: "Anti-social behaviour",
  criminal_damage: "Criminal damage",
  fraud_or_counterfeit: "Fraud or counterfeit",
  other: "Other",
};
const category = (c) => CATEGORY[c] || c;

export const NOTICE_STATES = ["proposed", "approved", "active", "disputed", "expired", "revoked"];

// A screen's own container inside the view.
function mount(view, ...classes) {
  const root = el("div", { class: ["coord", ...classes].join(" ") });
  view.append(root);
  return root;
}

// Shows an error unless the screen it belongs to has been left.
function failed(root, error) {
  if (root.isConnected) flash(error && error.message ? error.message : String(error));
}

// replaceChildren() without the null/false placeholders of optional parts (the DOM would print
// them as text).
function fill(node, ...children) {
  node.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
}

const loading = () => el("p", { class: "muted loading", role: "status" }, "Loading…");

function table(caption, headers, rows, attrs = {}) {
  return el(
    "table",
    { class: ["data", attrs.class].filter(Boolean).join(" "), dataset: attrs.dataset },
    caption ? el("caption", {}, caption) : null,
    el("thead", {}, el("tr", {}, headers.map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, rows),
  );
}

function emptyRow(cols, text) {
  return el("tr", { class: "empty" }, el("td", { colspan: cols, class: "muted" }, text));
}

// Opens another screen and then shows `message` there (the router clears the flash when the
// screen changes; this listener runs after the router's).
function navigate(hash, message) {
  if (location.hash === hash) {
    flash(message, "ok");
    return;
  }
  window.addEventListener("hashchange", () => flash(message, "ok"), { once: true });
  location.hash = hash;
}

// A definition list from [term, value] pairs (values: text or nodes; null pairs skipped).
function details(pairs) {
  const dl = el("dl", { class: "facts" });
  for (const pair of pairs) {
    if (!pair) continue;
    const [term, value] = pair;
    dl.append(el("dt", {}, term), el("dd", {}, value === null || value === undefined || value === "" ? "—" : value));
  }
  return dl;
}

const stateBadge = (state) => el("span", { class: `state state-${state}`, dataset: { state } }, state);

function flags(p) {
  const out = [];
  if (p.violent) out.push(el("span", { class: "flag flag-violent" }, "Violent"));
  if (p.weapons) out.push(el("span", { class: "flag flag-weapons" }, "Weapons"));
  return out;
}

const formLink = (id) => el("a", { href: `#/form/${encodeURIComponent(id)}`, dataset: { formId: id } }, id);
const profileLink = (id, name) =>
  el("a", { href: `#/profile/${id}`, dataset: { profileId: id } }, name ? `${name} (#${id})` : `Profile #${id}`);
const noticeLink = (id) => el("a", { href: `#/notice/${id}`, dataset: { noticeId: id } }, `Notice ${id}`);

const pounds = (pence) => (pence ? `£${(Number(pence) / 100).toFixed(2)}` : "—");

// Profile names by id (one audited list read), for screens that only hold ids.
async function profileNames() {
  const list = await coord("profiles.list", { include_merged: true, limit: 10000 });
  return new Map(list.map((p) => [p.profile_id, p.name]));
}

function labelled(id, label, input, hint) {
  return el("div", { class: "field" }, el("label", { for: id }, label), input,
    hint ? el("p", { class: "hint muted", id: `${id}-hint` }, hint) : null);
}

// --- review queue -----------------------------------------------------------------------------

function review(ctx, view) {
  const root = mount(view, "review");
  const body = el("div", {}, loading());
  const refresh = el("button", { type: "button", dataset: { action: "refresh" } }, "Refresh");
  root.append(
    el("div", { class: "heading" }, el("h2", {}, "Review queue"), refresh),
    el("p", { class: "muted" },
      "Incident forms no coordinator has reviewed yet, newest incident first. Open one to link " +
        "it to an offender profile, create a profile from it, or mark it reviewed."),
    body,
  );
  const load = async () => {
    body.replaceChildren(loading());
    try {
      const forms = await coord("incidents.list", { unreviewed: true, limit: 500 });
      forms.sort((a, b) => b.occurred_at_ms - a.occurred_at_ms);
      const rows = forms.map((f) =>
        el("tr", { dataset: { formId: f.form_id } },
          el("td", {}, fmtTime(f.occurred_at_ms)),
          el("td", {}, f.town),
          el("td", {}, el("a", { href: `#/form/${encodeURIComponent(f.form_id)}` }, f.premises)),
          el("td", {}, category(f.category)),
          el("td", {}, f.reporter_member),
          el("td", { class: "muted" }, fmtTime(f.received_at_ms)),
          el("td", { class: "mono small" }, f.form_id),
        ));
      body.replaceChildren(
        el("p", { class: "count", role: "status" },
          forms.length === 1 ? "1 form to review" : `${forms.length} forms to review`),
        table(null, ["Occurred", "Town", "Premises", "Category", "Reported by", "Received", "Form id"],
          rows.length ? rows : [emptyRow(7, "Nothing to review.")], { class: "review-queue" }),
      );
    } catch (error) {
      body.replaceChildren();
      failed(root, error);
    }
  };
  refresh.addEventListener("click", load);
  load();
}

// --- one incident form ------------------------------------------------------------------------

function form(ctx, view, [formId]) {
  const root = mount(view, "form-page");
  if (!formId) {
    root.append(el("p", { class: "refused" }, "No form named."));
    return;
  }
  const load = async () => {
    root.replaceChildren(loading());
    try {
      const [f, names] = await Promise.all([
        coord("incidents.show", { form_id: formId }),
        profileNames(),
      ]);
      draw(f, names);
    } catch (error) {
      root.replaceChildren(el("p", {}, el("a", { href: "#/review" }, "← Review queue")));
      failed(root, error);
    }
  };

  const draw = (f, names) => {
    const reviewed = f.reviewed_at_ms !== null && f.reviewed_at_ms !== undefined;
    const markButton = el("button", {
      type: "button", class: "primary", dataset: { action: "review" }, disabled: reviewed,
      onclick: async () => {
        markButton.disabled = true;
        try {
          await coord("incidents.review", { form_id: f.form_id });
          flash(`Form ${f.form_id} marked reviewed.`, "ok");
          await load();
        } catch (error) {
          markButton.disabled = false;
          failed(root, error);
        }
      },
    }, reviewed ? "Reviewed" : "Mark reviewed");

    const linked = f.profile_ids || [];
    const linkedList = linked.length
      ? el("ul", { class: "linked" }, linked.map((id) => el("li", { dataset: { profileId: id } },
          profileLink(id, names.get(id)), " ",
          el("button", {
            type: "button", class: "small", dataset: { action: "unlink", profileId: id },
            "aria-label": `Unlink profile ${id} from this form`,
            onclick: async (event) => {
              event.currentTarget.disabled = true;
              try {
                await coord("profiles.unlink", { profile_id: id, form_id: f.form_id });
                flash(`Form unlinked from profile ${id}.`, "ok");
                await load();
              } catch (error) {
                failed(root, error);
                await load();
              }
            },
          }, "Unlink"))))
      : el("p", { class: "muted" }, "No profile linked yet.");

    fill(root,
      el("p", { class: "crumbs" }, el("a", { href: "#/review" }, "← Review queue")),
      el("div", { class: "heading" },
        el("h2", {}, `${f.premises} · ${category(f.category)}`),
        reviewed
          ? el("span", { class: "state state-reviewed" }, `reviewed by ${f.reviewed_by} ${fmtTime(f.reviewed_at_ms)}`)
          : el("span", { class: "state state-unreviewed" }, "not reviewed"),
        markButton),
      el("div", { class: "columns" },
        el("section", { class: "card", "aria-labelledby": "form-facts" },
          el("h3", { id: "form-facts" }, "The form"),
          details([
            ["Form id", el("span", { class: "mono" }, f.form_id)],
            ["Confirmation", el("span", { class: "mono small" }, f.confirmation)],
            ["Occurred", f.occurred_at ? fmtTime(Date.parse(f.occurred_at)) : fmtTime(f.occurred_at_ms)],
            ["Town", f.town],
            ["Premises", f.premises],
            ["Category", category(f.category)],
            ["Goods", f.goods],
            ["Value", pounds(f.value_pence)],
            ["Police reference", f.police_ref],
            ["Reported by", `${f.reporter_id} (${f.reporter_role}, ${f.reporter_member})`],
            ["Received", fmtTime(f.received_at_ms)],
          ]),
          el("h4", {}, "Description"),
          el("p", { class: "prose" }, f.description || "—"),
          (f.unknown_offenders || []).length
            ? [el("h4", {}, "Unknown offenders"),
               el("ul", {}, f.unknown_offenders.map((u) => el("li", { class: "prose" }, u)))]
            : null,
          (f.stills || []).length
            ? [el("h4", {}, "Stills"),
               el("div", { class: "photos" }, f.stills.map((sha) => photo(sha, `Still from form ${f.form_id}`)))]
            : null,
        ),
        el("section", { class: "card", "aria-labelledby": "form-profiles" },
          el("h3", { id: "form-profiles" }, "Linked profiles"),
          linkedList,
          linkPanel(root, f, load),
          createPanel(root, f),
        ),
      ),
    );
  };
  load();
}

// "Link to an existing profile": search by name or alias, pick one.
function linkPanel(root, f, reload) {
  const input = el("input", { id: "link-search", type: "search", autocomplete: "off",
    placeholder: "name or alias" });
  const results = el("div", { class: "link-results", "aria-live": "polite" });
  const search = async (event) => {
    event.preventDefault();
    results.replaceChildren(loading());
    try {
      const text = input.value.trim();
      const list = await coord("profiles.list", text ? { text, limit: 50 } : { limit: 50 });
      const linked = new Set(f.profile_ids || []);
      results.replaceChildren(list.length
        ? el("ul", { class: "pick" }, list.map((p) => el("li", { dataset: { profileId: p.profile_id } },
            el("button", {
              type: "button", dataset: { action: "link", profileId: p.profile_id },
              disabled: linked.has(p.profile_id),
              onclick: async (e) => {
                e.currentTarget.disabled = true;
                try {
                  await coord("profiles.link", { profile_id: p.profile_id, form_id: f.form_id });
                  flash(`Form linked to ${p.name} (profile ${p.profile_id}).`, "ok");
                  await reload();
                } catch (error) {
                  failed(root, error);
                }
              },
            }, linked.has(p.profile_id) ? "Linked" : "Link"),
            " ", profileLink(p.profile_id, p.name), " ", flags(p),
            p.aliases && p.aliases.length ? el("span", { class: "muted" }, ` aka ${p.aliases.join(", ")}`) : null)))
        : el("p", { class: "muted" }, "No profile matches."));
    } catch (error) {
      results.replaceChildren();
      failed(root, error);
    }
  };
  return el("details", { class: "panel", open: !(f.profile_ids || []).length },
    el("summary", {}, "Link to an existing profile"),
    el("form", { class: "inline", onsubmit: search },
      labelled("link-search", "Search profiles", input),
      el("button", { type: "submit", dataset: { action: "search" } }, "Search")),
    results);
}

// "Create a profile from this form".
function createPanel(root, f) {
  const name = el("input", { id: "new-name", required: true, maxlength: 200, autocomplete: "off" });
  const aliases = el("input", { id: "new-aliases", autocomplete: "off" });
  const description = el("textarea", { id: "new-description", rows: 3, maxlength: 4000 });
  const violent = el("input", { id: "new-violent", type: "checkbox",
    checked: f.category === "violence_or_threats" });
  const weapons = el("input", { id: "new-weapons", type: "checkbox" });
  const submit = el("button", { type: "submit", class: "primary", dataset: { action: "create-profile" } },
    "Create profile and link this form");
  const create = async (event) => {
    event.preventDefault();
    if (!name.value.trim()) {
      flash("A profile needs a name.");
      name.focus();
      return;
    }
    submit.disabled = true;
    try {
      const p = await coord("profiles.create", {
        name: name.value.trim(),
        aliases: aliases.value.split(",").map((a) => a.trim()).filter(Boolean),
        description: description.value.trim(),
        violent: violent.checked,
        weapons: weapons.checked,
        from_form: f.form_id,
      });
      navigate(`#/profile/${p.profile_id}`,
        `Profile ${p.profile_id} (${p.name}) created and linked to form ${f.form_id}.`);
    } catch (error) {
      submit.disabled = false;
      failed(root, error);
    }
  };
  return el("details", { class: "panel" },
    el("summary", {}, "Create a profile from this form"),
    el("form", { class: "stack", onsubmit: create },
      labelled("new-name", "Name", name),
      labelled("new-aliases", "Aliases (comma separated)", aliases),
      labelled("new-description", "Description", description),
      el("div", { class: "checks" },
        el("label", { class: "check" }, violent, " Violent"),
        el("label", { class: "check" }, weapons, " Weapons")),
      el("div", { class: "buttons" }, submit)));
}

// --- profiles ---------------------------------------------------------------------------------

function profiles(ctx, view, [text = ""]) {
  const root = mount(view, "profiles");
  const input = el("input", { id: "profile-search", type: "search", value: text, autocomplete: "off",
    placeholder: "name or alias" });
  const merged = el("input", { id: "profile-merged", type: "checkbox" });
  const body = el("div", {}, loading());
  const load = async () => {
    body.replaceChildren(loading());
    try {
      const args = { limit: 500, include_merged: merged.checked };
      if (input.value.trim()) args.text = input.value.trim();
      const list = await coord("profiles.list", args);
      const rows = list.map((p) => el("tr", { dataset: { profileId: p.profile_id } },
        el("td", { class: "num" }, p.profile_id),
        el("td", {}, el("a", { href: `#/profile/${p.profile_id}` }, p.name),
          p.merged_into ? el("span", { class: "muted" }, ` (merged into ${p.merged_into})`) : null),
        el("td", {}, (p.aliases || []).join(", ")),
        el("td", {}, flags(p)),
        el("td", {}, (p.towns || []).join(", ")),
        el("td", {}, fmtTime(p.last_seen_ms))));
      body.replaceChildren(
        el("p", { class: "count", role: "status" }, `${list.length} profile${list.length === 1 ? "" : "s"}`),
        table(null, ["#", "Name", "Aliases", "Flags", "Towns", "Last seen"],
          rows.length ? rows : [emptyRow(6, "No profile matches.")], { class: "profile-list" }));
    } catch (error) {
      body.replaceChildren();
      failed(root, error);
    }
  };
  root.append(
    el("h2", {}, "Offender profiles"),
    el("form", { class: "inline toolbar", role: "search", onsubmit: (e) => { e.preventDefault(); load(); } },
      labelled("profile-search", "Name or alias", input),
      el("label", { class: "check" }, merged, " include merged"),
      el("button", { type: "submit", dataset: { action: "search" } }, "Search")),
    body,
  );
  load();
}

function profile(ctx, view, [id, mode]) {
  const root = mount(view, "profile-page");
  const profileId = Number(id);
  if (!Number.isInteger(profileId) || profileId <= 0) {
    root.append(el("p", { class: "refused" }, `"${id}" is not a profile id.`));
    return undefined;
  }
  const uploads = new AbortController(); // aborted when the user leaves: stops any upload
  const load = async () => {
    root.replaceChildren(loading());
    try {
      draw(await coord("profiles.show", { profile_id: profileId }));
    } catch (error) {
      root.replaceChildren(el("p", {}, el("a", { href: "#/profiles" }, "← Profiles")));
      failed(root, error);
    }
  };
  const draw = (p) => {
    const live = !p.merged_into; // a merged profile can no longer be changed
    const incidents = [...(p.incidents || [])].sort((a, b) => b.occurred_at_ms - a.occurred_at_ms);
    const proposeBox = live ? proposePanel(root, p, incidents, mode === "propose") : null;
    const editBox = live ? editPanel(root, p, draw) : null;
    const mergeBox = live ? mergePanel(root, p) : null;
    const openPanel = (box) => {
      for (const other of [editBox, mergeBox]) if (other && other !== box) other.open = false;
      box.open = true;
      box.scrollIntoView({ block: "nearest" });
      box.querySelector("input, textarea")?.focus();
    };
    fill(root,
      el("p", { class: "crumbs" }, el("a", { href: "#/profiles" }, "← Profiles")),
      el("div", { class: "heading" },
        el("h2", {}, p.name, el("span", { class: "muted" }, ` · profile ${p.profile_id}`)),
        flags(p),
        el("div", { class: "heading-actions buttons" },
        live ? el("button", {
          type: "button", dataset: { action: "edit-profile" }, "aria-controls": "edit-profile",
          onclick: () => openPanel(editBox),
        }, "Edit profile") : null,
        live ? el("button", {
          type: "button", dataset: { action: "merge-profile" }, "aria-controls": "merge-profile",
          onclick: () => openPanel(mergeBox),
        }, "Merge into another profile…") : null,
        el("a", {
          class: "button", href: `/api/sar/${p.profile_id}`, download: `sar-profile-${p.profile_id}.json`,
          dataset: { action: "sar" },
        }, "Download subject access export (SAR)"),
        live ? el("button", {
          type: "button", class: "primary", dataset: { action: "open-propose" },
          onclick: () => { proposeBox.open = true; proposeBox.scrollIntoView({ block: "start" });
            proposeBox.querySelector("input, textarea")?.focus(); },
        }, "Propose exclusion notice") : null)),
      el("p", { class: "audit-note", role: "note" },
        `Opening this profile is recorded in the audit log (read by ${ctx.me.id}).`),
      p.merged_into
        ? el("p", { class: "warning merged-into", dataset: { mergedInto: p.merged_into } },
            "This profile was merged into ", profileLink(p.merged_into),
            ": its incidents, aliases, photos and notices are there now. It can no longer be " +
              "changed, nor a notice proposed against it.")
        : null,
      editBox,
      mergeBox,
      el("div", { class: "columns" },
        el("section", { class: "card", "aria-labelledby": "profile-facts" },
          el("h3", { id: "profile-facts" }, "Profile"),
          details([
            ["Aliases", el("span", { class: "aliases" }, (p.aliases || []).join(", ") || "—")],
            ["Description", el("span", { class: "prose description" }, p.description || "—")],
            ["Violent", p.violent ? "yes" : "no"],
            ["Weapons", p.weapons ? "yes" : "no"],
            ["Towns", (p.towns || []).join(", ")],
            ["First seen", fmtTime(p.first_seen_ms)],
            ["Last seen", fmtTime(p.last_seen_ms)],
            ["Created", `${fmtTime(p.created_at_ms)} by ${p.created_by}`],
            ["Updated", fmtTime(p.updated_at_ms)],
            (p.merged_from || []).length
              ? ["Merged from", el("span", { class: "merged-from" },
                  p.merged_from.flatMap((m, i) => [i ? ", " : null, profileLink(m)]))]
              : null,
          ]),
          el("h3", { id: "profile-photos" }, "Photos"),
          photosPanel(root, ctx, p, draw, live, uploads.signal),
        ),
        el("section", { class: "card", "aria-labelledby": "profile-notices" },
          el("h3", { id: "profile-notices" }, "Exclusion notices"),
          table(null, ["Notice", "State", "Served", "Expires"],
            (p.notices || []).length
              ? p.notices.map((n) => el("tr", { dataset: { noticeId: n.notice_id } },
                  el("td", {}, noticeLink(n.notice_id)), el("td", {}, stateBadge(n.state)),
                  el("td", {}, fmtTime(n.served_at_ms)), el("td", {}, fmtTime(n.expires_at_ms))))
              : [emptyRow(4, "No notice.")], { class: "profile-notices" }),
          el("h3", {}, `Incidents (${incidents.length})`),
          table(null, ["Occurred", "Town", "Category", "Reported by", "Form"],
            incidents.length
              ? incidents.map((i) => el("tr", { dataset: { formId: i.form_id } },
                  el("td", { class: "nowrap" }, fmtTime(i.occurred_at_ms)), el("td", {}, i.town),
                  el("td", {}, category(i.category)), el("td", {}, i.reporter_member),
                  el("td", { class: "small" }, formLink(i.form_id))))
              : [emptyRow(5, "No incident linked.")], { class: "profile-incidents" }),
        ),
      ),
      proposeBox,
    );
    if (mode === "propose" && proposeBox) {
      proposeBox.scrollIntoView({ block: "start" });
      proposeBox.querySelector("input, textarea")?.focus();
    }
  };
  load();
  return () => uploads.abort();
}

// Aliases as typed: one per line, or (all on one line) separated by commas. Blank ones and
// repeats dropped.
function parseAliases(text) {
  const parts = text.includes("\n") ? text.split("\n") : text.split(",");
  return [...new Set(parts.map((a) => a.trim()).filter(Boolean))];
}

const sameList = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

// "Edit profile": name, aliases, description, flags -> profiles.edit with the fields changed.
// `redraw(profile)` draws the answer (the profile in full).
function editPanel(root, p, redraw) {
  const name = el("input", { id: "edit-name", required: true, maxlength: 200, autocomplete: "off",
    value: p.name });
  const aliases = el("textarea", { id: "edit-aliases", rows: 3, autocomplete: "off",
    "aria-describedby": "edit-aliases-hint" }, (p.aliases || []).join("\n"));
  const description = el("textarea", { id: "edit-description", rows: 4, maxlength: 4000 },
    p.description || "");
  const violent = el("input", { id: "edit-violent", type: "checkbox", checked: p.violent });
  const weapons = el("input", { id: "edit-weapons", type: "checkbox", checked: p.weapons });
  const save = el("button", { type: "submit", class: "primary", dataset: { action: "save-profile" } },
    "Save changes");
  let box = null;
  const cancel = el("button", { type: "button", dataset: { action: "cancel-edit" },
    onclick: () => {
      box.open = false;
      root.querySelector('[data-action="edit-profile"]')?.focus();
    } }, "Cancel");
  const submit = async (event) => {
    event.preventDefault();
    const args = { profile_id: p.profile_id };
    const newName = name.value.trim();
    if (!newName) {
      flash("A profile needs a name.");
      name.focus();
      return;
    }
    if (newName !== p.name) args.name = newName;
    const newAliases = parseAliases(aliases.value);
    if (!sameList(newAliases, p.aliases || [])) args.aliases = newAliases;
    const newDescription = description.value.trim();
    if (newDescription !== (p.description || "")) args.description = newDescription;
    if (violent.checked !== Boolean(p.violent)) args.violent = violent.checked;
    if (weapons.checked !== Boolean(p.weapons)) args.weapons = weapons.checked;
    const changed = Object.keys(args).filter((k) => k !== "profile_id");
    if (!changed.length) {
      flash("Nothing changed.", "ok");
      return;
    }
    save.disabled = true;
    try {
      const updated = await coord("profiles.edit", args);
      if (!root.isConnected) return;
      flash(`Profile ${updated.profile_id} saved (${changed.join(", ")} changed).`, "ok");
      redraw(updated);
      root.querySelector('[data-action="edit-profile"]')?.focus();
    } catch (error) {
      save.disabled = false;
      failed(root, error);
    }
  };
  box = el("details", { class: "panel edit-profile", id: "edit-profile" },
    el("summary", {}, "Edit profile"),
    el("form", { class: "stack", onsubmit: submit, "aria-label": "Edit the profile" },
      labelled("edit-name", "Name", name),
      labelled("edit-aliases", "Aliases", aliases,
        "One per line, or separated by commas on one line. Saving replaces the whole list."),
      labelled("edit-description", "Description", description),
      el("div", { class: "checks" },
        el("label", { class: "check" }, violent, " Violent"),
        el("label", { class: "check" }, weapons, " Weapons")),
      el("p", { class: "muted small" }, "Only the fields you change are sent; the audit log records which."),
      el("div", { class: "buttons" }, save, cancel)));
  return box;
}

// A yes/no question in a modal dialog of its own (no reason to type). Resolves true or false.
function confirmDialog(title, text, confirmLabel, kind = "danger") {
  return new Promise((resolve) => {
    const ok = el("button", { type: "submit", value: "ok", class: kind, dataset: { action: "confirm" } },
      confirmLabel);
    const dialog = el("dialog", { class: "confirm-dialog", "aria-labelledby": "confirm-title",
      "aria-describedby": "confirm-text" },
      el("form", { method: "dialog" },
        el("h2", { id: "confirm-title" }, title),
        el("p", { id: "confirm-text", class: "prose" }, text),
        el("div", { class: "buttons" }, ok,
          el("button", { type: "button", dataset: { action: "confirm-cancel" },
            onclick: () => dialog.close("cancel") }, "Cancel"))));
    dialog.addEventListener("close", () => {
      const yes = dialog.returnValue === "ok";
      dialog.remove();
      resolve(yes);
    }, { once: true });
    document.body.append(dialog);
    dialog.returnValue = "";
    dialog.showModal();
    ok.focus();
  });
}

// "Merge into another profile": pick the profile this one duplicates (profiles.list {text}),
// confirm, profiles.merge {from, into}, then open the profile merged into.
function mergePanel(root, p) {
  const input = el("input", { id: "merge-search", type: "search", autocomplete: "off",
    placeholder: "name or alias" });
  const results = el("div", { class: "merge-results", "aria-live": "polite" });
  const merge = async (target, button) => {
    const yes = await confirmDialog(
      `Merge profile ${p.profile_id} into ${target.profile_id}?`,
      `"${p.name}" (#${p.profile_id}) will be merged into "${target.name}" (#${target.profile_id}): ` +
        "its incidents, aliases, photos and notices move there and its name becomes an alias. " +
        `Profile ${p.profile_id} stays only as a pointer to ${target.profile_id}. This cannot be undone.`,
      "Merge");
    if (!yes) {
      button.focus();
      return;
    }
    button.disabled = true;
    try {
      await coord("profiles.merge", { from: p.profile_id, into: target.profile_id });
      navigate(`#/profile/${target.profile_id}`,
        `Profile ${p.profile_id} merged into ${target.name} (profile ${target.profile_id}).`);
    } catch (error) {
      button.disabled = false;
      failed(root, error);
    }
  };
  const search = async (event) => {
    event.preventDefault();
    results.replaceChildren(loading());
    try {
      const text = input.value.trim();
      const list = (await coord("profiles.list", text ? { text, limit: 50 } : { limit: 50 }))
        .filter((t) => t.profile_id !== p.profile_id && !t.merged_into);
      results.replaceChildren(list.length
        ? el("ul", { class: "pick" }, list.map((t) => el("li", { dataset: { profileId: t.profile_id } },
            el("button", {
              type: "button", dataset: { action: "merge-into", profileId: t.profile_id },
              "aria-label": `Merge this profile into ${t.name} (profile ${t.profile_id})`,
              onclick: (e) => merge(t, e.currentTarget),
            }, "Merge into this"),
            " ", profileLink(t.profile_id, t.name), " ", flags(t),
            t.aliases && t.aliases.length ? el("span", { class: "muted" }, ` aka ${t.aliases.join(", ")}`) : null,
            (t.towns || []).length ? el("span", { class: "muted small" }, ` · ${t.towns.join(", ")}`) : null)))
        : el("p", { class: "muted" }, "No other profile matches."));
    } catch (error) {
      results.replaceChildren();
      failed(root, error);
    }
  };
  return el("details", { class: "panel merge-profile", id: "merge-profile" },
    el("summary", {}, "Merge into another profile (a duplicate)"),
    el("p", { class: "muted small" },
      `Find the profile that "${p.name}" duplicates; this profile is merged into it.`),
    el("form", { class: "inline", role: "search", onsubmit: search },
      labelled("merge-search", "Search profiles", input),
      el("button", { type: "submit", dataset: { action: "merge-search" } }, "Search")),
    results);
}

// --- photo uploads over the live feed (docs/protocol.md section 5.9) --------------------------

const UPLOAD_CHUNK = 16 * 1024;          // the protocol's largest UploadChunk
const UPLOAD_BUFFERED = 256 * 1024;      // keep at most this much queued on the WebSocket
const UPLOAD_ANSWER_MS = 60000;          // no word from the hub for this long: give up

const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

function base64(bytes) {
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x2000) {
    text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x2000));
  }
  return btoa(text);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Uploads `file` to the hub on the live feed `live` (the browser is a device): UploadBegin,
// UploadChunks from the offset the hub asks for, then the final UploadStatus once the hub has
// checked and stored the image. Resolves {sha256, stored_sha256, mime}; rejects with the hub's
// reason (e.g. "not a JPEG, PNG or WebP image"). progress(fraction, text) reports headway.
async function uploadImage(live, file, progress, signal) {
  if (!live || !live.online) throw new Error("The live feed to the hub is offline; try again once it is back.");
  const bytes = new Uint8Array(await file.arrayBuffer());
  if (!bytes.length) throw new Error("The file is empty.");
  progress(0, "Computing the SHA-256…");
  const sha256 = hex(new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)));

  return new Promise((resolve, reject) => {
    let finished = false;
    let timer = null;
    let busyRetries = 0;
    let sending = false;
    const finish = (error, value) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      live.removeEventListener("message", onMessage);
      live.removeEventListener("offline", onOffline);
      signal?.removeEventListener("abort", onAbort);
      if (error) reject(error);
      else resolve(value);
    };
    const waitAnswer = () => {
      clearTimeout(timer);
      timer = setTimeout(() => finish(new Error("The hub did not answer the upload in time.")), UPLOAD_ANSWER_MS);
    };
    const begin = () => {
      try {
        live.send({ upload_begin: { sha256, size: String(bytes.length) } });
        waitAnswer();
      } catch (error) {
        finish(error);
      }
    };
    const stream = async (from) => {
      sending = true;
      clearTimeout(timer);
      try {
        for (let offset = from; offset < bytes.length && !finished; offset += UPLOAD_CHUNK) {
          const piece = bytes.subarray(offset, Math.min(offset + UPLOAD_CHUNK, bytes.length));
          live.send({ upload_chunk: { sha256, offset: String(offset), data: base64(piece) } });
          progress((offset + piece.length) / bytes.length,
            `Sending ${Math.round(((offset + piece.length) * 100) / bytes.length)} %…`);
          while (!finished && live.socket && live.socket.bufferedAmount > UPLOAD_BUFFERED) await sleep(20);
        }
      } catch (error) {
        finish(error);
        return;
      } finally {
        sending = false;
      }
      if (!finished) {
        progress(1, "The hub is checking the image…");
        waitAnswer();
      }
    };
    const onMessage = (event) => {
      const status = event.detail && event.detail.upload_status;
      if (!status || status.sha256 !== sha256) return;
      if (status.error) {
        if (status.busy && busyRetries < 5) {
          busyRetries += 1;
          progress(0, "The hub is still closing an earlier upload of this image; retrying…");
          clearTimeout(timer);
          setTimeout(() => !finished && begin(), 1000);
          return;
        }
        finish(new Error(status.error));
        return;
      }
      if (status.done) {
        finish(null, { sha256, stored_sha256: status.stored_sha256 || sha256, mime: status.mime });
        return;
      }
      if (!sending) stream(Number(status.next_offset || 0));
    };
    const onOffline = () => finish(new Error("The live feed to the hub went offline during the upload; add the photo again to resume."));
    const onAbort = () => finish(new Error("Upload abandoned."));
    live.addEventListener("message", onMessage);
    live.addEventListener("offline", onOffline);
    signal?.addEventListener("abort", onAbort);
    if (signal?.aborted) {
      onAbort();
      return;
    }
    progress(0, "Starting the upload…");
    begin();
  });
}

// The profile's photos, each with "Remove", and "Add photo" (a file uploaded, then
// profiles.photo_add with the SHA-256 the hub stored it under).
function photosPanel(root, ctx, p, redraw, live, signal) {
  const photos = p.photos || [];
  const list = photos.length
    ? el("ul", { class: "photo-list" }, photos.map((sha, n) => el("li", { dataset: { sha256: sha } },
        el("figure", {},
          photo(sha, `Photo ${n + 1} of ${p.name}`),
          el("figcaption", {},
            el("span", { class: "mono small", title: sha }, `${sha.slice(0, 12)}…`),
            live ? el("button", {
              type: "button", class: "small", dataset: { action: "remove-photo", sha256: sha },
              "aria-label": `Remove photo ${n + 1} from this profile`,
              onclick: async (event) => {
                const button = event.currentTarget;
                const yes = await confirmDialog("Remove this photo?",
                  `Photo ${n + 1} (${sha.slice(0, 12)}…) will be removed from "${p.name}" (profile ` +
                    `${p.profile_id}). The image file stays while a form, a notice or another profile ` +
                    "cites it; otherwise the retention purge deletes it.", "Remove photo");
                if (!yes) {
                  button.focus();
                  return;
                }
                button.disabled = true;
                try {
                  const updated = await coord("profiles.photo_remove", { profile_id: p.profile_id, sha256: sha });
                  if (!root.isConnected) return;
                  flash("Photo removed.", "ok");
                  redraw(updated);
                  root.querySelector('[data-action="add-photo"]')?.focus();
                } catch (error) {
                  button.disabled = false;
                  failed(root, error);
                }
              },
            }, "Remove") : null)))))
    : el("p", { class: "muted no-photos" }, "No photo.");
  if (!live) return list;

  const input = el("input", { id: "add-photo", type: "file", accept: "image/jpeg,image/png,image/webp",
    dataset: { action: "add-photo" }, "aria-describedby": "add-photo-hint" });
  const bar = el("progress", { max: 1, value: 0, "aria-label": "Upload progress", hidden: true });
  const state = el("p", { class: "upload-state small", role: "status", "aria-live": "polite" });
  const setState = (text, kind) => {
    state.textContent = text;
    state.dataset.state = kind;
  };
  input.addEventListener("change", async () => {
    const file = input.files && input.files[0];
    if (!file) return;
    input.disabled = true;
    bar.hidden = false;
    bar.value = 0;
    setState(`Uploading ${file.name}…`, "uploading");
    try {
      const stored = await uploadImage(ctx.live, file, (fraction, text) => {
        bar.value = fraction;
        setState(`${file.name}: ${text}`, "uploading");
      }, signal);
      setState(`${file.name}: stored; adding it to the profile…`, "adding");
      const updated = await coord("profiles.photo_add", { profile_id: p.profile_id, sha256: stored.stored_sha256 });
      if (!root.isConnected) return;
      flash(`Photo added (${stored.mime || "image"}, ${stored.stored_sha256.slice(0, 12)}…).`, "ok");
      redraw(updated);
      root.querySelector('[data-action="add-photo"]')?.focus();
    } catch (error) {
      if (!root.isConnected) return;
      const why = error && error.message ? error.message : String(error);
      setState(`${file.name}: refused: ${why}`, "error");
      bar.hidden = true;
      flash(`The photo was not added: ${why}`);
      input.disabled = false;
      input.value = "";
      input.focus();
    }
  });
  return el("div", { class: "photo-panel" },
    list,
    el("div", { class: "add-photo" },
      el("label", { for: "add-photo" }, "Add photo"),
      input,
      el("p", { class: "hint muted", id: "add-photo-hint" },
        "A JPEG, PNG or WebP file of at most 8 MiB. The hub removes metadata (GPS, camera details) before storing it."),
      bar,
      state));
}

// "Propose exclusion notice": cite incidents, conditions, towns, photo, reason.
function proposePanel(root, p, incidents, open) {
  const boxes = incidents.map((i, n) => {
    const box = el("input", { type: "checkbox", id: `cite-${n}`, value: i.form_id, checked: true,
      dataset: { formId: i.form_id } });
    return el("label", { class: "check cite", for: `cite-${n}` }, box,
      el("span", {}, `${fmtTime(i.occurred_at_ms)} · ${i.town} · ${category(i.category)} · ${i.reporter_member}`),
      el("span", { class: "mono small muted nowrap" }, i.form_id));
  });
  const conditions = el("textarea", { id: "propose-conditions", rows: 3, maxlength: 2000, required: true },
    "Not to enter any premises of a Safer Medway Partnership member.");
  const towns = el("input", { id: "propose-towns", value: "all", autocomplete: "off",
    "aria-describedby": "propose-towns-hint" });
  const photoSelect = el("select", { id: "propose-photo" },
    el("option", { value: "" }, "No photo"),
    (p.photos || []).map((sha, n) => el("option", { value: sha, selected: n === 0 }, `Profile photo ${n + 1} (${sha.slice(0, 12)}…)`)));
  const reason = el("textarea", { id: "propose-reason", rows: 2, maxlength: 500, required: true });
  const submit = el("button", { type: "submit", class: "primary", dataset: { action: "propose" } },
    "Propose notice");
  const send = async (event) => {
    event.preventDefault();
    const cited = boxes.map((b) => b.querySelector("input")).filter((b) => b.checked).map((b) => b.value);
    const args = {
      profile_id: p.profile_id,
      incidents: cited,
      conditions: conditions.value.trim(),
      towns: towns.value.split(",").map((t) => t.trim()).filter(Boolean).join(",") || "all",
      reason: reason.value.trim(),
    };
    if (photoSelect.value) args.photo_sha256 = photoSelect.value;
    submit.disabled = true;
    try {
      const notice = await coord("notice.propose", args);
      navigate(`#/notice/${notice.notice_id}`,
        `Notice ${notice.notice_id} proposed. A second coordinator must approve it.`);
    } catch (error) {
      submit.disabled = false;
      failed(root, error);
    }
  };
  return el("details", { class: "panel propose", id: "propose", open },
    el("summary", {}, "Propose exclusion notice"),
    el("form", { class: "stack", onsubmit: send, "aria-label": "Propose an exclusion notice" },
      el("fieldset", {},
        el("legend", {}, "Incidents to cite"),
        boxes.length ? el("div", { class: "cite-list" }, boxes)
          : el("p", { class: "muted" }, "This profile has no incident to cite; link forms to it first.")),
      labelled("propose-conditions", "Conditions", conditions),
      labelled("propose-towns", "Towns", towns, '"all", or towns separated by commas (e.g. chatham,strood)'),
      (p.photos || []).length ? labelled("propose-photo", "Photo for the gallery", photoSelect) : null,
      labelled("propose-reason", "Reason (recorded in the notice's history)", reason),
      el("p", { class: "muted" }, "A proposal takes effect only after a second coordinator approves it and it is served."),
      el("div", { class: "buttons" }, submit)));
}

// --- notices ----------------------------------------------------------------------------------

function notices(ctx, view, [state = ""]) {
  const root = mount(view, "notices");
  const wanted = NOTICE_STATES.includes(state) ? state : "";
  const tabs = el("nav", { class: "tabs", "aria-label": "Notice states" },
    ["", ...NOTICE_STATES].map((s) => el("a", {
      href: s ? `#/notices/${s}` : "#/notices", dataset: { state: s || "all" },
      "aria-current": s === wanted ? "page" : null,
    }, s || "all")));
  const body = el("div", {}, loading());
  root.append(el("h2", {}, "Exclusion notices"), tabs, body);
  (async () => {
    try {
      const [list, names] = await Promise.all([
        coord("notice.list", wanted ? { state: wanted } : {}),
        profileNames(),
      ]);
      list.sort((a, b) => b.notice_id - a.notice_id);
      const rows = list.map((n) => el("tr", { dataset: { noticeId: n.notice_id, state: n.state } },
        el("td", {}, noticeLink(n.notice_id)),
        el("td", {}, stateBadge(n.state)),
        el("td", {}, profileLink(n.profile_id, names.get(n.profile_id))),
        el("td", {}, (n.towns || []).join(", ")),
        el("td", { class: "clip" }, n.conditions),
        el("td", {}, n.proposed_by, el("br"), el("span", { class: "muted small" }, fmtTime(n.proposed_at_ms))),
        el("td", {}, n.approved_by || "—"),
        el("td", {}, fmtTime(n.expires_at_ms))));
      body.replaceChildren(
        el("p", { class: "count", role: "status" }, `${list.length} notice${list.length === 1 ? "" : "s"}${wanted ? ` ${wanted}` : ""}`),
        table(null, ["Notice", "State", "Profile", "Towns", "Conditions", "Proposed", "Approved by", "Expires"],
          rows.length ? rows : [emptyRow(8, "No notice in this state.")], { class: "notice-list" }));
    } catch (error) {
      body.replaceChildren();
      failed(root, error);
    }
  })();
}

// The actions each state allows (server/notices.cpp): revoke from every state that is not final.
const ACTIONS = {
  proposed: ["approve", "revoke"],
  approved: ["serve", "revoke"],
  active: ["dispute", "revoke"],
  disputed: ["resolve", "revoke"],
  expired: [],
  revoked: [],
};
const ACTION_TEXT = {
  approve: ["Approve", "Approve this notice (second coordinator)", "The notice becomes approved and can then be served."],
  serve: ["Mark served", "Mark this notice served", "The notice becomes active: it enters the exclusion gallery on the handsets of the towns it names, and its term starts now."],
  dispute: ["Record dispute", "Record a dispute of this notice", "The notice is disputed until resolved; it stays in the gallery meanwhile."],
  resolve: ["Resolve dispute", "Resolve the dispute", "Choose the outcome: the notice stays active, or it is revoked."],
  revoke: ["Revoke", "Revoke this notice", "Revoking is final: the notice leaves the gallery and its photo is purged. It cannot be revived (propose a new one)."],
};

function notice(ctx, view, [id]) {
  const root = mount(view, "notice-page");
  const noticeId = Number(id);
  if (!Number.isInteger(noticeId) || noticeId <= 0) {
    root.append(el("p", { class: "refused" }, `"${id}" is not a notice id.`));
    return;
  }
  const load = async () => {
    try {
      const [n, names] = await Promise.all([coord("notice.show", { notice_id: noticeId }), profileNames()]);
      draw(n, names);
    } catch (error) {
      root.replaceChildren(el("p", {}, el("a", { href: "#/notices" }, "← Notices")));
      failed(root, error);
    }
  };
  const act = async (n, action) => {
    const [, title, help] = ACTION_TEXT[action];
    let outcome = null;
    let extra = null;
    if (action === "resolve") {
      outcome = el("select", { id: "resolve-outcome", dataset: { field: "outcome" } },
        el("option", { value: "active" }, "Keep it active (dispute rejected)"),
        el("option", { value: "revoked" }, "Revoke it (dispute upheld)"));
      extra = el("div", {}, el("label", { for: "resolve-outcome" }, "Outcome"), outcome);
    }
    const reason = await askReason(`${title} (notice ${n.notice_id})`, help, extra);
    if (reason === null) return;
    const args = { notice_id: n.notice_id, reason };
    if (outcome) args.outcome = outcome.value;
    try {
      const next = await coord(`notice.${action}`, args);
      clearFlash();
      flash(`Notice ${next.notice_id} is now ${next.state}.`, "ok");
    } catch (error) {
      failed(root, error);
    }
    await load();
  };
  const draw = (n, names) => {
    const own = n.proposed_by === ctx.me.id;
    const allowed = ACTIONS[n.state] || [];
    const buttons = allowed.map((action) => {
      const blocked = action === "approve" && own;
      return el("button", {
        type: "button",
        class: action === "revoke" ? "danger" : "primary",
        dataset: { action },
        disabled: blocked,
        "aria-describedby": blocked ? "two-person" : null,
        onclick: () => act(n, action),
      }, ACTION_TEXT[action][0]);
    });
    const gallery = n.gallery_handsets || { holding: [], deletion_not_confirmed: [], deletion_confirmed: [] };
    const deviceList = (items, empty) => items.length
      ? el("ul", { class: "devices" }, items.map((d) => typeof d === "string"
          ? el("li", { dataset: { deviceId: d } }, d)
          : el("li", { dataset: { deviceId: d.device_id } }, d.device_id, el("span", { class: "muted small" }, ` ${fmtTime(d.at_ms)}`))))
      : el("p", { class: "muted" }, empty);
    fill(root,
      el("p", { class: "crumbs" }, el("a", { href: "#/notices" }, "← Notices")),
      el("div", { class: "heading" },
        el("h2", {}, `Exclusion notice ${n.notice_id}`),
        el("span", { class: "notice-state" }, "State: ", stateBadge(n.state))),
      el("section", { class: "card actions", "aria-labelledby": "notice-actions" },
        el("h3", { id: "notice-actions" }, "Actions"),
        buttons.length
          ? el("div", { class: "buttons" }, buttons)
          : el("p", { class: "muted" }, `This notice is ${n.state}; nothing leaves that state. Propose a new notice if needed.`),
        allowed.includes("approve") && own
          ? el("p", { class: "explain", id: "two-person" },
              "You proposed this notice, so you cannot approve it: a second coordinator must " +
                "approve it (two-person rule).")
          : null,
        allowed.includes("approve") && !own
          ? el("p", { class: "muted" }, `Proposed by ${n.proposed_by}; you may approve it as the second coordinator.`)
          : null),
      el("div", { class: "columns" },
        el("section", { class: "card", "aria-labelledby": "notice-facts" },
          el("h3", { id: "notice-facts" }, "Notice"),
          details([
            ["Profile", profileLink(n.profile_id, names.get(n.profile_id))],
            ["Conditions", el("span", { class: "prose" }, n.conditions)],
            ["Towns", (n.towns || []).join(", ")],
            ["Proposed", `by ${n.proposed_by}, ${fmtTime(n.proposed_at_ms)}`],
            ["Approved", n.approved_by
              ? el("span", { class: "approved-by" }, `approved by ${n.approved_by}, ${fmtTime(n.approved_at_ms)}`)
              : "not yet"],
            ["Served", fmtTime(n.served_at_ms)],
            ["Expires", fmtTime(n.expires_at_ms)],
            ["Review due", fmtTime(n.review_due_at_ms)],
            n.review_reminded_at_ms ? ["Review reminder sent", fmtTime(n.review_reminded_at_ms)] : null,
            ["Ended", fmtTime(n.ended_at_ms)],
            ["Cited forms", (n.cited_forms || []).length
              ? el("ul", { class: "plain" }, n.cited_forms.map((f) => el("li", {}, formLink(f))))
              : "—"],
          ]),
          el("h3", {}, "Photo"),
          n.photo_sha256 ? el("div", { class: "photos" }, photo(n.photo_sha256, `Notice ${n.notice_id} photo`))
            : el("p", { class: "muted" }, "No photo."),
        ),
        el("div", {},
          el("section", { class: "card", "aria-labelledby": "notice-history" },
            el("h3", { id: "notice-history" }, "History"),
            table(null, ["When", "Change", "By", "Reason"],
              (n.events || []).map((e) => el("tr", { dataset: { to: e.to } },
                el("td", {}, fmtTime(e.at_ms)),
                el("td", {}, e.from ? [stateBadge(e.from), " → "] : "", stateBadge(e.to)),
                el("td", {}, e.by_id),
                el("td", { class: "prose" }, e.reason))), { class: "events" })),
          el("section", { class: "card gallery-handsets", "aria-labelledby": "notice-gallery" },
            el("h3", { id: "notice-gallery" }, "Gallery purge confirmations per handset"),
            el("div", { class: "three" },
              el("div", { dataset: { list: "holding" } }, el("h4", {}, `Holding (${gallery.holding.length})`),
                deviceList(gallery.holding, "No handset holds it.")),
              el("div", { dataset: { list: "deletion_not_confirmed" } },
                el("h4", {}, `Deletion not confirmed (${gallery.deletion_not_confirmed.length})`),
                deviceList(gallery.deletion_not_confirmed, "None outstanding.")),
              el("div", { dataset: { list: "deletion_confirmed" } },
                el("h4", {}, `Deletion confirmed (${gallery.deletion_confirmed.length})`),
                deviceList(gallery.deletion_confirmed, "None yet.")))),
        ),
      ),
    );
  };
  root.append(loading());
  load();
}

// --- candidates -------------------------------------------------------------------------------

function candidates(ctx, view) {
  const root = mount(view, "candidates");
  const minIncidents = el("input", { id: "min-incidents", type: "number", min: 1, value: 3 });
  const minMembers = el("input", { id: "min-members", type: "number", min: 1, value: 2 });
  const body = el("div", {}, loading());
  const load = async () => {
    body.replaceChildren(loading());
    try {
      const list = await coord("candidates", {
        min_incidents: Math.max(1, parseInt(minIncidents.value, 10) || 1),
        min_members: Math.max(1, parseInt(minMembers.value, 10) || 1),
      });
      const rows = list.map((c, i) => el("tr", { dataset: { profileId: c.profile_id } },
        el("td", { class: "num" }, i + 1),
        el("td", {}, el("a", { href: `#/profile/${c.profile_id}` }, c.name), " ", flags(c)),
        el("td", { class: "num" }, c.incidents),
        el("td", { class: "num" }, c.violent_incidents),
        el("td", { class: "num" }, c.members),
        el("td", {}, fmtTime(c.last_seen_ms)),
        el("td", { class: "num" }, Number(c.score).toFixed(1)),
        el("td", {}, el("a", { class: "button", href: `#/profile/${c.profile_id}/propose`,
          dataset: { action: "propose", profileId: c.profile_id } }, "Propose notice"))));
      body.replaceChildren(
        el("p", { class: "count", role: "status" }, `${list.length} candidate${list.length === 1 ? "" : "s"}`),
        table(null, ["Rank", "Profile", "Incidents", "Violent", "Members", "Last seen", "Score", ""],
          rows.length ? rows : [emptyRow(8, "No profile meets these thresholds.")], { class: "candidate-list" }));
    } catch (error) {
      body.replaceChildren();
      failed(root, error);
    }
  };
  root.append(
    el("h2", {}, "Candidates for an exclusion notice"),
    el("p", { class: "muted" },
      "Profiles with at least this many incidents reported by at least this many different " +
        "members, without a live notice; best first."),
    el("form", { class: "inline toolbar", onsubmit: (e) => { e.preventDefault(); load(); } },
      labelled("min-incidents", "Min incidents", minIncidents),
      labelled("min-members", "Min members", minMembers),
      el("button", { type: "submit", dataset: { action: "apply" } }, "Apply")),
    body);
  load();
}

// --- audit ------------------------------------------------------------------------------------

const AUDIT_PAGE = 100;

function objectCell(r) {
  const id = r.object_id;
  let link = null;
  if (r.object_type === "profile" && /^\d+$/.test(id)) link = el("a", { href: `#/profile/${id}` }, id);
  else if (r.object_type === "notice" && /^\d+$/.test(id)) link = el("a", { href: `#/notice/${id}` }, id);
  else if (r.object_type === "form" && id && id !== "list") link = el("a", { href: `#/form/${encodeURIComponent(id)}` }, id);
  return [el("span", { class: "muted" }, `${r.object_type} `), link || id];
}

function audit(ctx, view) {
  const root = mount(view, "audit");
  const verdict = el("section", { class: "verdict", "aria-live": "polite" }, loading());
  const type = el("input", { id: "audit-type", autocomplete: "off", placeholder: "profile, notice, form…" });
  const object = el("input", { id: "audit-object", autocomplete: "off" });
  const actor = el("input", { id: "audit-actor", autocomplete: "off" });
  const body = el("div", {});
  const pager = el("div", { class: "pager buttons" });
  let lastSeq = 0;
  let rows = [];       // shown rows, any order (drawn newest first)
  let windowFrom = 0;  // unfiltered: rows after this seq, up to AUDIT_PAGE

  const filter = () => {
    const f = {};
    if (type.value.trim()) f.object_type = type.value.trim();
    if (object.value.trim()) f.object_id = object.value.trim();
    if (actor.value.trim()) f.actor_id = actor.value.trim();
    return f;
  };
  const draw = (more) => {
    const sorted = [...rows].sort((a, b) => b.seq - a.seq);
    body.replaceChildren(
      el("p", { class: "count", role: "status" },
        sorted.length
          ? `Rows ${sorted[sorted.length - 1].seq}–${sorted[0].seq} shown (${sorted.length}), newest first; the log holds ${lastSeq} rows.`
          : "No row matches."),
      table(null, ["Seq", "When", "Actor", "Action", "Object", "Detail", "Hash"],
        sorted.map((r) => el("tr", { dataset: { seq: r.seq } },
          el("td", { class: "num" }, r.seq),
          el("td", { class: "nowrap" }, fmtTime(r.at_ms)),
          el("td", {}, r.actor_id, el("span", { class: "muted small" }, ` ${r.actor_role}`)),
          el("td", {}, r.action),
          el("td", {}, objectCell(r)),
          el("td", { class: "prose clip" }, r.detail),
          el("td", { class: "mono small nowrap", title: r.hash }, `${r.hash.slice(0, 10)}…`))),
        { class: "audit-rows" }));
    pager.replaceChildren(...more);
  };
  const loadWindow = async (from) => {
    windowFrom = Math.max(0, from);
    rows = await coord("audit.show", { after_seq: windowFrom, limit: AUDIT_PAGE });
    const older = el("button", { type: "button", dataset: { action: "older" }, disabled: windowFrom <= 0,
      onclick: () => run(() => loadWindow(windowFrom - AUDIT_PAGE)) }, "← Older");
    const newer = el("button", { type: "button", dataset: { action: "newer" },
      disabled: windowFrom + AUDIT_PAGE >= lastSeq,
      onclick: () => run(() => loadWindow(windowFrom + AUDIT_PAGE)) }, "Newer →");
    const newest = el("button", { type: "button", dataset: { action: "newest" },
      disabled: windowFrom + AUDIT_PAGE >= lastSeq,
      onclick: () => run(() => loadWindow(lastSeq - AUDIT_PAGE)) }, "Newest");
    draw([older, newer, newest]);
  };
  const loadFiltered = async (after, append) => {
    const page = await coord("audit.show", { ...filter(), after_seq: after, limit: 1000 });
    rows = append ? rows.concat(page) : page;
    const more = page.length === 1000
      ? [el("button", { type: "button", dataset: { action: "load-more" },
          onclick: () => run(() => loadFiltered(page[page.length - 1].seq, true)) }, "Load more")]
      : [];
    draw(more);
  };
  const run = async (step) => {
    try {
      await step();
    } catch (error) {
      failed(root, error);
    }
  };
  const verify = async () => {
    const v = await coord("audit.verify", {});
    lastSeq = v.last_seq;
    verdict.className = `verdict ${v.ok ? "verdict-ok" : "verdict-broken"}`;
    verdict.dataset.ok = String(v.ok);
    verdict.replaceChildren(
      v.ok
        ? el("p", { class: "verdict-title" }, `Audit chain verified: ${v.rows} rows checked, none altered.`)
        : el("p", { class: "verdict-title" },
            `Audit chain BROKEN at seq ${v.first_bad_seq ?? "?"} (${v.rows} rows checked): ${v.reason}`),
      el("p", { class: "small" }, "Last link: seq ", String(v.last_seq), ", hash ",
        el("span", { class: "mono" }, v.last_hash || "—"),
        el("span", { class: "muted" }, " (keep a copy elsewhere: rows cut off the end would not show as a break)")),
      el("button", { type: "button", dataset: { action: "verify" }, onclick: () => run(async () => { await verify(); await show(); }) },
        "Verify again"));
  };
  const show = async () => {
    if (Object.keys(filter()).length) await loadFiltered(0, false);
    else await loadWindow(lastSeq - AUDIT_PAGE);
  };
  root.append(
    el("h2", {}, "Audit log"),
    verdict,
    el("form", { class: "inline toolbar", onsubmit: (e) => { e.preventDefault(); run(show); } },
      labelled("audit-type", "Object type", type),
      labelled("audit-object", "Object id", object),
      labelled("audit-actor", "Actor id", actor),
      el("button", { type: "submit", dataset: { action: "filter" } }, "Show"),
      el("button", { type: "button", dataset: { action: "clear" },
        onclick: () => { type.value = object.value = actor.value = ""; run(show); } }, "Clear")),
    pager,
    body);
  run(async () => { await verify(); await show(); });
}

// --- retention purge --------------------------------------------------------------------------

function purgeReport(report, removed) {
  const section = (title, key, items, render) => el("section", { class: "card purge-part", dataset: { part: key } },
    el("h3", {}, `${title}: ${items.length}`),
    items.length ? el("ul", { class: "purge-list" }, items.map((x) => el("li", {}, render(x))))
      : el("p", { class: "muted" }, "None."));
  const total = ["forms", "profiles", "notice_photos", "blobs", "sightings", "notices"]
    .reduce((sum, k) => sum + (report[k] || []).length, 0);
  return el("div", { class: removed ? "purge-report removed" : "purge-report", dataset: { dryRun: String(report.dry_run) } },
    el("p", { class: "count", role: "status" },
      removed
        ? (total ? `Removed ${total} items.` : "Nothing was removed.")
        : (total ? `${total} items are past their retention period and would go.` : "Nothing is due for removal.")),
    el("div", { class: "purge-grid" },
      section("Incident forms", "forms", report.forms || [], (f) => formLink(f)),
      section("Profiles", "profiles", report.profiles || [], (p) => profileLink(p)),
      section("Notice photos", "notice_photos", report.notice_photos || [],
        (p) => [noticeLink(p.notice_id), " ", el("span", { class: "mono small" }, p.sha256)]),
      section("Image files", "blobs", report.blobs || [], (b) => el("span", { class: "mono small" }, b)),
      section("Sightings", "sightings", report.sightings || [], (s) => el("span", { class: "mono small" }, s)),
      section("Ended notices", "notices", report.notices || [], (n) => (removed ? `Notice ${n}` : noticeLink(n)))));
}

function purge(ctx, view) {
  const root = mount(view, "purge");
  const preview = el("div", {}, loading());
  const result = el("div", { class: "purge-result" });
  const runButton = el("button", { type: "button", class: "danger", dataset: { action: "purge" } }, "Run purge now");
  const load = async () => {
    try {
      preview.replaceChildren(purgeReport(await coord("purge", { dry_run: true }), false));
    } catch (error) {
      preview.replaceChildren();
      failed(root, error);
    }
  };
  runButton.addEventListener("click", async () => {
    const reason = await askReason("Run the retention purge now?",
      "This permanently deletes everything listed under \"What would go\" (the audit log " +
        "records what was removed and by whom).", null,
      "Why now (required, to confirm)");
    if (reason === null) return;
    runButton.disabled = true;
    try {
      const report = await coord("purge", { dry_run: false });
      flash("Purge done.", "ok");
      result.replaceChildren(el("h3", {}, "Removed just now"), purgeReport(report, true));
      await load();
    } catch (error) {
      failed(root, error);
    } finally {
      runButton.disabled = false;
    }
  });
  root.append(
    el("div", { class: "heading" }, el("h2", {}, "Retention purge"), runButton),
    el("p", { class: "muted" },
      "Forms, profiles, photos and sightings past their retention period, and the photos of " +
        "ended notices. The hub purges on its own schedule; here you can see what is due and run it now."),
    result,
    el("h3", {}, "What would go (preview)"),
    preview);
  load();
}

export const screens = { review, form, profiles, profile, notices, notice, candidates, audit, purge };
