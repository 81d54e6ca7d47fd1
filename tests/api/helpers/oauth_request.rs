//! Requests to the token, revocation and introspection endpoints, written the way a test says
//! them: `app.token().code(&code, &pkce.verifier).client(&spa).ok().await`,
//! `app.token().refresh(&rt).basic(&conf).fails(400, "invalid_grant").await`.
//!
//! The builder sends exactly the parameters it was given, in order: `param` adds one as is (a
//! duplicate, an empty or oversized value), `without` takes one out. `TestApp::post_form` stays
//! for what is not a form of name/value pairs at all.

use std::sync::Arc;

use reqwest::header::HeaderMap;
use serde_json::Value;

use super::{assert_oauth_error, basic, ok_json, read, TestApp, TestClient, REDIRECT};

/// A form POST to one of the OAuth endpoints, built up parameter by parameter.
#[must_use = "a request does nothing until it is sent"]
pub struct OAuthRequest<'a> {
    app: &'a TestApp,
    path: &'static str,
    params: Vec<(String, String)>,
    authorization: Option<String>,
    origin: Option<String>,
}

impl TestApp {
    /// A request to `/token` with no parameters yet.
    pub fn token(&self) -> OAuthRequest<'_> {
        self.oauth("/token")
    }

    /// A request to revoke `token` (RFC 7009).
    pub fn revocation(&self, token: &str) -> OAuthRequest<'_> {
        self.oauth("/revoke").param("token", token)
    }

    /// A request to introspect `token` (RFC 7662).
    pub fn introspection(&self, token: &str) -> OAuthRequest<'_> {
        self.oauth("/introspect").param("token", token)
    }

    fn oauth(&self, path: &'static str) -> OAuthRequest<'_> {
        OAuthRequest {
            app: self,
            path,
            params: Vec::new(),
            authorization: None,
            origin: None,
        }
    }

    /// POST a form of raw pairs, optionally with an Authorization header.
    pub async fn post_form(
        &self,
        path: &str,
        form: &[(&str, &str)],
        authorization: Option<&str>,
    ) -> reqwest::Response {
        let mut req = self.api.post(self.url(path)).form(form);
        if let Some(a) = authorization {
            req = req.header("Authorization", a);
        }
        req.send().await.expect("POST")
    }

    /// Exchanges a code for tokens as a public client.
    pub async fn exchange(
        &self,
        client: &TestClient,
        code: &str,
        verifier: &str,
    ) -> reqwest::Response {
        self.token()
            .code(code, verifier)
            .client(client)
            .send()
            .await
    }

    /// Refreshes as a public client.
    pub async fn refresh(&self, client: &TestClient, refresh_token: &str) -> reqwest::Response {
        self.token()
            .refresh(refresh_token)
            .client(client)
            .send()
            .await
    }

    /// Whether introspection by `caller` says `token` is active.
    pub async fn is_active(&self, caller: &TestClient, token: &str) -> bool {
        self.introspect(caller, token).await["active"] == true
    }

    /// Introspects with a confidential client's credentials; asserts 200.
    pub async fn introspect(&self, caller: &TestClient, token: &str) -> Value {
        self.introspection(token).basic(caller).ok().await
    }
}

impl OAuthRequest<'_> {
    /// The authorization_code grant: `code`, the standard redirect URI and `verifier`.
    pub fn code(self, code: &str, verifier: &str) -> Self {
        self.grant_type("authorization_code")
            .param("code", code)
            .param("redirect_uri", REDIRECT)
            .param("code_verifier", verifier)
    }

    /// The refresh_token grant.
    pub fn refresh(self, refresh_token: &str) -> Self {
        self.grant_type("refresh_token")
            .param("refresh_token", refresh_token)
    }

    /// The password grant.
    pub fn password(self, username: &str, password: &str) -> Self {
        self.grant_type("password")
            .param("username", username)
            .param("password", password)
    }

    pub fn client_credentials(self) -> Self {
        self.grant_type("client_credentials")
    }

    pub fn grant_type(self, grant_type: &str) -> Self {
        self.param("grant_type", grant_type)
    }

    pub fn scope(self, scope: &str) -> Self {
        self.param("scope", scope)
    }

    pub fn resource(self, resource: &str) -> Self {
        self.param("resource", resource)
    }

    /// Adds a parameter as given, even one already there.
    pub fn param(mut self, name: &str, value: &str) -> Self {
        self.params.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Replaces every `name` parameter with one `value`.
    pub fn set(self, name: &str, value: &str) -> Self {
        self.without(name).param(name, value)
    }

    /// Adds a parameter when there is a value.
    pub fn maybe(self, name: &str, value: Option<&str>) -> Self {
        match value {
            Some(v) => self.param(name, v),
            None => self,
        }
    }

    /// Takes every `name` parameter out.
    pub fn without(mut self, name: &str) -> Self {
        self.params.retain(|(n, _)| n != name);
        self
    }

    /// Names the client in the body and nothing more: a public client's way, or a confidential
    /// client that forgot its secret.
    pub fn client(self, client: &TestClient) -> Self {
        self.param("client_id", &client.id)
    }

    /// client_secret_basic with the client's own secret.
    pub fn basic(self, client: &TestClient) -> Self {
        self.authorization(&client.basic())
    }

    /// client_secret_basic with any id and secret.
    pub fn basic_as(self, id: &str, secret: &str) -> Self {
        self.authorization(&basic(id, secret))
    }

    /// client_secret_post with the client's own secret.
    pub fn secret_post(self, client: &TestClient) -> Self {
        self.param("client_id", &client.id)
            .param("client_secret", client.secret())
    }

    /// An Authorization header, as given.
    pub fn authorization(mut self, value: &str) -> Self {
        self.authorization = Some(value.to_owned());
        self
    }

    /// An Origin header: the request comes from a page on that origin.
    pub fn origin(mut self, origin: &str) -> Self {
        self.origin = Some(origin.to_owned());
        self
    }

    /// The parameters so far, in order.
    pub fn params(&self) -> &[(String, String)] {
        &self.params
    }

    pub async fn send(self) -> reqwest::Response {
        let mut req = self
            .app
            .api
            .post(self.app.url(self.path))
            .form(&self.params);
        if let Some(a) = &self.authorization {
            req = req.header("Authorization", a);
        }
        if let Some(o) = &self.origin {
            req = req.header("Origin", o);
        }
        req.send().await.expect("POST")
    }

    /// Status, headers and JSON body of the answer.
    pub async fn read(self) -> (u16, HeaderMap, Value) {
        read(self.send().await).await
    }

    /// Asserts a 200 answer and returns its JSON.
    pub async fn ok(self) -> Value {
        ok_json(self.send().await).await
    }

    /// Asserts an OAuth error answer with `status` and `error`; returns its JSON.
    pub async fn fails(self, status: u16, error: &str) -> Value {
        assert_oauth_error(self.send().await, status, error).await
    }

    /// Sends `n` copies of this request at the same moment; returns each status and body.
    pub async fn race(self, n: usize) -> Vec<(u16, Value)> {
        let barrier = Arc::new(tokio::sync::Barrier::new(n));
        let url = self.app.url(self.path);
        let handles: Vec<_> = (0..n)
            .map(|_| {
                let mut req = self.app.api.post(&url).form(&self.params);
                if let Some(a) = &self.authorization {
                    req = req.header("Authorization", a);
                }
                let barrier = barrier.clone();
                tokio::spawn(async move {
                    barrier.wait().await;
                    let (status, _, body) = read(req.send().await.expect("POST")).await;
                    (status, body)
                })
            })
            .collect();
        let mut out = Vec::new();
        for h in handles {
            out.push(h.await.expect("task"));
        }
        out
    }
}
