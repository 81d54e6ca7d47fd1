//! Gatehouse as a real OpenID Connect relying party library sees it: the `openidconnect` crate
//! discovers the provider from its issuer, builds the authorization request (PKCE S256, nonce),
//! exchanges the code, verifies the ID token against the JWKS it fetched (signature, issuer,
//! audience, nonce, `at_hash`), refreshes, reads userinfo and builds the RP-initiated logout
//! request. The test only plays the person at the login and consent pages; everything on the
//! client's side is the library's.

use std::collections::HashMap;

use openidconnect::core::{
    CoreAuthPrompt, CoreAuthenticationFlow, CoreClient, CoreIdToken, CoreIdTokenClaims,
    CoreIdTokenVerifier, CoreJwsSigningAlgorithm, CoreTokenResponse, CoreUserInfoClaims,
};
use openidconnect::{
    AccessTokenHash, AuthorizationCode, ClientId, CsrfToken, EndpointMaybeSet, EndpointNotSet,
    EndpointSet, IssuerUrl, LogoutRequest, Nonce, OAuth2TokenResponse, PkceCodeChallenge,
    PostLogoutRedirectUrl, ProviderMetadataWithLogout, RedirectUrl, Scope, SubjectIdentifier,
    TokenResponse,
};

use crate::both_backends;
use crate::helpers::*;

/// Where the relying party's browser lands after signing out at Gatehouse.
const SIGNED_OUT: &str = "http://127.0.0.1:5173/signed-out";

/// A client built from the discovered metadata: authorization endpoint known, token and
/// userinfo endpoints as the document gave them.
type DiscoveredClient = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// The relying party: the library's client, from discovery, for one registered client.
struct RelyingParty {
    metadata: ProviderMetadataWithLogout,
    client: DiscoveredClient,
    /// Follows no redirects (the library's advice against SSRF) and keeps no cookies.
    http: reqwest::Client,
    /// The one ID token signing algorithm this relying party accepts.
    alg: CoreJwsSigningAlgorithm,
}

/// What a sign-in gave the relying party.
struct SignedIn {
    tokens: CoreTokenResponse,
    claims: CoreIdTokenClaims,
}

impl SignedIn {
    fn id_token(&self) -> &CoreIdToken {
        self.tokens.id_token().expect("an ID token")
    }
}

impl RelyingParty {
    /// Discovery from the issuer alone, as a relying party configured with nothing else does.
    async fn discover(app: &TestApp, client_id: &str, alg: CoreJwsSigningAlgorithm) -> Self {
        let http = app.api.clone();
        let issuer = IssuerUrl::new(app.issuer.clone()).expect("issuer URL");
        let metadata = ProviderMetadataWithLogout::discover_async(issuer, &http)
            .await
            .expect("the library reads the discovery document and the JWKS");
        let client = CoreClient::from_provider_metadata(
            metadata.clone(),
            ClientId::new(client_id.to_owned()),
            None,
        )
        .set_redirect_uri(RedirectUrl::new(REDIRECT.to_owned()).expect("redirect URI"));
        RelyingParty {
            metadata,
            client,
            http,
            alg,
        }
    }

    /// The library's ID token verifier, accepting only the algorithm Gatehouse is set to sign
    /// with (the library's default is RS256 alone).
    fn verifier(&self) -> CoreIdTokenVerifier<'_> {
        self.client
            .id_token_verifier()
            .set_allowed_algs([self.alg.clone()])
    }

    /// Authorization request (PKCE S256, nonce, `openid profile email`), the person signs in
    /// and allows, the library exchanges the code and verifies the ID token and its `at_hash`.
    async fn sign_in(&self, app: &TestApp, username: &str) -> SignedIn {
        let (challenge, pkce_verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state, nonce) = self
            .client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scope(Scope::new("profile".into()))
            .add_scope(Scope::new("email".into()))
            .set_pkce_challenge(challenge)
            .url();
        let sent: HashMap<String, String> = url.query_pairs().into_owned().collect();
        assert_eq!(sent["code_challenge_method"], "S256");
        assert_eq!(sent["scope"], "openid profile email");
        assert_eq!(sent["nonce"], *nonce.secret());

        let answer = sign_in_at_gatehouse(app, url.as_str(), username).await;
        assert_eq!(answer.get("state"), Some(state.secret()), "state");
        // RFC 9207: the answer names the issuer the library discovered.
        assert_eq!(
            answer.get("iss").map(String::as_str),
            Some(self.metadata.issuer().as_str())
        );
        let code = answer
            .get("code")
            .unwrap_or_else(|| panic!("no code: {answer:?}"));

        let tokens = self
            .client
            .exchange_code(AuthorizationCode::new(code.clone()))
            .expect("a token endpoint in the metadata")
            .set_pkce_verifier(pkce_verifier)
            .request_async(&self.http)
            .await
            .expect("the library exchanges the code");
        let id_token = tokens.id_token().expect("an ID token for scope openid");
        let verifier = self.verifier();
        let claims = id_token
            .claims(&verifier, &nonce)
            .expect("the library accepts the ID token: signature, iss, aud, exp, nonce")
            .clone();
        self.check_at_hash(id_token, &claims, &tokens);
        SignedIn { tokens, claims }
    }

    /// The library's `at_hash` check: the access token is the one the ID token was issued with.
    fn check_at_hash(
        &self,
        id_token: &CoreIdToken,
        claims: &CoreIdTokenClaims,
        tokens: &CoreTokenResponse,
    ) {
        let verifier = self.verifier();
        let alg = id_token.signing_alg().expect("signing alg");
        assert_eq!(alg, &self.alg, "signed with the configured algorithm");
        let key = id_token.signing_key(&verifier).expect("a key of the JWKS");
        let computed =
            AccessTokenHash::from_token(tokens.access_token(), alg, key).expect("at_hash");
        let claimed = claims.access_token_hash().expect("at_hash in the ID token");
        assert_eq!(&computed, claimed, "at_hash matches the access token");
    }

    /// The library refreshes; the new ID token verifies, carries no nonce, and names the same
    /// person, client and sign-in (OpenID Connect Core §12.2).
    async fn refresh(&self, signed_in: &SignedIn) -> SignedIn {
        let refresh_token = signed_in.tokens.refresh_token().expect("a refresh token");
        let tokens = self
            .client
            .exchange_refresh_token(refresh_token)
            .expect("a token endpoint in the metadata")
            .request_async(&self.http)
            .await
            .expect("the library refreshes");
        assert_ne!(
            tokens.access_token().secret(),
            signed_in.tokens.access_token().secret()
        );
        let id_token = tokens.id_token().expect("a new ID token on refresh");
        let no_nonce = |nonce: Option<&Nonce>| match nonce {
            None => Ok(()),
            Some(_) => Err("a refreshed ID token carries no nonce".to_owned()),
        };
        let claims = id_token
            .claims(&self.verifier(), no_nonce)
            .expect("the library accepts the refreshed ID token")
            .clone();
        self.check_at_hash(id_token, &claims, &tokens);
        let first = &signed_in.claims;
        assert_eq!(claims.issuer(), first.issuer());
        assert_eq!(claims.subject(), first.subject());
        assert_eq!(claims.audiences(), first.audiences());
        assert_eq!(claims.auth_time(), first.auth_time());
        assert!(claims.issue_time() >= first.issue_time());
        SignedIn { tokens, claims }
    }
}

/// Plays the person: follows the authorization URL to Gatehouse's login and consent pages (or
/// straight back, when signed in with the consent remembered) and returns the parameters of
/// the answer at the redirect URI.
async fn sign_in_at_gatehouse(
    app: &TestApp,
    authorization_url: &str,
    username: &str,
) -> HashMap<String, String> {
    let resp = app.browse(authorization_url).await;
    assert!(
        resp.status().is_redirection(),
        "authorize: {}",
        resp.status()
    );
    let mut next = location(&resp);
    if next.starts_with("/login") {
        let resp = app.login(&next, username, PASSWORD).await;
        assert_eq!(resp.status().as_u16(), 303, "sign-in");
        next = location(&resp);
    }
    if next.starts_with("/consent") {
        let resp = app.consent(&next, "approve").await;
        assert_eq!(resp.status().as_u16(), 303, "consent");
        next = location(&resp);
    }
    assert!(next.starts_with(REDIRECT), "back at the client: {next}");
    query_of(&next)
}

/// A public client for OpenID Connect, as the README registers one.
fn oidc_client(app: &TestApp) -> TestClient {
    app.register(NewClient {
        name: "OpenID Connect RP".into(),
        scopes: strings(&["openid", "profile", "email", "api:read"]),
        ..spa_registration()
    })
}

/// Alice, with a name and a verified e-mail address.
fn alice(app: &TestApp) -> String {
    let id = app.user("alice", &[]);
    app.set_profile("alice", "Alice Liddell", "alice@example.com", true);
    id
}

/// Sign-in, ID token, refresh: what a relying party does with a provider signing with `alg`.
async fn sign_in_and_refresh(app: &TestApp, alg: CoreJwsSigningAlgorithm) {
    let client = oidc_client(app);
    let alice_id = alice(app);
    let rp = RelyingParty::discover(app, &client.id, alg.clone()).await;
    assert!(
        rp.metadata
            .id_token_signing_alg_values_supported()
            .contains(&alg),
        "discovery advertises {alg:?}"
    );

    let signed_in = rp.sign_in(app, "alice").await;
    let claims = &signed_in.claims;
    assert_eq!(claims.subject().as_str(), alice_id);
    assert_eq!(claims.audiences().len(), 1);
    assert_eq!(claims.audiences()[0].as_str(), client.id);
    assert_eq!(claims.issuer().as_str(), app.issuer);
    assert!(claims.auth_time().is_some(), "auth_time");
    assert_eq!(
        claims.name().and_then(|n| n.get(None)).map(|n| n.as_str()),
        Some("Alice Liddell")
    );
    assert_eq!(
        claims.preferred_username().map(|u| u.as_str()),
        Some("alice")
    );
    assert_eq!(
        claims.email().map(|e| e.as_str()),
        Some("alice@example.com")
    );
    assert_eq!(claims.email_verified(), Some(true));
    assert_eq!(
        claims
            .auth_method_refs()
            .map(|amr| amr.iter().map(|m| m.as_str()).collect::<Vec<_>>()),
        Some(vec!["pwd"])
    );

    // The library's checks bite: another nonce, another client, another algorithm.
    let id_token = signed_in.id_token();
    let other_nonce = Nonce::new("another-nonce".into());
    assert!(id_token.claims(&rp.verifier(), &other_nonce).is_err());
    let stranger = CoreClient::from_provider_metadata(
        rp.metadata.clone(),
        ClientId::new("another-client".into()),
        None,
    );
    let nonce = claims.nonce().expect("nonce").clone();
    let stranger_verifier = stranger.id_token_verifier().set_allowed_algs([alg.clone()]);
    assert!(id_token.claims(&stranger_verifier, &nonce).is_err());
    let other_alg = if alg == CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256 {
        CoreJwsSigningAlgorithm::EcdsaP256Sha256
    } else {
        CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256
    };
    let strict = rp.client.id_token_verifier().set_allowed_algs([other_alg]);
    assert!(id_token.claims(&strict, &nonce).is_err());
    // An access token is no ID token: `typ` at+jwt, and its audience is the API.
    let access_token: CoreIdToken = signed_in
        .tokens
        .access_token()
        .secret()
        .parse()
        .expect("a JWT");
    let anything = |_: Option<&Nonce>| Ok(());
    assert!(access_token.claims(&rp.verifier(), anything).is_err());

    // Refresh: the library takes the new ID token, and again from that one.
    let refreshed = rp.refresh(&signed_in).await;
    rp.refresh(&refreshed).await;

    // Signed in already with the consent remembered: the next sign-in needs no page.
    let again = rp.sign_in(app, "alice").await;
    assert_eq!(again.claims.subject(), claims.subject());
}

both_backends!(openidconnect_crate_signs_in_and_refreshes_with_es256);
async fn openidconnect_crate_signs_in_and_refreshes_with_es256(app: TestApp) {
    sign_in_and_refresh(&app, CoreJwsSigningAlgorithm::EcdsaP256Sha256).await;
}

both_backends!(
    openidconnect_crate_signs_in_and_refreshes_with_rs256,
    |s: &mut Settings| s.keys.algorithm = "RS256".into()
);
async fn openidconnect_crate_signs_in_and_refreshes_with_rs256(app: TestApp) {
    sign_in_and_refresh(&app, CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256).await;
}

both_backends!(
    openidconnect_crate_signs_in_and_refreshes_with_eddsa,
    |s: &mut Settings| s.keys.algorithm = "EdDSA".into()
);
async fn openidconnect_crate_signs_in_and_refreshes_with_eddsa(app: TestApp) {
    sign_in_and_refresh(&app, CoreJwsSigningAlgorithm::EdDsa).await;
}

both_backends!(openidconnect_crate_reads_userinfo);
async fn openidconnect_crate_reads_userinfo(app: TestApp) {
    let client = oidc_client(&app);
    alice(&app);
    let rp =
        RelyingParty::discover(&app, &client.id, CoreJwsSigningAlgorithm::EcdsaP256Sha256).await;
    let signed_in = rp.sign_in(&app, "alice").await;
    // The library checks that userinfo's `sub` is the ID token's.
    let userinfo: CoreUserInfoClaims = rp
        .client
        .user_info(
            signed_in.tokens.access_token().clone(),
            Some(signed_in.claims.subject().clone()),
        )
        .expect("a userinfo endpoint in the metadata")
        .request_async(&rp.http)
        .await
        .unwrap_or_else(|e| panic!("the library reads userinfo: {e}"));
    assert_eq!(
        userinfo
            .name()
            .and_then(|n| n.get(None))
            .map(|n| n.as_str()),
        Some("Alice Liddell")
    );
    assert_eq!(
        userinfo.preferred_username().map(|u| u.as_str()),
        Some("alice")
    );
    assert_eq!(
        userinfo.email().map(|e| e.as_str()),
        Some("alice@example.com")
    );
    assert_eq!(userinfo.email_verified(), Some(true));
    // Someone else's subject expected: the library refuses the answer.
    let mismatch: Result<CoreUserInfoClaims, _> = rp
        .client
        .user_info(
            signed_in.tokens.access_token().clone(),
            Some(SubjectIdentifier::new("someone-else".into())),
        )
        .expect("endpoint")
        .request_async(&rp.http)
        .await;
    assert!(mismatch.is_err());
}

/// `gatehouse client create ARGS --json` against the app's database: the new client's id.
fn client_from_the_command_line(app: &TestApp, args: &[&str]) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cmd = std::process::Command::new(crate::cli::BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("GATEHOUSE_") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    let out = cmd
        .current_dir(dir.path())
        .env("GATEHOUSE_DATABASE_URL", &app.database_url)
        .env("GATEHOUSE_KEYS_DIR", dir.path().join("keys"))
        .args(["client", "create"])
        .args(args)
        .arg("--json")
        .output()
        .expect("run gatehouse");
    assert!(
        out.status.success(),
        "client create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    s(&json, "client_id")
}

both_backends!(openidconnect_crate_logs_out);
async fn openidconnect_crate_logs_out(app: TestApp) {
    let client_id = client_from_the_command_line(
        &app,
        &[
            "--name",
            "OpenID Connect RP",
            "--redirect-uri",
            REDIRECT,
            "--post-logout-redirect-uri",
            SIGNED_OUT,
            "--scope",
            "openid",
            "--scope",
            "profile",
            "--scope",
            "email",
            "--audience",
            AUDIENCE,
        ],
    );
    alice(&app);
    let rp =
        RelyingParty::discover(&app, &client_id, CoreJwsSigningAlgorithm::EcdsaP256Sha256).await;
    let signed_in = rp.sign_in(&app, "alice").await;

    // The library builds the RP-initiated logout request from the discovered end_session_endpoint.
    let end_session = rp
        .metadata
        .additional_metadata()
        .end_session_endpoint
        .clone()
        .expect("end_session_endpoint in the discovery document");
    let state = CsrfToken::new_random();
    let logout_url = LogoutRequest::from(end_session)
        .set_id_token_hint(signed_in.id_token())
        .set_client_id(ClientId::new(client_id.clone()))
        .set_post_logout_redirect_uri(PostLogoutRedirectUrl::new(SIGNED_OUT.into()).expect("URL"))
        .set_state(state.clone())
        .http_get_url();
    // The hint names this browser's session: signed out at once, and back at the client.
    let resp = app.browse(logout_url.as_str()).await;
    assert!(
        resp.status().is_redirection(),
        "end_session: {}",
        resp.status()
    );
    let back = location(&resp);
    assert!(back.starts_with(SIGNED_OUT), "{back}");
    assert_eq!(query_of(&back).get("state"), Some(state.secret()));

    // Signed out: prompt=none is answered login_required.
    let (challenge, _) = PkceCodeChallenge::new_random_sha256();
    let (url, _, _) = rp
        .client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_prompt(CoreAuthPrompt::None)
        .set_pkce_challenge(challenge)
        .url();
    let resp = app.browse(url.as_str()).await;
    let answer = query_of(&location(&resp));
    assert_eq!(
        answer.get("error").map(String::as_str),
        Some("login_required")
    );
}
