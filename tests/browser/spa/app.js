// A single-page app on another origin than Gatehouse: PKCE sign-in, then a token exchange that
// needs a CORS preflight (it sends a DPoP header, as a DPoP-using SPA would).
"use strict";
const params = new URLSearchParams(location.search);
const issuer = params.get("issuer") || sessionStorage.getItem("issuer");
const clientId = params.get("client_id") || sessionStorage.getItem("client_id");
const redirectUri = location.origin + "/";
const out = document.getElementById("out");

function b64url(bytes) {
  let s = "";
  bytes.forEach((b) => { s += String.fromCharCode(b); });
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

document.getElementById("sign-in").addEventListener("click", async () => {
  const verifier = b64url(crypto.getRandomValues(new Uint8Array(32)));
  const state = b64url(crypto.getRandomValues(new Uint8Array(16)));
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
  sessionStorage.setItem("issuer", issuer);
  sessionStorage.setItem("client_id", clientId);
  sessionStorage.setItem("pkce", JSON.stringify({ verifier, state }));
  const query = new URLSearchParams({
    response_type: "code", client_id: clientId, redirect_uri: redirectUri, scope: "api:read",
    code_challenge: b64url(new Uint8Array(digest)), code_challenge_method: "S256", state,
  });
  // ?prompt=consent asks for consent again although it was given before.
  if (params.get("prompt")) query.set("prompt", params.get("prompt"));
  location.assign(issuer + "/authorize?" + query);
});

async function returned() {
  const saved = JSON.parse(sessionStorage.getItem("pkce"));
  const result = { error: params.get("error"), iss: params.get("iss"), stateOk: params.get("state") === saved.state };
  if (params.get("code")) {
    const resp = await fetch(issuer + "/token", {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded", "DPoP": "not-a-proof" },
      body: new URLSearchParams({
        grant_type: "authorization_code", code: params.get("code"), code_verifier: saved.verifier,
        redirect_uri: redirectUri, client_id: clientId,
      }),
    });
    const body = await resp.json();
    result.status = resp.status;
    result.hasAccessToken = typeof body.access_token === "string";
    result.hasRefreshToken = typeof body.refresh_token === "string";
  }
  out.textContent = JSON.stringify(result);
  document.body.dataset.done = "yes";
}

if (params.has("code") || params.has("error")) {
  returned().catch((e) => { out.textContent = JSON.stringify({ failed: String(e) }); document.body.dataset.done = "yes"; });
}
