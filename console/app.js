// The console's shell: who the certificate says you are, the screens your role may open, the
// hash router (#/screen/arg), the live feed and its offline indicator.
//
// A screen is a function (ctx, view, arg) => cleanup?, registered by board.js (control room)
// and coord.js (coordinators). ctx: {me, live, now()}; `view` is <main>, already emptied.
// A returned function is called when the user leaves the screen.
import { getJSON, el, flash, clearFlash } from "/api.js";
import { LiveFeed } from "/live.js";
import { screens as boardScreens } from "/board.js";
import { screens as coordScreens } from "/coord.js";

// Which screens each role sees in the navigation, in order: [route, label].
const NAV = {
  cctv: [["board", "Alert board"], ["handsets", "Handsets"]],
  police: [["board", "Alert board"], ["handsets", "Handsets"]],
  coordinator: [
    ["board", "Alert board"], ["handsets", "Handsets"], ["review", "Review queue"],
    ["profiles", "Profiles"], ["notices", "Notices"], ["candidates", "Candidates"],
    ["audit", "Audit log"], ["purge", "Retention"],
  ],
  shop: [],
};

const screens = { ...boardScreens, ...coordScreens };

async function main() {
  const who = document.getElementById("who");
  let me;
  try {
    me = await getJSON("/api/me");
  } catch (error) {
    who.textContent = `Cannot reach the hub: ${error.message}`;
    return;
  }
  who.textContent = `${me.id} · ${me.role} · ${me.town} · ${me.member}`;
  document.body.dataset.role = me.role;

  const nav = document.getElementById("nav");
  for (const [route, label] of NAV[me.role] || []) {
    nav.append(el("a", { href: `#/${route}`, dataset: { route } }, label));
  }

  const ctx = { me, live: null, now: () => Date.now() };
  if (me.role !== "shop") {
    const offline = document.getElementById("offline");
    ctx.live = new LiveFeed();
    ctx.live.addEventListener("offline", () => {
      offline.hidden = false;
      document.body.classList.add("is-offline");
    });
    ctx.live.addEventListener("online", () => {
      offline.hidden = true;
      document.body.classList.remove("is-offline");
    });
    ctx.live.start();
  }

  const view = document.getElementById("view");
  let leave = null;
  const route = () => {
    const [name, ...rest] = location.hash.replace(/^#\/?/, "").split("/");
    const allowed = (NAV[me.role] || []).map(([r]) => r);
    const wanted = name || allowed[0];
    if (typeof leave === "function") leave();
    leave = null;
    clearFlash();
    view.replaceChildren();
    for (const link of nav.querySelectorAll("a")) {
      link.toggleAttribute("aria-current", link.dataset.route === wanted);
    }
    const screen = screens[wanted];
    // Sub-screens (profile/ID, notice/ID) belong to their list's role set.
    const parent = { profile: "profiles", notice: "notices", form: "review" }[wanted] || wanted;
    if (!screen || !allowed.includes(parent)) {
      view.append(
        el("h2", {}, "Not available"),
        el("p", { class: "refused" },
          me.role === "shop"
            ? "The console is for CCTV operators, police and coordinators. Shops use their handsets."
            : `There is no screen "${wanted}" for your role (${me.role}).`),
      );
      return;
    }
    try {
      leave = screen(ctx, view, rest.map(decodeURIComponent));
    } catch (error) {
      flash(error.message);
    }
    view.focus({ preventScroll: true });
  };
  window.addEventListener("hashchange", route);
  route();
}

main();
