//! A resource server that validates Gatehouse access tokens on its own with `gatehouse::verify`.
//!
//! Configuration: `RS_BIND` (default 127.0.0.1:9090), `RS_ISSUER` (the Gatehouse issuer),
//! `RS_AUDIENCE` (this API's URI, as registered with `client create --audience`), `RS_PUBLIC_URL`
//! (where clients reach this server; default `http://` + `RS_BIND`) and, where the issuer's
//! address is not reachable from here (containers), `RS_JWKS_URI`.
//!
//! - `GET /.well-known/oauth-protected-resource`: RFC 9728 metadata (the resource, its
//!   authorization server, its scopes), named in every `WWW-Authenticate` answer as
//!   `resource_metadata`, so a client that meets a 401 finds where to get a token.
//! - `GET /public`: no token needed.
//! - `GET /read`: needs scope `api:read`.
//! - `GET /admin`: needs role `admin`.
//!
//! Failures answer per RFC 6750 §3: 401 with `WWW-Authenticate: Bearer …` when the token is
//! missing or invalid, 403 `insufficient_scope` when it lacks the scope or role. Tokens are read
//! from the `Authorization` header only, never from the URL (RFC 6750 §5.3).
//!
//! Run: `RS_ISSUER=http://127.0.0.1:8080 RS_AUDIENCE=https://api.example.com cargo run --example resource_server`

use std::sync::{Arc, OnceLock};

use actix_web::http::header;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use gatehouse::verify::{Claims, Config, Verifier, VerifyError};

const REALM: &str = "resource-server";
/// The path of RFC 9728 protected-resource metadata.
const METADATA_PATH: &str = "/.well-known/oauth-protected-resource";

/// `realm` and `resource_metadata` (RFC 9728 §5.1), the start of every challenge.
static CHALLENGE: OnceLock<String> = OnceLock::new();

fn challenge_start() -> &'static str {
    CHALLENGE.get().map_or("Bearer", String::as_str)
}

/// What RFC 9728 metadata says about this server.
struct Resource {
    audience: String,
    issuer: String,
}

async fn resource_metadata(resource: web::Data<Resource>) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({
        "resource": resource.audience,
        "authorization_servers": [resource.issuer],
        "scopes_supported": ["api:read"],
        "bearer_methods_supported": ["header"],
        "resource_name": "Gatehouse example resource server",
    }))
}

/// What a request needs beyond a valid token.
enum Need {
    Scope(&'static str),
    Role(&'static str),
}

fn bearer(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// `text` fit for a quoted-string in a header: no quote, backslash or control character.
fn quoted(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '"' | '\\' => '\'',
            c if c == ' ' || c.is_ascii_graphic() => c,
            _ => '?',
        })
        .collect()
}

fn unauthorized(error: Option<&VerifyError>) -> HttpResponse {
    let challenge = match error {
        // RFC 6750 §3.1: no error code when the request carried no token at all.
        None => challenge_start().to_owned(),
        Some(e) => format!(
            "{}, error=\"invalid_token\", error_description=\"{}\"",
            challenge_start(),
            quoted(&e.to_string())
        ),
    };
    let body = serde_json::json!({
        "error": if error.is_some() { "invalid_token" } else { "unauthorized" },
        "error_description": error.map_or("a bearer token is required".to_owned(), |e| e.to_string()),
    });
    HttpResponse::Unauthorized()
        .insert_header((header::WWW_AUTHENTICATE, challenge))
        .json(body)
}

fn forbidden(need: &Need) -> HttpResponse {
    let (challenge, description) = match need {
        Need::Scope(s) => (
            format!(
                "{}, error=\"insufficient_scope\", scope=\"{s}\"",
                challenge_start()
            ),
            format!("the token lacks scope {s}"),
        ),
        Need::Role(r) => (
            format!(
                "{}, error=\"insufficient_scope\", error_description=\"requires role {r}\"",
                challenge_start()
            ),
            format!("the token's user lacks role {r}"),
        ),
    };
    HttpResponse::Forbidden()
        .insert_header((header::WWW_AUTHENTICATE, challenge))
        .json(serde_json::json!({"error": "insufficient_scope", "error_description": description}))
}

fn echo(claims: &Claims) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({
        "sub": claims.sub,
        "scope": claims.scope,
        "roles": claims.roles,
    }))
}

async fn protected(verifier: &Verifier, req: &HttpRequest, need: Need) -> HttpResponse {
    if req.query_string().contains("access_token=") {
        return HttpResponse::BadRequest().json(serde_json::json!({
            "error": "invalid_request",
            "error_description": "send the token in the Authorization header, not the URL",
        }));
    }
    let Some(token) = bearer(req) else {
        return unauthorized(None);
    };
    let claims = match verifier.verify(token).await {
        Ok(c) => c,
        Err(e) if e.is_unavailable() => {
            eprintln!("resource server: {e}");
            return HttpResponse::ServiceUnavailable().json(serde_json::json!({
                "error": "temporarily_unavailable",
                "error_description": "the signing keys could not be fetched",
            }));
        }
        Err(e) => return unauthorized(Some(&e)),
    };
    let allowed = match &need {
        Need::Scope(s) => claims.has_scope(s),
        Need::Role(r) => claims.has_role(r),
    };
    if allowed {
        echo(&claims)
    } else {
        forbidden(&need)
    }
}

async fn public() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"message": "public: no token needed"}))
}

async fn read(verifier: web::Data<Arc<Verifier>>, req: HttpRequest) -> HttpResponse {
    protected(&verifier, &req, Need::Scope("api:read")).await
}

async fn admin(verifier: web::Data<Arc<Verifier>>, req: HttpRequest) -> HttpResponse {
    protected(&verifier, &req, Need::Role("admin")).await
}

fn env(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("{name} must be set"))
}

#[actix_web::main]
async fn main() -> std::process::ExitCode {
    let settings = (|| -> Result<(String, String, String), String> {
        let bind = std::env::var("RS_BIND").unwrap_or_else(|_| "127.0.0.1:9090".to_owned());
        Ok((bind, env("RS_ISSUER")?, env("RS_AUDIENCE")?))
    })();
    let (bind, issuer, audience) = match settings {
        Ok(s) => s,
        Err(e) => {
            eprintln!("resource server: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let public_url = std::env::var("RS_PUBLIC_URL").unwrap_or_else(|_| format!("http://{bind}"));
    let public_url = public_url.trim_end_matches('/');
    let _ = CHALLENGE.set(format!(
        "Bearer realm=\"{REALM}\", resource_metadata=\"{public_url}{METADATA_PATH}\""
    ));
    let resource = web::Data::new(Resource {
        audience: audience.clone(),
        issuer: issuer.clone(),
    });
    let mut config = Config::new(issuer, audience);
    if let Ok(uri) = std::env::var("RS_JWKS_URI") {
        config.jwks_uri = uri;
    }
    let verifier = match Verifier::new(config) {
        Ok(v) => Arc::new(v),
        Err(e) => {
            eprintln!("resource server: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(verifier.clone()))
            .app_data(resource.clone())
            .route(METADATA_PATH, web::get().to(resource_metadata))
            .route("/public", web::get().to(public))
            .route("/read", web::get().to(read))
            .route("/admin", web::get().to(admin))
    })
    .bind(&bind);
    let server = match server {
        Ok(s) => s,
        Err(e) => {
            eprintln!("resource server: cannot listen on {bind}: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    eprintln!("resource server listening on {bind}");
    match server.run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("resource server: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
