// Gatehouse in a real browser (headless Chromium, driven with playwright-core): each scenario
// asserts what a person sees, fails on any Content-Security-Policy violation or script error, and
// saves a screenshot of each page in $SCREENSHOTS. Run by tests/browser/run, which starts
// Gatehouse and the test SPA and passes their addresses in the environment.
"use strict";
const assert = require("node:assert/strict");
const crypto = require("node:crypto");
const path = require("node:path");
const { chromium } = require("playwright-core");

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} must be set`);
  return v;
};
const ISSUER = env("GATEHOUSE_URL");
const SPA = env("SPA_URL");
const SPA_CLIENT = env("SPA_CLIENT_ID");
const MFA_CLIENT = env("MFA_CLIENT_ID");
const OIDC_CLIENT = env("OIDC_CLIENT_ID");
const SHOTS = env("SCREENSHOTS");
const PASSWORD = env("USER_PASSWORD");
const ADMIN_TOTP = env("ADMIN_TOTP_SECRET");

function base32decode(text) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = 0, value = 0;
  const out = [];
  for (const c of text.replace(/=+$/, "")) {
    value = (value << 5) | alphabet.indexOf(c);
    bits += 5;
    if (bits >= 8) { bits -= 8; out.push((value >> bits) & 255); }
  }
  return Buffer.from(out);
}

// RFC 6238 with SHA-1, 6 digits, 30-second steps: what an authenticator app shows.
function totp(secret, steps = 0) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(Date.now() / 1000 / 30) + steps));
  const mac = crypto.createHmac("sha1", base32decode(secret)).update(counter).digest();
  const offset = mac[mac.length - 1] & 15;
  return String((mac.readUInt32BE(offset) & 0x7fffffff) % 1000000).padStart(6, "0");
}

// A fresh browser context whose page records CSP violations and script errors.
async function open(browser) {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.problems = [];
  page.on("console", (m) => {
    const text = m.text();
    if (/Content.Security.Policy|Refused to/i.test(text) || m.type() === "error" && !/Failed to load resource/.test(text)) {
      page.problems.push(text);
    }
  });
  page.on("pageerror", (e) => page.problems.push(String(e)));
  return page;
}

let shot = 0;
async function screenshot(page, name) {
  shot += 1;
  await page.screenshot({ path: path.join(SHOTS, `${String(shot).padStart(2, "0")}-${name}.png`), fullPage: true });
}

async function submit(page, selector) {
  await Promise.all([page.waitForNavigation(), page.click(selector)]);
}

function pathOf(page) {
  return new URL(page.url()).pathname;
}

async function signInWithPassword(page, username, password) {
  await page.fill("#username", username);
  await page.fill("#password", password);
  await submit(page, "button[type=submit]");
}

// Waits until the OpenID Connect SPA marks its body with `state` (or with "error", shown).
async function oidcState(page, state) {
  await page.waitForSelector(`body[data-state=${state}], body[data-state=error]`);
  const got = await page.getAttribute("body", "data-state");
  const error = got === "error" ? await page.textContent("#error") : "";
  assert.equal(got, state, `the SPA: ${error}`);
}

const scenarios = {
  // The SPA on its own origin: PKCE sign-in, a wrong password first, consent, and the token
  // exchange that needs a CORS preflight; then the remembered consent, and a denial when asked
  // again with prompt=consent.
  async "spa sign-in, consent and a cross-origin token exchange"(browser) {
    const page = await open(browser);
    await page.goto(`${SPA}/?issuer=${encodeURIComponent(ISSUER)}&client_id=${SPA_CLIENT}`);
    await screenshot(page, "spa");
    await submit(page, "#sign-in");
    assert.equal(pathOf(page), "/login");
    await screenshot(page, "login");
    await signInWithPassword(page, "alice", "not the password");
    assert.match(await page.textContent(".error"), /Invalid username or password/);
    await screenshot(page, "login-wrong-password");
    await signInWithPassword(page, "alice", PASSWORD);
    assert.equal(pathOf(page), "/consent");
    await screenshot(page, "consent");
    await submit(page, "button[value=approve]");
    await page.waitForSelector("body[data-done=yes]");
    const result = JSON.parse(await page.textContent("#out"));
    assert.deepEqual(result, {
      error: null, iss: ISSUER, stateOk: true, status: 200, hasAccessToken: true, hasRefreshToken: true,
    });
    await screenshot(page, "spa-signed-in");
    assert.deepEqual(page.problems, []);

    // Signed in at Gatehouse already, consent remembered: straight back with a code.
    await page.goto(`${SPA}/?issuer=${encodeURIComponent(ISSUER)}&client_id=${SPA_CLIENT}`);
    await submit(page, "#sign-in");
    await page.waitForSelector("body[data-done=yes]");
    assert.equal(JSON.parse(await page.textContent("#out")).status, 200);

    // prompt=consent: the consent page again, and Deny answers access_denied.
    await page.goto(`${SPA}/?issuer=${encodeURIComponent(ISSUER)}&client_id=${SPA_CLIENT}&prompt=consent`);
    await submit(page, "#sign-in");
    assert.equal(pathOf(page), "/consent");
    await submit(page, "button[value=deny]");
    await page.waitForSelector("body[data-done=yes]");
    assert.equal(JSON.parse(await page.textContent("#out")).error, "access_denied");
    assert.deepEqual(page.problems, []);
  },

  // oidc-client-ts in an SPA on its own origin: discovery, sign-in with PKCE and a nonce, the
  // profile from the ID token and userinfo, renewal with the refresh token, then RP-initiated
  // sign-out back to the SPA, after which Gatehouse asks for the password again.
  async "oidc-client-ts sign-in, profile, renewal and sign-out"(browser) {
    const page = await open(browser);
    await page.goto(`${SPA}/oidc.html?issuer=${encodeURIComponent(ISSUER)}&client_id=${OIDC_CLIENT}`);
    await oidcState(page, "signed-out");
    await screenshot(page, "oidc-spa");
    await submit(page, "#sign-in");
    assert.equal(pathOf(page), "/login");
    await signInWithPassword(page, "erin", PASSWORD);
    assert.equal(pathOf(page), "/consent");
    assert.match(await page.textContent("main"), /e-mail address/);
    await screenshot(page, "oidc-consent");
    // loadUserInfo: the library calls userinfo (cross-origin) after the code exchange.
    const userinfo = page.waitForResponse((r) => r.url() === `${ISSUER}/userinfo` && r.request().method() === "GET");
    userinfo.catch(() => {}); // awaited below; no unhandled rejection when a step before fails
    await submit(page, "button[value=approve]");
    await oidcState(page, "signed-in");
    assert.equal((await userinfo).status(), 200);
    assert.equal(new URL(page.url()).search, "", "the SPA cleared the answer from its address");
    assert.equal(await page.textContent("#name"), "Erin Example");
    assert.equal(await page.textContent("#preferred_username"), "erin");
    assert.equal(await page.textContent("#email"), "erin@example.com");
    const first = await page.textContent("#access-token");
    assert.match(first, /^[\w-]+\.[\w-]+\.[\w-]+$/);
    await screenshot(page, "oidc-signed-in");

    await page.click("#renew");
    await oidcState(page, "renewed");
    const renewed = await page.textContent("#access-token");
    assert.match(renewed, /^[\w-]+\.[\w-]+\.[\w-]+$/);
    assert.notEqual(renewed, first, "a new access token");
    assert.equal(await page.textContent("#name"), "Erin Example");
    await screenshot(page, "oidc-renewed");

    const endSession = page.waitForRequest((r) => r.url().startsWith(`${ISSUER}/end_session?`));
    endSession.catch(() => {});
    await submit(page, "#sign-out");
    const logout = new URL((await endSession).url()).searchParams;
    assert.ok(logout.get("id_token_hint") && logout.get("state"), `id_token_hint and state in ${[...logout.keys()]}`);
    assert.equal(logout.get("post_logout_redirect_uri"), `${SPA}/oidc.html`);
    assert.equal(pathOf(page), "/oidc.html", "back at the SPA after signing out");
    await oidcState(page, "signed-out");
    assert.equal(await page.textContent("#status"), "Signed out");
    await screenshot(page, "oidc-signed-out");
    // Signed out at Gatehouse too: signing in again asks for the password.
    await submit(page, "#sign-in");
    assert.equal(pathOf(page), "/login");
    assert.deepEqual(page.problems, []);
  },

  // A client that requires a second factor: enrolment with the QR code, recovery codes, then a
  // returning user's code step (a wrong code, then a good one).
  async "totp enrolment and sign-in"(browser) {
    const page = await open(browser);
    await page.goto(`${SPA}/?issuer=${encodeURIComponent(ISSUER)}&client_id=${MFA_CLIENT}`);
    await submit(page, "#sign-in");
    await signInWithPassword(page, "carol", PASSWORD);
    assert.equal(pathOf(page), "/account/mfa");
    const qrShown = await page.$eval(".qr img", (img) => img.complete && img.naturalWidth > 0);
    assert.ok(qrShown, "the QR code renders");
    await screenshot(page, "totp-enrol");
    const secret = (await page.textContent("code.secret")).trim();
    await page.fill("#code", totp(secret));
    await submit(page, "button[type=submit]");
    assert.equal(await page.$$eval("ul.codes li", (l) => l.length), 10);
    await screenshot(page, "totp-recovery-codes");
    await submit(page, "a.button");
    assert.equal(pathOf(page), "/consent");
    await submit(page, "button[value=approve]");
    await page.waitForSelector("body[data-done=yes]");
    assert.equal(JSON.parse(await page.textContent("#out")).status, 200);
    assert.deepEqual(page.problems, []);

    // Another browser: password, then the code page; the step just used is refused, the next works.
    const other = await open(browser);
    await other.goto(`${SPA}/?issuer=${encodeURIComponent(ISSUER)}&client_id=${MFA_CLIENT}`);
    await submit(other, "#sign-in");
    await signInWithPassword(other, "carol", PASSWORD);
    assert.equal(pathOf(other), "/login/otp");
    await other.fill("#code", "000000");
    await submit(other, "button[type=submit]");
    assert.match(await other.textContent(".error"), /not valid/);
    await screenshot(other, "totp-code-refused");
    await other.fill("#code", totp(secret, 1));
    await submit(other, "button[type=submit]");
    // The consent given in the first browser is remembered: straight back with a code.
    await other.waitForSelector("body[data-done=yes]");
    assert.equal(JSON.parse(await other.textContent("#out")).status, 200);
    assert.deepEqual(other.problems, []);
  },

  // The front door and the demo page: sign in and refresh, all in the browser.
  async "front door and demo"(browser) {
    const page = await open(browser);
    await page.goto(`${ISSUER}/`);
    await screenshot(page, "home");
    await submit(page, "a[href='/demo']");
    await submit(page, "#sign-in");
    await signInWithPassword(page, "alice", PASSWORD);
    await submit(page, "button[value=approve]");
    await page.waitForSelector("#token:not([hidden])");
    assert.match(await page.textContent("#status"), /^Signed in/);
    await page.click("#refresh");
    await page.waitForFunction(() => document.getElementById("status").textContent.startsWith("Refreshed"));
    await screenshot(page, "demo");
    assert.deepEqual(page.problems, []);
  },

  // The admin console: an administrator signs in with password and TOTP, registers a client (a
  // field error first), sees its secret once, rotates it, rotates a signing key, unlocks a user
  // and reads the audit log filtered by event.
  async "admin console"(browser) {
    const page = await open(browser);
    await page.goto(`${ISSUER}/admin`);
    assert.equal(pathOf(page), "/login");
    assert.match(await page.textContent(".lead"), /admin console/);
    await screenshot(page, "admin-login");
    await signInWithPassword(page, "root", PASSWORD);
    assert.equal(pathOf(page), "/login/otp");
    await page.fill("#code", totp(ADMIN_TOTP));
    await submit(page, "button[type=submit]");
    assert.equal(pathOf(page), "/admin");
    await screenshot(page, "admin-home");

    await submit(page, "nav a[href='/admin/clients']");
    await submit(page, "a[href='/admin/clients/new']");
    await page.fill("#client_name", "Browser-made backend");
    await page.check("input[name=confidential]");
    await page.check("input[name=grant_type_client_credentials]");
    await page.fill("#redirect_uris", "http://app.example/cb");
    await page.fill("#audiences", "https://api.example.com");
    const register = "form[action='/admin/clients/new'] button[type=submit]";
    await submit(page, register);
    assert.match(await page.textContent("#redirect_uris-error"), /must use https/);
    assert.equal(await page.inputValue("#client_name"), "Browser-made backend");
    assert.equal(await page.inputValue("#redirect_uris"), "http://app.example/cb");
    await screenshot(page, "admin-client-field-error");
    await page.fill("#redirect_uris", "https://app.example/cb");
    await submit(page, register);
    const secret = (await page.textContent("#client-secret")).trim();
    assert.match(secret, /^[A-Za-z0-9_-]{40,}$/);
    assert.ok(await page.isVisible("button[data-copy]"), "the Copy button (same-origin script)");
    await screenshot(page, "admin-client-secret");

    await submit(page, "text=Back to the client");
    assert.equal(await page.$(`text=${secret}`), null, "the secret is shown once");
    await screenshot(page, "admin-client");
    await submit(page, "form[action$='/secret'] button[type=submit]");
    assert.match(await page.textContent("h1"), /Rotate the client secret/);
    await screenshot(page, "admin-confirm-rotation");
    await submit(page, "button.danger");
    const rotated = (await page.textContent("#client-secret")).trim();
    assert.notEqual(rotated, secret);
    assert.match(await page.textContent("main"), /keeps working until/);
    await screenshot(page, "admin-secret-rotated");

    await submit(page, "nav a[href='/admin/keys']");
    assert.equal(await page.$("tr.key-published"), null, "no key waiting yet");
    await submit(page, "form[action='/admin/keys/rotate'] button");
    assert.match(await page.textContent("tr.key-published"), /pending/);
    assert.match(await page.textContent(".notice"), /new key is published/);
    await screenshot(page, "admin-keys");

    await submit(page, "nav a[href='/admin/users']");
    await screenshot(page, "admin-users");
    await submit(page, "table a:text-is('dave')");
    await submit(page, "form[action$='/unlock'] button");
    assert.match(await page.textContent(".notice"), /unlocked/);
    await screenshot(page, "admin-user");

    await submit(page, "nav a[href='/admin/audit']");
    await page.selectOption("#event", "unlocked");
    await submit(page, "form.filters button[type=submit]");
    const events = await page.$$eval("table.audit tbody tr", (rows) => rows.map((r) => r.cells[1].textContent));
    assert.deepEqual(events, ["unlocked"]);
    await screenshot(page, "admin-audit");
    assert.deepEqual(page.problems, []);
  },
};

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox"],
  });
  let failed = 0;
  for (const [name, run] of Object.entries(scenarios)) {
    try {
      await run(browser);
      console.log(`ok   ${name}`);
    } catch (e) {
      failed += 1;
      console.log(`FAIL ${name}\n${e.stack || e}`);
    }
  }
  await browser.close();
  console.log(`${Object.keys(scenarios).length - failed} passed, ${failed} failed; screenshots in ${SHOTS}`);
  process.exit(failed ? 1 : 0);
})();
