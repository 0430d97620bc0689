// The control room's screens (CCTV operators, police; coordinators too):
//   board     the live alert board (newest first), the live sightings and "post a sighting"
//   handsets  the handsets on air, by town, with the silent ones marked
//
// The board loads GET /api/alerts, then follows the live feed: "panic" (a new alert, or an
// escalation round of one), "cancel", "update" (a responder's status, an escalation, a cancel
// taking effect; capability "board") and "sighting". After every reconnect ("online") it
// reloads /api/alerts, so nothing missed while offline stays missing.
import { getJSON, el, flash, fmtTime, fmtAge } from "/api.js";

const HEARTBEAT_MS = 15000;
const SILENT_AFTER_MS = 3 * HEARTBEAT_MS; // three heartbeats missed
const KNOWN_TOWNS = ["rochester", "strood", "chatham", "gillingham", "rainham"];

const STATUS_LABELS = {
  acknowledged: "Acknowledged",
  en_route: "En route",
  on_scene: "On scene",
  resolved: "Resolved",
  escalated: "Escalated",
  cancelled: "Cancelled",
};
const ACTIONS = [
  ["ACKNOWLEDGED", "Acknowledge"],
  ["EN_ROUTE", "En route"],
  ["ON_SCENE", "On scene"],
  ["RESOLVED", "Resolved"],
];
const RESPONSES = new Set(["acknowledged", "en_route", "on_scene", "resolved"]);

const lower = (v) => (v === undefined || v === null ? "" : String(v).toLowerCase());
const num = (v) => (v === undefined || v === null || v === "" ? 0 : Number(v));

// "4:07" (or "1:02:03") for a running timer.
function clock(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const pad = (n) => String(n).padStart(2, "0");
  return h ? `${h}:${pad(m)}:${pad(s % 60)}` : `${m}:${pad(s % 60)}`;
}

function hhmmss(ms) {
  if (!num(ms)) return "—";
  return new Date(num(ms)).toLocaleTimeString("en-GB");
}

// ---- state kept while the page lives (across screen changes) ---------------------------------

// Sightings: the last 12 hours from GET /api/sightings, then the live feed's, collected from
// the moment the feed exists, not only while the board is open.
const sightings = [];
const watchedFeeds = new WeakSet();
function collectSightings(live) {
  if (!live || watchedFeeds.has(live)) return;
  watchedFeeds.add(live);
  live.addEventListener("message", (event) => {
    const s = event.detail?.sighting;
    if (s) rememberSighting(s);
  });
}
function rememberSighting(s) {
  if (sightings.some((x) => x.sighting_id === s.sighting_id)) return false;
  sightings.unshift(s);
  sightings.length = Math.min(sightings.length, 100);
  return true;
}

// The alarm sound: WebAudio beeps, enabled by a user gesture (browsers block audio before one).
const sound = { ctx: null, on: false };
function beep() {
  if (!sound.on || !sound.ctx) return;
  const t = sound.ctx.currentTime;
  for (const [start, freq] of [[0, 880], [0.25, 660], [0.5, 880]]) {
    const osc = sound.ctx.createOscillator();
    const gain = sound.ctx.createGain();
    osc.type = "square";
    osc.frequency.value = freq;
    gain.gain.setValueAtTime(0.0001, t + start);
    gain.gain.exponentialRampToValueAtTime(0.2, t + start + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, t + start + 0.2);
    osc.connect(gain).connect(sound.ctx.destination);
    osc.start(t + start);
    osc.stop(t + start + 0.22);
  }
}

// ---- the alert model -------------------------------------------------------------------------

// An alert from GET /api/alerts, normalised.
function fromApi(a) {
  return {
    alert_id: a.alert_id,
    device_id: a.device_id,
    member: a.member,
    town: a.town,
    status: lower(a.status) || "actual",
    severity: lower(a.severity) || "severe",
    note: a.note || "",
    pressed_at_ms: num(a.pressed_at_ms),
    accepted_at_ms: num(a.accepted_at_ms),
    expires_at_ms: num(a.expires_at_ms),
    cancelled_at_ms: a.cancelled_at_ms === null ? 0 : num(a.cancelled_at_ms),
    cancel_reason: a.cancel_reason || "",
    escalation_round: num(a.escalation_round),
    expired: a.state === "expired",
    events: (a.events || []).map((e) => ({
      kind: lower(e.kind), by_id: e.by_id, by_role: e.by_role, by_town: e.by_town,
      by_member: e.by_member || "", at_ms: num(e.at_ms), round: num(e.round),
    })),
  };
}

// An alert from a live PanicAlert.
function fromPanic(p, now) {
  return {
    alert_id: p.alert_id,
    device_id: p.origin_id || String(p.alert_id).split(":")[0],
    member: p.origin_member || "",
    town: p.origin_town || "",
    status: lower(p.status) || "actual",
    severity: lower(p.severity) || "severe",
    note: p.note || "",
    pressed_at_ms: num(p.pressed_at_ms),
    accepted_at_ms: num(p.accepted_at_ms) || now,
    expires_at_ms: num(p.expires_at_ms),
    cancelled_at_ms: 0,
    cancel_reason: "",
    escalation_round: num(p.escalation_round),
    expired: false,
    events: [],
  };
}

function addEvent(alert, event) {
  // One line per person and status; one per escalation round (whoever the hub names for it).
  const same = alert.events.some((e) => e.kind === event.kind &&
    (event.kind === "escalated" ? e.round === event.round : e.by_id === event.by_id));
  if (!same) alert.events.push(event);
  alert.events.sort((a, b) => a.at_ms - b.at_ms);
}

// The alert's state, as the hub works it out (server/console.cpp recent_alerts).
function stateOf(alert, now) {
  if (alert.cancelled_at_ms) return "cancelled";
  if (alert.events.some((e) => e.kind === "resolved")) return "resolved";
  if (acknowledgedAt(alert)) return "acknowledged";
  if (alert.expired || (alert.expires_at_ms && alert.expires_at_ms <= now)) return "expired";
  return "open";
}

function acknowledgedAt(alert) {
  const first = alert.events.find((e) => RESPONSES.has(e.kind));
  return first ? first.at_ms : 0;
}

// ---- the board -------------------------------------------------------------------------------

function board(ctx, view) {
  const { me, live } = ctx;
  collectSightings(live);
  const alerts = new Map(); // alert_id -> model
  let skew = 0; // hub clock minus browser clock
  const now = () => ctx.now() + skew;
  const mayPost = me.role === "cctv" || me.role === "police";
  const actions = me.role === "police" ? ACTIONS : ACTIONS.slice(0, 1);
  const towns = new Set(KNOWN_TOWNS);
  if (me.town && me.town !== "all") towns.add(me.town);

  // -- layout
  const soundButton = el("button", { type: "button", class: "b-sound", "aria-pressed": "false",
    onclick: toggleSound }, "Enable sound");
  const summary = el("p", { class: "b-summary", "aria-live": "polite" });
  const list = el("div", { class: "b-alerts", id: "alert-list" });
  const empty = el("p", { class: "muted b-empty" }, "Loading alerts…");
  const sightList = el("ol", { class: "b-sightings", id: "sighting-list", reversed: true });
  const sightEmpty = el("p", { class: "muted b-empty" }, "No sightings in the last 12 hours.");
  const townList = el("datalist", { id: "b-towns" });

  view.append(el("div", { class: "b-board" },
    el("section", { class: "b-main", "aria-labelledby": "b-alerts-title" },
      el("div", { class: "b-head" },
        el("h2", { id: "b-alerts-title" }, "Alert board"),
        summary,
        soundButton),
      empty,
      list),
    el("aside", { class: "b-side" },
      el("section", { "aria-labelledby": "b-sight-title", class: "b-panel" },
        el("h2", { id: "b-sight-title" }, "Live sightings"),
        sightEmpty,
        sightList),
      mayPost ? sightingForm() : null,
      townList)));
  updateSoundButton();

  // -- alerts
  function upsert(alert) {
    const old = alerts.get(alert.alert_id);
    if (old) {
      for (const e of old.events) addEvent(alert, e);
      alert.cancelled_at_ms ||= old.cancelled_at_ms;
      alert.cancel_reason ||= old.cancel_reason;
      alert.escalation_round = Math.max(alert.escalation_round, old.escalation_round);
    }
    alerts.set(alert.alert_id, alert);
    if (alert.town) towns.add(alert.town);
  }

  function render(alertId) {
    const alert = alerts.get(alertId);
    const old = list.querySelector(`[data-alert-id="${CSS.escape(alertId)}"]`);
    const focused = old && old.contains(document.activeElement)
      ? document.activeElement.dataset.action : null;
    const card = renderCard(alert);
    if (old) old.replaceWith(card);
    else {
      // Newest first, by acceptance time; one arriving now is newer than any shown from the
      // same millisecond.
      const next = [...list.children].find((c) =>
        num(alerts.get(c.dataset.alertId)?.accepted_at_ms) <= alert.accepted_at_ms);
      list.insertBefore(card, next || null);
    }
    if (focused) card.querySelector(`[data-action="${focused}"]`)?.focus();
    refreshSummary();
  }

  function renderAll() {
    const sorted = [...alerts.values()].sort((a, b) => b.accepted_at_ms - a.accepted_at_ms);
    const focusedId = document.activeElement?.closest?.("[data-alert-id]")?.dataset.alertId;
    const focusedAction = document.activeElement?.dataset?.action;
    list.replaceChildren(...sorted.map(renderCard));
    if (focusedId && focusedAction) {
      list.querySelector(`[data-alert-id="${CSS.escape(focusedId)}"] ` +
        `[data-action="${focusedAction}"]`)?.focus();
    }
    refreshSummary();
    refreshTowns();
  }

  function refreshSummary() {
    const t = now();
    const open = [...alerts.values()].filter((a) => stateOf(a, t) === "open");
    empty.hidden = alerts.size > 0;
    empty.textContent = "No alerts in the last 12 hours.";
    summary.textContent = open.length
      ? `${open.length} alert${open.length === 1 ? "" : "s"} not acknowledged`
      : `${alerts.size} alert${alerts.size === 1 ? "" : "s"} in the last 12 hours · none waiting`;
    summary.classList.toggle("b-summary-loud", open.length > 0);
  }

  function refreshTowns() {
    townList.replaceChildren(...[...towns].sort().map((t) => el("option", { value: t })));
  }

  function renderCard(alert) {
    const t = now();
    const state = stateOf(alert, t);
    const loud = state === "open" && alert.status !== "test";
    const card = el("article", {
      class: `b-card b-state-${state} b-status-${alert.status}${loud ? " b-loud" : ""}`,
      dataset: { alertId: alert.alert_id, state },
      "aria-label": `Alert from ${alert.member || alert.device_id}, ${state}`,
    });

    const badges = el("div", { class: "b-badges" },
      el("span", { class: "b-kind" }, "PANIC"),
      alert.status !== "actual"
        ? el("span", { class: `b-exercise b-exercise-${alert.status}` },
          alert.status === "exercise" ? "EXERCISE — not real" : "TEST — not real")
        : null,
      el("span", { class: `b-severity b-sev-${alert.severity}` }, alert.severity),
      el("span", { class: `b-statebadge b-sb-${state}` }, state.toUpperCase()),
      alert.escalation_round > 0
        ? el("span", { class: "b-escalated" }, `Escalated · round ${alert.escalation_round}`)
        : null);

    const title = el("h3", { class: "b-premises" },
      el("span", { class: "b-member" }, alert.member || alert.device_id),
      el("span", { class: "b-town" }, alert.town));

    const acked = acknowledgedAt(alert);
    let timerText;
    if (state === "open") {
      timerText = `Waiting ${clock(t - alert.accepted_at_ms)}`;
    } else if (acked) {
      timerText = `Answered after ${clock(acked - alert.accepted_at_ms)}`;
    } else if (state === "cancelled") {
      timerText = "Cancelled";
    } else {
      timerText = "Never acknowledged";
    }
    const timer = el("p", { class: "b-timer", dataset: { tick: state === "open" ? "open" : "" } },
      timerText);

    const meta = el("p", { class: "b-meta" },
      "Pressed ", el("time", {}, hhmmss(alert.pressed_at_ms || alert.accepted_at_ms)),
      " · ", el("span", { class: "b-age", dataset: { since: alert.accepted_at_ms } },
        `${fmtAge(t - alert.accepted_at_ms)} ago`),
      " · from ", el("span", { class: "b-device" }, alert.device_id));

    const note = alert.note
      ? el("p", { class: "b-note" }, alert.note)
      : el("p", { class: "b-note muted" }, "(no note)");

    const responses = el("ul", { class: "b-responses" });
    for (const e of alert.events) {
      if (e.kind === "escalated") {
        responses.append(el("li", { class: "b-ev b-ev-escalated" },
          `Escalated (round ${e.round || "?"}) at ${hhmmss(e.at_ms)}`));
      } else if (e.kind === "cancelled") {
        // shown below
      } else {
        responses.append(el("li", { class: `b-ev b-ev-${e.kind}`, dataset: { kind: e.kind } },
          el("strong", {}, STATUS_LABELS[e.kind] || e.kind),
          ` by ${e.by_id}`,
          el("span", { class: "b-who" }, ` (${[e.by_role, e.by_member].filter(Boolean).join(", ")})`),
          ` at ${hhmmss(e.at_ms)}`));
      }
    }
    if (!responses.children.length && state !== "cancelled") {
      responses.append(el("li", { class: "b-ev muted" }, "Nobody has answered yet."));
    }

    const cancelled = state === "cancelled"
      ? el("p", { class: "b-cancelled" },
        el("strong", {}, "Cancelled by the sender"),
        ` at ${hhmmss(alert.cancelled_at_ms)}`,
        alert.cancel_reason ? `: ${alert.cancel_reason}` : "")
      : null;

    let buttons = null;
    if (state !== "cancelled" && state !== "expired" && state !== "resolved" && live) {
      buttons = el("div", { class: "b-actions" });
      for (const [action, label] of actions) {
        const kind = action.toLowerCase();
        const done = alert.events.some((e) => e.kind === kind && e.by_id === me.id);
        buttons.append(el("button", {
          type: "button",
          class: action === "ACKNOWLEDGED" && state === "open" ? "primary b-ack" : "",
          dataset: { action },
          "aria-pressed": done ? "true" : "false",
          onclick: (event) => report(alert.alert_id, action, event.currentTarget),
        }, done ? `${label} ✓` : label));
      }
    }

    card.append(el("header", { class: "b-card-head" }, title, badges),
      el("div", { class: "b-card-body" },
        el("div", { class: "b-card-left" }, note, meta, responses, cancelled),
        timer,
        buttons));
    return card;
  }

  async function report(alertId, action, button) {
    button.disabled = true;
    try {
      await live.request({ status: { alert_id: alertId, status: action } });
      const alert = alerts.get(alertId);
      if (alert) {
        // The hub's "update" follows; record it now so the board answers at once.
        addEvent(alert, { kind: action.toLowerCase(), by_id: me.id, by_role: me.role,
          by_town: me.town, by_member: me.member, at_ms: now(), round: 0 });
        render(alertId);
      }
      flash(`${ACTIONS.find(([a]) => a === action)[1]}: sent for ${alertId}`, "ok");
    } catch (error) {
      flash(`Not recorded: ${error.message}`);
      button.disabled = false;
    }
  }

  async function load() {
    try {
      const answer = await getJSON("/api/alerts?hours=12");
      skew = num(answer.now_ms) ? num(answer.now_ms) - ctx.now() : 0;
      for (const a of answer.alerts || []) upsert(fromApi(a));
      renderAll();
    } catch (error) {
      empty.hidden = false;
      empty.textContent = `Cannot load the alerts: ${error.message}`;
    }
  }

  // The sightings of the last 12 hours (each read is audited: only on opening the board and
  // after a reconnect, not on every change), merged with the ones the feed brought.
  async function loadSightings() {
    try {
      const answer = await getJSON("/api/sightings?hours=12");
      for (const s of (answer.sightings || []).slice().reverse()) rememberSighting(s);
      sightings.sort((a, b) => num(b.accepted_at_ms) - num(a.accepted_at_ms));
      renderSightings();
    } catch (error) {
      sightEmpty.hidden = false;
      sightEmpty.textContent = `Cannot load the sightings: ${error.message}`;
    }
  }

  let reloadTimer = null;
  function reloadSoon() {
    clearTimeout(reloadTimer);
    reloadTimer = setTimeout(load, 300);
  }

  // -- the live feed
  function onMessage(event) {
    const env = event.detail || {};
    const t = now();
    if (env.panic) {
      const p = env.panic;
      const known = alerts.get(p.alert_id);
      if (known) {
        known.escalation_round = Math.max(known.escalation_round, num(p.escalation_round));
      } else {
        const alert = fromPanic(p, t);
        upsert(alert);
        if (alert.status !== "test") beep();
      }
      render(p.alert_id);
    } else if (env.cancel) {
      const alert = alerts.get(env.cancel.alert_id);
      if (!alert) return reloadSoon();
      alert.cancelled_at_ms ||= t;
      alert.cancel_reason = env.cancel.reason || alert.cancel_reason;
      render(alert.alert_id);
    } else if (env.update) {
      const u = env.update;
      const alert = alerts.get(u.alert_id);
      if (!alert) return reloadSoon();
      const at = num(u.at_ms) || t;
      if (u.event === "ESCALATED") {
        alert.escalation_round = Math.max(alert.escalation_round, num(u.escalation_round));
        addEvent(alert, { kind: "escalated", by_id: "", by_role: "", by_town: "",
          at_ms: at, round: num(u.escalation_round) });
      } else if (u.event === "CANCELLED") {
        alert.cancelled_at_ms ||= at;
      } else if (u.recipient_status && u.recipient_status !== "DELIVERED") {
        addEvent(alert, { kind: lower(u.recipient_status), by_id: u.by_id || "",
          by_role: u.by_role || "", by_town: u.by_town || "", by_member: u.by_member || "",
          at_ms: at, round: 0 });
      }
      render(alert.alert_id);
    } else if (env.sighting) {
      renderSightings();
    }
  }

  // -- sightings
  function renderSightings() {
    sightEmpty.hidden = sightings.length > 0;
    sightList.replaceChildren(...sightings.map((s) => {
      const breach = Boolean(s.possible_breach);
      return el("li", { class: `b-sighting${breach ? " b-breach" : ""}`,
        dataset: { sightingId: s.sighting_id } },
        breach ? el("p", { class: "b-breach-flag" },
          `POSSIBLE BREACH (notice ${s.notice_id || "?"})`) : null,
        el("p", { class: "b-s-text" }, s.text || ""),
        el("p", { class: "b-s-meta" },
          el("span", { class: "b-town" }, s.town || ""),
          s.location ? ` · ${s.location}` : "",
          s.heading ? ` · heading ${s.heading}` : ""),
        s.profile_name || num(s.profile_id)
          ? el("p", { class: "b-s-profile" },
            `Profile: ${s.profile_name || "?"}${num(s.profile_id) ? ` (#${s.profile_id})` : ""}`)
          : null,
        el("p", { class: "b-s-who muted" },
          `${s.origin_id || ""}${s.origin_role ? ` (${s.origin_role}` : ""}` +
          `${s.origin_member ? `, ${s.origin_member}` : ""}${s.origin_role ? ")" : ""}` +
          ` · ${hhmmss(s.accepted_at_ms || s.seen_at_ms)}`));
    }));
  }

  function sightingForm() {
    const out = el("output", { class: "b-post-result", id: "sighting-result",
      "aria-live": "polite" });
    const text = el("textarea", { id: "s-text", name: "text", rows: "2", maxlength: "500",
      required: true });
    const location = el("input", { id: "s-location", name: "location", maxlength: "200" });
    const heading = el("input", { id: "s-heading", name: "heading", maxlength: "100" });
    const town = el("input", { id: "s-town", name: "town", list: "b-towns", autocomplete: "off",
      value: me.town !== "all" ? me.town : "", required: me.town === "all" });
    const profile = el("input", { id: "s-profile", name: "profile", type: "number", min: "1",
      inputmode: "numeric" });
    const submit = el("button", { type: "submit", class: "primary" }, "Post sighting");
    const form = el("form", { class: "b-panel b-post", id: "sighting-form",
      "aria-labelledby": "b-post-title", onsubmit: post },
      el("h2", { id: "b-post-title" }, "Post a sighting"),
      el("label", { for: "s-text" }, "What was seen (required)"), text,
      el("div", { class: "b-row" },
        el("div", {}, el("label", { for: "s-location" }, "Location"), location),
        el("div", {}, el("label", { for: "s-heading" }, "Heading"), heading)),
      el("div", { class: "b-row" },
        el("div", {}, el("label", { for: "s-town" },
          me.town === "all" ? "Town (required)" : "Town"), town),
        el("div", {}, el("label", { for: "s-profile" }, "Profile id (optional)"), profile)),
      el("div", { class: "b-post-buttons" }, submit, out));

    async function post(event) {
      event.preventDefault();
      const seq = Date.now();
      const body = {
        sighting_id: `${me.id}:${seq}`,
        device_seq: String(seq),
        text: text.value.trim(),
      };
      if (!body.text) {
        out.className = "b-post-result b-err";
        out.textContent = "Say what was seen.";
        text.focus();
        return;
      }
      if (location.value.trim()) body.location = location.value.trim();
      if (heading.value.trim()) body.heading = heading.value.trim();
      if (town.value.trim()) body.town = town.value.trim().toLowerCase();
      if (profile.value.trim()) body.profile_id = String(Number(profile.value));
      submit.disabled = true;
      out.className = "b-post-result";
      out.textContent = "Sending…";
      try {
        const answer = await sendSighting(body);
        const breach = answer.possible_breach;
        out.className = `b-post-result ${breach ? "b-breach-flag" : "b-ok"}`;
        out.textContent = (breach
          ? `Accepted — POSSIBLE BREACH (notice ${answer.notice_id}). `
          : "Accepted. ") +
          `Sent to ${num(answer.recipients)} device${num(answer.recipients) === 1 ? "" : "s"}.`;
        rememberSighting({ ...body, origin_id: me.id, origin_role: me.role,
          origin_member: me.member, accepted_at_ms: answer.accepted_at_ms || String(now()),
          possible_breach: breach, notice_id: answer.notice_id,
          town: body.town || me.town });
        renderSightings();
        text.value = "";
      } catch (error) {
        out.className = "b-post-result b-err";
        out.textContent = `Refused: ${error.message}`;
      } finally {
        submit.disabled = false;
      }
    }
    return form;
  }

  // Sends a Sighting; resolves with the SightingAccepted, rejects with the Error's message.
  function sendSighting(body) {
    return new Promise((resolve, reject) => {
      let msgId = null;
      const done = () => {
        live.removeEventListener("message", listen);
        clearTimeout(timer);
      };
      const listen = (event) => {
        const env = event.detail || {};
        if (env.sighting_accepted?.sighting_id === body.sighting_id) {
          done();
          resolve(env.sighting_accepted);
        } else if (env.error && String(env.error.in_reply_to) === msgId) {
          done();
          reject(new Error(env.error.message || env.error.code));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error("no answer from the hub within 15 s"));
      }, 15000);
      live.addEventListener("message", listen);
      try {
        msgId = live.send({ sighting: body });
      } catch (error) {
        done();
        reject(error);
      }
    });
  }

  // -- sound
  function toggleSound() {
    if (!sound.ctx) {
      const Ctx = window.AudioContext || window.webkitAudioContext;
      if (!Ctx) {
        flash("This browser cannot play sound.");
        return;
      }
      sound.ctx = new Ctx();
    }
    sound.on = !sound.on;
    if (sound.on) {
      sound.ctx.resume();
      beep();
    }
    updateSoundButton();
  }
  function updateSoundButton() {
    soundButton.setAttribute("aria-pressed", String(sound.on));
    soundButton.textContent = sound.on ? "Sound on (turn off)" : "Enable sound";
    soundButton.classList.toggle("b-sound-on", sound.on);
  }

  // -- timers: the running timers each second, the alarm every 4 s while an alert is open
  let ticks = 0;
  const ticker = setInterval(() => {
    const t = now();
    ticks += 1;
    let anyLoud = false;
    for (const card of list.children) {
      const alert = alerts.get(card.dataset.alertId);
      if (!alert) continue;
      const state = stateOf(alert, t);
      if (state !== card.dataset.state) {
        render(alert.alert_id); // e.g. expired
        continue;
      }
      if (state === "open") {
        const timer = card.querySelector(".b-timer");
        if (timer) timer.textContent = `Waiting ${clock(t - alert.accepted_at_ms)}`;
        if (alert.status !== "test") anyLoud = true;
      }
      const age = card.querySelector(".b-age");
      if (age) age.textContent = `${fmtAge(t - alert.accepted_at_ms)} ago`;
    }
    if (anyLoud && ticks % 4 === 0) beep();
  }, 1000);

  const onOnline = () => {
    load();
    loadSightings();
  };
  if (live) {
    live.addEventListener("message", onMessage);
    live.addEventListener("online", onOnline);
  }
  renderSightings();
  refreshTowns();
  load();
  loadSightings();

  return () => {
    clearInterval(ticker);
    clearTimeout(reloadTimer);
    if (live) {
      live.removeEventListener("message", onMessage);
      live.removeEventListener("online", onOnline);
    }
  };
}

// ---- handsets --------------------------------------------------------------------------------

function handsets(ctx, view) {
  const status = el("p", { class: "muted", "aria-live": "polite" }, "Loading…");
  const holder = el("div", { class: "h-towns", id: "handset-list" });
  view.append(el("div", { class: "b-head" }, el("h2", {}, "Handsets on air"), status), holder);

  async function load() {
    let answer;
    try {
      answer = await getJSON("/api/handsets");
    } catch (error) {
      status.textContent = `Cannot load the handsets: ${error.message}`;
      status.className = "refused";
      return;
    }
    const now = num(answer.now_ms) || ctx.now();
    const byTown = new Map();
    for (const h of answer.handsets || []) {
      const town = h.town || "?";
      if (!byTown.has(town)) byTown.set(town, []);
      byTown.get(town).push(h);
    }
    let silentCount = 0;
    const sections = [...byTown.keys()].sort().map((town) => {
      const rows = byTown.get(town)
        .sort((a, b) => String(a.device_id).localeCompare(String(b.device_id)))
        .map((h) => {
          const heard = num(h.last_heard_ms);
          const age = heard ? now - heard : Infinity;
          const silent = age > SILENT_AFTER_MS;
          if (silent) silentCount += 1;
          const battery = num(h.battery_percent);
          return el("tr", { class: silent ? "h-silent" : "", dataset: { deviceId: h.device_id } },
            el("td", { class: "h-id" }, h.device_id),
            el("td", {}, h.software === "saferlink-console" ? `${h.role} (console)` : h.role),
            el("td", {}, h.member),
            el("td", { class: battery && battery < 20 ? "h-low" : "" },
              battery ? `${battery} %` : "unknown"),
            el("td", {}, heard ? `${fmtAge(age)} ago` : "never"),
            el("td", {}, fmtTime(h.connected_at_ms)),
            el("td", { class: "h-state" }, silent ? "silent" : "on air"));
        });
      return el("section", { class: "h-town" },
        el("h3", {}, `${town} (${rows.length})`),
        el("table", { class: "h-table" },
          el("thead", {}, el("tr", {},
            ...["Device", "Role", "Member", "Battery", "Last heartbeat", "Connected since",
              "State"].map((h) => el("th", { scope: "col" }, h)))),
          el("tbody", {}, rows)));
    });
    holder.replaceChildren(...sections);
    const total = (answer.handsets || []).length;
    status.className = "muted";
    status.textContent = total
      ? `${total} connected · ${silentCount} silent (no heartbeat for 45 s) · ` +
        `updated ${hhmmss(now)}`
      : "No handset is connected.";
  }

  load();
  const timer = setInterval(load, 5000);
  return () => clearInterval(timer);
}

export const screens = { board, handsets };
