// Who may open the console: shops are refused, a connection without a client certificate never
// gets an HTTP answer, and the PKCS#12 bundle from `saferlink-ca export` works in a browser.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import tls from "node:tls";
import https from "node:https";
import { readFileSync } from "node:fs";
import path from "node:path";
import { startTown, launchBrowser, openConsole, screenshot, waitOnline } from "./lib.mjs";

describe("console access", () => {
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

  it("refuses a shop: the coordinator API answers 403 and the page says it is not for shops",
    async () => {
      const { context, page } = await openConsole(browser, town, "shop-chatham-01");
      try {
        await page.locator("#who").filter({ hasText: "shop-chatham-01" }).waitFor();
        const answer = await page.evaluate(async () => {
          const r = await fetch("/api/coord/notice.list", {
            method: "POST", headers: { "Content-Type": "application/json" }, body: "{}",
          });
          return { status: r.status, type: r.headers.get("content-type"), body: await r.text() };
        });
        assert.equal(answer.status, 403);
        assert.match(answer.type || "", /json/);
        const body = JSON.parse(answer.body);
        assert.equal(typeof body.error, "string");
        assert.ok(body.error.length > 0);

        const view = page.locator("#view");
        await view.getByText("Not available").waitFor();
        await view.getByText(/Shops use their handsets/).waitFor();
        await screenshot(page, "refused-shop");

        await page.goto(town.consoleUrl + "/#/notices");
        await page.locator("#view").getByText("Not available").waitFor();
        assert.equal(await page.locator("#view h2").textContent(), "Not available");
        // The handsets API is refused too.
        const handsets = await page.evaluate(async () => (await fetch("/api/handsets")).status);
        assert.equal(handsets, 403);
      } finally {
        await context.close();
      }
    });

  it("refuses a TLS connection without a client certificate", async () => {
    const ca = readFileSync(path.join(town.caDir, "ca.crt"));
    const { port } = new URL(town.consoleUrl);

    // Raw TLS: the handshake fails, or the first read does (TLS 1.3 sends the server's verdict
    // on the client's certificate after the client thinks the handshake is done). Never an
    // HTTP answer.
    const outcome = await new Promise((resolve) => {
      let received = "";
      let failure = null;
      const socket = tls.connect({ host: "127.0.0.1", port: Number(port), ca }, () => {
        socket.write("GET /api/me HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
      });
      socket.setEncoding("utf8");
      socket.on("data", (d) => (received += d));
      socket.on("error", (e) => (failure = e));
      socket.on("close", () => resolve({ received, failure }));
      setTimeout(() => socket.destroy(new Error("timeout")), 10000);
    });
    assert.equal(outcome.received, "", "no bytes of an HTTP answer");
    assert.ok(outcome.failure, "the connection fails");
    assert.notEqual(outcome.failure.message, "timeout");
    assert.match(String(outcome.failure.code), /CERTIFICATE_REQUIRED|SSL|ECONNRESET|EPIPE/);

    // HTTPS: no answer, an error.
    await assert.rejects(new Promise((resolve, reject) => {
      const req = https.get({ host: "127.0.0.1", port: Number(port), path: "/api/me", ca,
        timeout: 10000 }, (res) => resolve(res.statusCode));
      req.on("error", reject);
      req.on("timeout", () => req.destroy(new Error("timeout")));
    }), (error) => error.message !== "timeout");
  });

  it("accepts the PKCS#12 bundle from saferlink-ca export", async () => {
    const { context, page } = await openConsole(browser, town, "coord-01", { usePfx: true });
    try {
      const me = await page.evaluate(async () => (await fetch("/api/me")).json());
      assert.equal(me.id, "coord-01");
      assert.equal(me.role, "coordinator");
      assert.match(await page.locator("#who").textContent(), /coord-01/);
      await waitOnline(page);
    } finally {
      await context.close();
    }
  });
});
