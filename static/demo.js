// The /demo page: the authorization code flow with PKCE (S256), run in the browser, same origin.
// Nothing here is secret: a public client keeps its tokens in this page's memory only.
"use strict";
(function () {
  const root = document.getElementById("demo");
  const clientId = root.dataset.clientId;
  const issuer = root.dataset.issuer;
  const redirectUri = issuer + "/demo";
  const status = document.getElementById("status");
  const out = document.getElementById("token");
  const refreshButton = document.getElementById("refresh");
  let refreshToken = null;

  function b64url(bytes) {
    let s = "";
    bytes.forEach((b) => { s += String.fromCharCode(b); });
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function random() {
    return b64url(crypto.getRandomValues(new Uint8Array(32)));
  }
  function decode(part) {
    const s = part.replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(decodeURIComponent(escape(atob(s))));
  }

  async function signIn() {
    const verifier = random();
    const state = random();
    const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
    sessionStorage.setItem("gatehouse-demo", JSON.stringify({ verifier, state }));
    const q = new URLSearchParams({
      response_type: "code", client_id: clientId, redirect_uri: redirectUri,
      code_challenge: b64url(new Uint8Array(digest)), code_challenge_method: "S256", state,
    });
    location.assign(issuer + "/authorize?" + q.toString());
  }

  async function token(params) {
    const resp = await fetch(issuer + "/token", {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams(Object.assign({ client_id: clientId }, params)),
    });
    const body = await resp.json();
    if (!resp.ok) throw new Error(body.error + ": " + (body.error_description || ""));
    return body;
  }

  function show(body, what) {
    const [header, claims] = body.access_token.split(".").slice(0, 2).map(decode);
    refreshToken = body.refresh_token || null;
    refreshButton.hidden = !refreshToken;
    status.textContent = what + ": an access token for " + claims.sub + ", valid " + body.expires_in + " s" +
      (refreshToken ? ", with a refresh token (it rotates on every use)." : ".");
    out.hidden = false;
    out.textContent = JSON.stringify({ header, claims }, null, 2);
  }

  async function returned(params) {
    history.replaceState(null, "", redirectUri);
    const saved = JSON.parse(sessionStorage.getItem("gatehouse-demo") || "null");
    sessionStorage.removeItem("gatehouse-demo");
    if (params.get("error")) throw new Error(params.get("error") + ": " + (params.get("error_description") || ""));
    if (!saved || params.get("state") !== saved.state) throw new Error("the state does not match this browser's sign-in");
    if (params.get("iss") !== issuer) throw new Error("the answer names another issuer");
    show(await token({
      grant_type: "authorization_code", code: params.get("code"),
      code_verifier: saved.verifier, redirect_uri: redirectUri,
    }), "Signed in");
  }

  function failed(e) {
    status.textContent = "Failed: " + e.message;
  }

  document.getElementById("sign-in").addEventListener("click", () => signIn().catch(failed));
  refreshButton.addEventListener("click", () =>
    token({ grant_type: "refresh_token", refresh_token: refreshToken })
      .then((body) => show(body, "Refreshed"))
      .catch(failed));
  const params = new URLSearchParams(location.search);
  if (params.has("code") || params.has("error")) returned(params).catch(failed);
})();
