// Shared helpers of the console's screens: the hub's JSON API, building DOM without innerHTML
// (every text from the hub goes in as text), the flash message, the reason dialog and times.

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function answer(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) {
    const why = body && typeof body.error === "string" ? body.error : `HTTP ${response.status}`;
    throw new ApiError(response.status, why);
  }
  return body;
}

// GET a JSON API path (e.g. "/api/alerts?hours=12").
export async function getJSON(path) {
  return answer(await fetch(path, { cache: "no-store", credentials: "same-origin" }));
}

// A coordinator query (docs/protocol.md section 5.8): POST /api/coord/OP with `args`.
export async function coord(op, args = {}) {
  return answer(
    await fetch(`/api/coord/${op}`, {
      method: "POST",
      cache: "no-store",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(args),
    }),
  );
}

// el("button", {class: "x", onclick: f, dataset: {id: 1}}, "text", child, ...)
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") {
      node.addEventListener(key.slice(2), value);
    } else if (value === true) node.setAttribute(key, "");
    else node.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

let flashTimer = null;
// Shows a message at the top of the page (kind: "error" | "ok"); errors stay until replaced.
export function flash(message, kind = "error") {
  const box = document.getElementById("flash");
  box.textContent = message;
  box.className = kind;
  box.hidden = false;
  clearTimeout(flashTimer);
  if (kind !== "error") flashTimer = setTimeout(() => (box.hidden = true), 6000);
}

export function clearFlash() {
  document.getElementById("flash").hidden = true;
}

// Asks for a reason in the modal dialog; resolves to the text, or null when cancelled.
// `extra` (optional) is a node shown above the reason (e.g. an outcome choice); `label` the
// text field's label.
export function askReason(title, help = "", extra = null,
                          label = "Reason (required, recorded with the change)") {
  const dialog = document.getElementById("reason-dialog");
  const text = document.getElementById("reason-text");
  document.getElementById("reason-title").textContent = title;
  document.getElementById("reason-help").textContent = help;
  document.querySelector('label[for="reason-text"]').textContent = label;
  const holder = document.getElementById("reason-extra");
  holder.replaceChildren(...(extra ? [extra] : []));
  text.value = "";
  return new Promise((resolve) => {
    const cancel = document.getElementById("reason-cancel");
    const onCancel = () => dialog.close("cancel");
    cancel.addEventListener("click", onCancel, { once: true });
    dialog.addEventListener(
      "close",
      () => {
        cancel.removeEventListener("click", onCancel);
        const reason = text.value.trim();
        resolve(dialog.returnValue === "ok" && reason ? reason : null);
      },
      { once: true },
    );
    dialog.returnValue = "";
    dialog.showModal();
    text.focus();
  });
}

export function fmtTime(ms) {
  if (ms === null || ms === undefined || ms === "" || Number(ms) === 0) return "—";
  const d = new Date(Number(ms));
  return d.toLocaleString("en-GB", { dateStyle: "short", timeStyle: "medium" });
}

// "42 s", "5 min 3 s", "2 h 10 min"
export function fmtAge(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

// The <img> of an image the hub holds (GET /api/photo/SHA256; the hub checks who may see it).
export function photo(sha256, alt) {
  if (!sha256) return el("span", { class: "no-photo" }, "no photo");
  return el("img", { class: "photo", src: `/api/photo/${sha256}`, alt, loading: "lazy" });
}
