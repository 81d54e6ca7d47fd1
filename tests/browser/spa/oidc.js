// A single-page app on another origin than Gatehouse that signs in with oidc-client-ts (its
// browser bundle, served beside this file by tests/browser/run, is the global `oidc`): discovery,
// the authorization code flow with PKCE and a nonce, the profile from the ID token and userinfo,
// renewal with the refresh token, and RP-initiated sign-out. The protocol is all the library's.
"use strict";
const params = new URLSearchParams(location.search);
if (params.has("issuer")) {
  sessionStorage.setItem("oidc-issuer", params.get("issuer"));
  sessionStorage.setItem("oidc-client-id", params.get("client_id"));
}
const here = location.origin + location.pathname;
const manager = new oidc.UserManager({
  authority: sessionStorage.getItem("oidc-issuer"),
  client_id: sessionStorage.getItem("oidc-client-id"),
  redirect_uri: here,
  post_logout_redirect_uri: here,
  response_type: "code",
  scope: "openid profile email",
  loadUserInfo: true,
  automaticSilentRenew: false,
});
const $ = (id) => document.getElementById(id);

// Shows the signed-in user (or nobody) and marks the page with `state` for the suite to wait on.
function show(user, state) {
  const signedIn = Boolean(user) && !user.expired;
  $("status").textContent = signedIn ? `Signed in as ${user.profile.name || user.profile.sub}` : "Signed out";
  for (const claim of ["name", "preferred_username", "email"]) {
    $(claim).textContent = signedIn ? user.profile[claim] || "" : "";
  }
  $("access-token").textContent = signedIn ? user.access_token : "";
  $("profile").hidden = !signedIn;
  $("sign-in").hidden = signedIn;
  $("renew").hidden = !signedIn;
  $("sign-out").hidden = !signedIn;
  document.body.dataset.state = state;
}

function failed(e) {
  $("error").textContent = String((e && e.message) || e);
  $("error").hidden = false;
  document.body.dataset.state = "error";
}

$("sign-in").addEventListener("click", () => {
  manager.signinRedirect({ nonce: crypto.randomUUID() }).catch(failed);
});
$("renew").addEventListener("click", () => {
  manager.signinSilent().then((user) => show(user, "renewed"), failed);
});
$("sign-out").addEventListener("click", () => {
  // With state data the library sends `state` and checks it on the way back.
  manager.signoutRedirect({ state: "signed-out" }).catch(failed);
});

async function start() {
  if (params.has("code") || params.has("error")) {
    const user = await manager.signinCallback();
    history.replaceState(null, "", here);
    show(user, "signed-in");
  } else if (params.has("state")) {
    const response = await manager.signoutCallback();
    history.replaceState(null, "", here);
    if (!response || response.userState !== "signed-out") throw new Error("not the state the sign-out sent");
    show(null, "signed-out");
  } else {
    const user = await manager.getUser();
    show(user, user ? "signed-in" : "signed-out");
  }
}
start().catch(failed);
