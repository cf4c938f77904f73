// The sample web app (examples/web-app) in a real browser: headless Chromium from
// Debian's packages, driven by puppeteer-core. The page is served by
// `callsign-local --sample-app` on one origin and calls callsign on another.
//
// scripts/test runs it twice, with:
//   CALLSIGN_READY_FILE   the server's ready file (endpoint, accessKey, sampleAppUrl)
//   CALLSIGN_CORS         "allowed": the page's origin is allowed (the server's default
//                         with --sample-app); "blocked": CALLSIGN_CORS_ORIGINS names
//                         another origin, so the browser must refuse the answers
//   CALLSIGN_SCREENSHOTS  where to put a screenshot of each step
//   CHROMIUM              the browser (default /usr/bin/chromium)
import assert from "node:assert/strict";
import { createHash, createHmac } from "node:crypto";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";

import puppeteer from "puppeteer-core";

const required = (name) => {
  const value = (process.env[name] || "").trim();
  if (!value) throw new Error(`${name} is not set: run this through scripts/test`);
  return value;
};
const ready = JSON.parse(readFileSync(required("CALLSIGN_READY_FILE"), "utf8"));
const MODE = required("CALLSIGN_CORS");
const SHOTS = required("CALLSIGN_SCREENSHOTS");
assert.ok(ready.sampleAppUrl, "the server serves the sample app (--sample-app)");
mkdirSync(SHOTS, { recursive: true });

let browser;
let page;
let step = 0;
/** Tokens callsign answered with, as the browser received them. */
const issued = [];

before(async () => {
  browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    // No sandbox: CI runs as root. No extensions or network beyond 127.0.0.1 are used.
    args: ["--no-sandbox", "--disable-dev-shm-usage", "--no-first-run"],
  });
  page = await browser.newPage();
  page.on("response", async (response) => {
    if (!/\/(user|guest)\/token$/.test(new URL(response.url()).pathname)) return;
    if (response.request().method() !== "POST" || !response.ok()) return;
    try {
      issued.push((await response.json()).accessToken.token);
    } catch {
      // A response the page could not read either (CORS): nothing to record.
    }
  });
  await page.goto(ready.sampleAppUrl, { waitUntil: "networkidle0" });
});

after(async () => {
  await browser?.close();
});

async function screenshot(name) {
  step += 1;
  await page.screenshot({ path: join(SHOTS, `${MODE}-${String(step).padStart(2, "0")}-${name}.png`), fullPage: true });
}

/** Clicks a button and waits for the page to report the outcome: its status or its error. */
async function click(id) {
  await page.evaluate(() => {
    document.getElementById("status").textContent = "";
    document.getElementById("error").textContent = "";
  });
  await page.click(`#${id}`);
  await page.waitForFunction(
    () => {
      const status = document.getElementById("status").textContent;
      return (status && status !== "…") || document.getElementById("error").textContent;
    },
    { timeout: 15000 },
  );
  return page.evaluate(() => ({
    status: document.getElementById("status").textContent,
    error: document.getElementById("error").textContent,
  }));
}

const text = (id) => page.$eval(`#${id}`, (element) => element.textContent);

/** Introspection through the admin API, HMAC-signed with the server's access key. */
async function introspect(token) {
  const url = new URL(`${ready.endpoint}/tokens/:introspect?api-version=2023-10-01`);
  const body = JSON.stringify({ token });
  const date = new Date().toUTCString();
  const hash = createHash("sha256").update(body).digest("base64");
  const toSign = `POST\n${url.pathname}${url.search}\n${date};${url.host};${hash}`;
  const signature = createHmac("sha256", Buffer.from(ready.accessKey, "base64")).update(toSign).digest("base64");
  const response = await fetch(url, {
    method: "POST",
    body,
    headers: {
      "content-type": "application/json",
      "x-ms-date": date,
      "x-ms-content-sha256": hash,
      authorization: `HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=${signature}`,
    },
  });
  assert.equal(response.status, 200);
  return response.json();
}

test("the page is served from another origin than callsign", async () => {
  assert.notEqual(new URL(ready.sampleAppUrl).origin, new URL(ready.endpoint).origin);
  const origins = await text("origins");
  assert.match(origins, new RegExp(new URL(ready.endpoint).origin));
  await screenshot("loaded");
});

if (MODE === "allowed") {
  test("sign in, get a token cross-origin, refresh it through the SDK's credential, delete me", async () => {
    const user = `browser-${Date.now()}`;
    await page.$eval("#user", (input, value) => {
      input.value = value;
    }, user);
    const signedIn = await click("sign-in");
    assert.equal(signedIn.error, "");
    assert.match(signedIn.status, /Signed in/);
    const identity = await text("identity");
    assert.match(identity, /^8:acs:/);
    assert.equal(await text("scopes"), "chat voip");
    assert.ok(Date.parse(await text("expires")) > Date.now() + 50 * 60 * 1000);
    await screenshot("signed-in");
    assert.equal(issued.length, 1);
    assert.equal((await introspect(issued[0])).active, true);

    const refreshed = await click("refresh");
    assert.equal(refreshed.error, "");
    assert.match(refreshed.status, /Refreshed/);
    assert.equal(await text("refreshes"), "1");
    assert.equal(await text("identity"), identity, "the same identity, a fresh token");
    assert.equal(issued.length, 2);
    assert.notEqual(issued[1], issued[0]);
    assert.equal((await introspect(issued[1])).active, true);
    await screenshot("refreshed");

    const deleted = await click("delete");
    assert.equal(deleted.error, "");
    assert.match(deleted.status, /Deleted/);
    await screenshot("deleted");
    for (const token of issued) {
      assert.deepEqual(await introspect(token), { active: false, reason: "identity_deleted" });
    }
  });

  test("guests get tokens until the throttle answers 429, which the page shows", async () => {
    let answer;
    for (let i = 0; i < 20; i += 1) {
      answer = await click("guest");
      if (answer.error) break;
      assert.match(answer.status, /guest/);
      assert.match(await text("identity"), /^8:acs:/);
      assert.equal(await text("scopes"), "chat.join.limited voip.join");
      if (i === 0) await screenshot("guest");
    }
    assert.match(answer.error, /^429 TooManyRequests: Too many guest tokens/);
    assert.match(answer.error, /Retry-After: \d+ s/, "the page can read Retry-After (exposed by CORS)");
    await screenshot("guest-throttled");
  });
} else {
  test("with the page's origin not allowed, the browser blocks callsign's answers and the page says so", async () => {
    const signedIn = await click("sign-in");
    assert.match(signedIn.error, /blocked the request to .*\/user\/token/);
    assert.match(signedIn.error, /CALLSIGN_CORS_ORIGINS/);
    assert.equal(await page.$eval("#session", (element) => element.hidden), true);
    assert.equal(issued.length, 0, "the browser handed no token to the page");
    await screenshot("sign-in-blocked");

    const guest = await click("guest");
    assert.match(guest.error, /blocked the request to .*\/guest\/token/);
    // The answer reached the browser (a simple request has no preflight), not the page.
    assert.equal(await page.$eval("#session", (element) => element.hidden), true);
    await screenshot("guest-blocked");
  });
}
