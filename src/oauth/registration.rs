//! Dynamic client registration's rules (RFC 7591 §2–3, RFC 7592 §2): reading the client metadata
//! a request sends, and the registration policy that caps what a dynamically registered client
//! gets. Plain functions, no I/O; the general client rules (redirect URI syntax, names, grant
//! types per client kind) stay in `registry::prepare_client`, which the service calls next.
//!
//! - Registered clients are public (`token_endpoint_auth_method: none`, PKCE) unless the policy
//!   allows confidential clients; a request naming no method gets `none`.
//! - Scopes and audiences are capped to the policy's lists; a request naming none gets them all.
//!   Scopes in the `gatehouse:` namespace (`gatehouse:admin`) and audiences under
//!   `<issuer>/admin` (`<issuer>/admin/api`) are never given to a registered client, whatever
//!   the policy says: they are for clients an administrator registers.
//! - Without an initial access token (open registration) only public clients with loopback http
//!   redirect URIs or private-use URI schemes (native apps, RFC 8252 §7.1, §7.3) register.
//! - `post_logout_redirect_uris` (OpenID Connect RP-Initiated Logout §3.1) follow the same rules
//!   as `redirect_uris`.
//! - `skip_consent` (a first-party client whose users are not asked for consent) is never set by
//!   registration: a request asking for it is refused, so the client learns it did not get it.

use serde_json::{Map, Value};

use super::errors::{ErrorCode, OAuthError};
use super::model::{Client, GrantType};

/// The `scope` prefix reserved for clients an administrator registers.
pub const RESERVED_SCOPE_PREFIX: &str = "gatehouse:";

/// How a registration request came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// With a valid initial access token (or, for RFC 7592, a registration access token).
    Token,
    /// Without a token, in open mode: public loopback or native clients only.
    Open,
}

/// What a dynamically registered client may get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Scopes a registered client may have; all of them when it names none.
    pub allowed_scopes: Vec<String>,
    /// Audiences (resource URIs) a registered client may have; all of them when it names none.
    pub allowed_audiences: Vec<String>,
    /// Confidential clients (`client_secret_basic`/`client_secret_post`, `client_credentials`).
    pub allow_confidential: bool,
    /// Most redirect URIs one client registers.
    pub max_redirect_uris: usize,
    /// The issuer: audiences under `<issuer>/admin` are reserved.
    pub issuer: String,
}

/// Client authentication at the token endpoint (RFC 7591 §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    None,
    ClientSecretBasic,
    ClientSecretPost,
}

impl AuthMethod {
    pub const ALL: [AuthMethod; 3] = [
        AuthMethod::None,
        AuthMethod::ClientSecretBasic,
        AuthMethod::ClientSecretPost,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::None => "none",
            AuthMethod::ClientSecretBasic => "client_secret_basic",
            AuthMethod::ClientSecretPost => "client_secret_post",
        }
    }

    pub fn parse(name: &str) -> Option<AuthMethod> {
        AuthMethod::ALL.into_iter().find(|m| m.as_str() == name)
    }

    pub fn is_confidential(self) -> bool {
        self != AuthMethod::None
    }
}

/// One thing wrong with the metadata, naming its field (RFC 7591 names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub field: &'static str,
    pub message: String,
}

fn problem(field: &'static str, message: impl Into<String>) -> Problem {
    Problem {
        field,
        message: message.into(),
    }
}

/// The RFC 7591 §3.2.2 error for these problems: `invalid_redirect_uri` when a redirect URI is at
/// fault, else `invalid_client_metadata`; the description names each field.
pub fn error_of<'a>(problems: impl IntoIterator<Item = (Option<&'a str>, &'a str)>) -> OAuthError {
    let mut code = ErrorCode::InvalidClientMetadata;
    let mut parts = Vec::new();
    for (field, message) in problems {
        if field == Some("redirect_uris") {
            code = ErrorCode::InvalidRedirectUri;
        }
        parts.push(match field {
            Some(f) => format!("{f}: {message}"),
            None => message.to_owned(),
        });
    }
    OAuthError::new(code, parts.join("; "))
}

impl From<Vec<Problem>> for OAuthError {
    fn from(problems: Vec<Problem>) -> OAuthError {
        error_of(problems.iter().map(|p| (Some(p.field), p.message.as_str())))
    }
}

/// The metadata of a registration request (RFC 7591 §2), as sent: `None` where a field is absent.
/// Metadata Gatehouse does not use (`client_uri`, `logo_uri`, `contacts`, …) is ignored (§2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    pub client_id: Option<String>,
    pub client_name: Option<String>,
    pub redirect_uris: Option<Vec<String>>,
    pub token_endpoint_auth_method: Option<String>,
    pub grant_types: Option<Vec<String>>,
    pub response_types: Option<Vec<String>>,
    /// Space-separated, as sent.
    pub scope: Option<String>,
    /// Gatehouse's extension: the resource servers (RFC 8707 `resource` values) its tokens are for.
    pub audiences: Option<Vec<String>>,
    /// Where RP-initiated logout may return to (OpenID Connect RP-Initiated Logout §3.1).
    pub post_logout_redirect_uris: Option<Vec<String>>,
}

/// Reads a JSON request body: an object whose known members have the right types. Every
/// problem is reported, naming its field.
pub fn parse(body: &[u8]) -> Result<Metadata, Vec<Problem>> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|_| vec![problem("body", "the request body is not valid JSON")])?;
    let Value::Object(obj) = value else {
        return Err(vec![problem(
            "body",
            "the request body must be a JSON object",
        )]);
    };
    let mut problems = Vec::new();
    let meta = Metadata {
        client_id: string(&obj, "client_id", &mut problems),
        client_name: string(&obj, "client_name", &mut problems),
        redirect_uris: strings(&obj, "redirect_uris", &mut problems),
        token_endpoint_auth_method: string(&obj, "token_endpoint_auth_method", &mut problems),
        grant_types: strings(&obj, "grant_types", &mut problems),
        response_types: strings(&obj, "response_types", &mut problems),
        scope: string(&obj, "scope", &mut problems),
        audiences: strings(&obj, "audiences", &mut problems),
        post_logout_redirect_uris: strings(&obj, "post_logout_redirect_uris", &mut problems),
    };
    // Skipping consent is for first-party clients an administrator registers: asking for it is
    // refused rather than ignored, so the client knows its users will be asked.
    if !matches!(
        obj.get("skip_consent"),
        None | Some(Value::Null) | Some(Value::Bool(false))
    ) {
        problems.push(problem(
            "skip_consent",
            "is set only by an administrator: users of a registered client are asked for consent",
        ));
    }
    if problems.is_empty() {
        Ok(meta)
    } else {
        Err(problems)
    }
}

fn string(obj: &Map<String, Value>, field: &'static str, out: &mut Vec<Problem>) -> Option<String> {
    match obj.get(field) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            out.push(problem(field, "must be a string"));
            None
        }
    }
}

fn strings(
    obj: &Map<String, Value>,
    field: &'static str,
    out: &mut Vec<Problem>,
) -> Option<Vec<String>> {
    match obj.get(field) {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => {
            let texts: Option<Vec<String>> = items
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect();
            if texts.is_none() {
                out.push(problem(field, "must be an array of strings"));
            }
            texts
        }
        Some(_) => {
            out.push(problem(field, "must be an array of strings"));
            None
        }
    }
}

/// What the policy grants: the client to register (checked next by `registry::prepare_client`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub auth_method: AuthMethod,
    pub grant_types: Vec<GrantType>,
    pub response_types: Vec<String>,
    pub scopes: Vec<String>,
    pub audiences: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
}

impl Decision {
    /// A public client may use private-use URI schemes (a native app); a confidential one not.
    pub fn native_redirects(&self) -> bool {
        !self.auth_method.is_confidential()
    }
}

/// Whether a scope is reserved for clients an administrator registers.
pub fn reserved_scope(scope: &str) -> bool {
    scope.starts_with(RESERVED_SCOPE_PREFIX)
}

/// Whether an audience is reserved: `<issuer>/admin` and everything under it (the admin API).
pub fn reserved_audience(audience: &str, issuer: &str) -> bool {
    audience
        .strip_prefix(issuer)
        .is_some_and(|rest| rest.starts_with("/admin"))
}

/// A private-use URI scheme redirect of a native app (RFC 8252 §7.1): a scheme in reverse
/// domain-name form (`com.example.app:/cb`, at least one dot), never http(s) nor a scheme with
/// another meaning; no authority (a single slash after the colon); no fragment or wildcard.
pub fn is_private_use_redirect(uri: &str) -> bool {
    let Ok(url) = url::Url::parse(uri) else {
        return false;
    };
    let scheme = url.scheme();
    let labels: Vec<&str> = scheme.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        })
        && url.host().is_none()
        && url.path().starts_with('/')
        && url.fragment().is_none()
        && !uri.contains('*')
        && !uri.contains('#')
}

/// An http redirect URI on a loopback address (RFC 8252 §7.3): 127.0.0.1, [::1] or localhost.
pub fn is_loopback_redirect(uri: &str) -> bool {
    let Ok(url) = url::Url::parse(uri) else {
        return false;
    };
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    };
    url.scheme() == "http" && loopback
}

/// Applies the policy to a registration (or an RFC 7592 update) request.
pub fn decide(meta: &Metadata, policy: &Policy, access: Access) -> Result<Decision, Vec<Problem>> {
    let mut problems = Vec::new();

    let name = match meta.client_name.as_deref().map(str::trim) {
        Some(n) if !n.is_empty() => n.to_owned(),
        _ => {
            problems.push(problem(
                "client_name",
                "is required: the consent page shows it to the user",
            ));
            String::new()
        }
    };

    let auth_method = match meta.token_endpoint_auth_method.as_deref() {
        None => AuthMethod::None,
        Some(m) => AuthMethod::parse(m).unwrap_or_else(|| {
            problems.push(problem(
                "token_endpoint_auth_method",
                format!(
                    "{m:?} is not supported: use none, client_secret_basic or client_secret_post"
                ),
            ));
            AuthMethod::None
        }),
    };
    if auth_method.is_confidential() && (access == Access::Open || !policy.allow_confidential) {
        problems.push(problem(
            "token_endpoint_auth_method",
            "only public clients (none, with PKCE) are registered here",
        ));
    }

    let grant_types = match &meta.grant_types {
        None => GrantType::DEFAULT.to_vec(),
        Some(names) => {
            let mut out = Vec::new();
            for n in names {
                match n.parse::<GrantType>() {
                    Ok(GrantType::Password) | Err(_) => problems.push(problem(
                        "grant_types",
                        format!(
                            "{n:?} is not available to registered clients: use authorization_code, \
                             refresh_token or (confidential clients) client_credentials"
                        ),
                    )),
                    Ok(g) if !out.contains(&g) => out.push(g),
                    Ok(_) => {}
                }
            }
            if out.is_empty() && names.is_empty() {
                problems.push(problem("grant_types", "must name at least one grant type"));
            }
            out
        }
    };
    let uses_code = grant_types.contains(&GrantType::AuthorizationCode);
    let response_types = match &meta.response_types {
        None if uses_code => vec!["code".to_owned()],
        None => Vec::new(),
        Some(types) => {
            for t in types {
                if t != "code" {
                    problems.push(problem(
                        "response_types",
                        format!("{t:?} is not supported: only code"),
                    ));
                }
            }
            let has_code = types.iter().any(|t| t == "code");
            if has_code != uses_code {
                problems.push(problem(
                    "response_types",
                    "code goes with the authorization_code grant type, and only with it",
                ));
            }
            if has_code {
                vec!["code".to_owned()]
            } else {
                Vec::new()
            }
        }
    };

    let redirect_uris = meta.redirect_uris.clone().unwrap_or_default();
    let post_logout_redirect_uris = meta.post_logout_redirect_uris.clone().unwrap_or_default();
    for (field, uris) in [
        ("redirect_uris", &redirect_uris),
        ("post_logout_redirect_uris", &post_logout_redirect_uris),
    ] {
        check_redirects(field, uris, policy, access, &mut problems);
    }

    let scopes = match &meta.scope {
        None => policy
            .allowed_scopes
            .iter()
            .filter(|s| !reserved_scope(s))
            .cloned()
            .collect(),
        Some(text) => match super::scope::parse(text) {
            Err(e) => {
                problems.push(problem("scope", e.description.into_owned()));
                Vec::new()
            }
            Ok(_) => {
                let asked: Vec<String> = text.split(' ').map(str::to_owned).collect();
                for s in &asked {
                    if reserved_scope(s) {
                        problems.push(problem(
                            "scope",
                            format!("{s:?} is reserved for clients an administrator registers"),
                        ));
                    } else if !policy.allowed_scopes.contains(s) {
                        problems.push(problem(
                            "scope",
                            format!("{s:?} is not among the scopes registered clients may have"),
                        ));
                    }
                }
                asked
            }
        },
    };

    let audiences = match &meta.audiences {
        None => policy
            .allowed_audiences
            .iter()
            .filter(|a| !reserved_audience(a, &policy.issuer))
            .cloned()
            .collect(),
        Some(asked) => {
            for a in asked {
                if reserved_audience(a, &policy.issuer) {
                    problems.push(problem(
                        "audiences",
                        format!("{a:?} is reserved for clients an administrator registers"),
                    ));
                } else if !policy.allowed_audiences.contains(a) {
                    problems.push(problem(
                        "audiences",
                        format!("{a:?} is not among the audiences registered clients may have"),
                    ));
                }
            }
            asked.clone()
        }
    };

    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Decision {
        name,
        redirect_uris,
        auth_method,
        grant_types,
        response_types,
        scopes,
        audiences,
        post_logout_redirect_uris,
    })
}

/// The policy's limits on one list of redirect URIs (`redirect_uris` or
/// `post_logout_redirect_uris`): how many, and in open mode loopback or private-use only.
fn check_redirects(
    field: &'static str,
    uris: &[String],
    policy: &Policy,
    access: Access,
    problems: &mut Vec<Problem>,
) {
    if uris.len() > policy.max_redirect_uris {
        problems.push(problem(
            field,
            format!("at most {} URIs", policy.max_redirect_uris),
        ));
    }
    if access == Access::Open {
        for uri in uris {
            if !is_loopback_redirect(uri) && !is_private_use_redirect(uri) {
                problems.push(problem(
                    field,
                    format!(
                        "{uri:?}: without an initial access token only loopback http redirect \
                         URIs (127.0.0.1, [::1], localhost) or private-use URI schemes \
                         (com.example.app:/callback) are accepted"
                    ),
                ));
            }
        }
    }
}

/// The client information response (RFC 7591 §3.2.1, RFC 7592 §3): the client's id, its
/// registered metadata, its registration access token and configuration URI, and, once, at
/// registration, a confidential client's secret (which never expires).
pub fn client_information(
    client: &Client,
    auth_method: &str,
    issuer: &str,
    registration_access_token: &str,
    secret: Option<&str>,
) -> Value {
    let response_types: Vec<&str> = if client.allows_grant(GrantType::AuthorizationCode) {
        vec!["code"]
    } else {
        Vec::new()
    };
    let mut body = serde_json::json!({
        "client_id": client.id,
        "client_id_issued_at": client.created_at,
        "client_name": client.name,
        "redirect_uris": client.redirect_uris,
        "grant_types": client.grant_types,
        "response_types": response_types,
        "token_endpoint_auth_method": auth_method,
        "audiences": client.audiences,
        "post_logout_redirect_uris": client.post_logout_redirect_uris,
        "registration_access_token": registration_access_token,
        "registration_client_uri": format!("{issuer}/register/{}", client.id),
    });
    if !client.scopes.is_empty() {
        body["scope"] = Value::String(client.scopes.join(" "));
    }
    if let Some(secret) = secret {
        body["client_secret"] = Value::String(secret.to_owned());
        body["client_secret_expires_at"] = Value::from(0);
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISSUER: &str = "https://auth.example";

    fn policy() -> Policy {
        Policy {
            allowed_scopes: vec!["mcp:tools".into(), "mcp:read".into()],
            allowed_audiences: vec!["https://mcp.example/".into()],
            allow_confidential: false,
            max_redirect_uris: 3,
            issuer: ISSUER.into(),
        }
    }

    fn meta(json: &str) -> Metadata {
        parse(json.as_bytes()).unwrap()
    }

    fn fields(problems: &[Problem]) -> Vec<&'static str> {
        problems.iter().map(|p| p.field).collect()
    }

    #[test]
    fn request_naming_nothing_gets_policy_defaults_as_a_public_pkce_client() {
        let d = decide(
            &meta(r#"{"client_name":"Agent","redirect_uris":["http://127.0.0.1:3000/cb"]}"#),
            &policy(),
            Access::Token,
        )
        .unwrap();
        assert_eq!(d.auth_method, AuthMethod::None);
        assert_eq!(d.grant_types, GrantType::DEFAULT.to_vec());
        assert_eq!(d.response_types, vec!["code"]);
        assert_eq!(d.scopes, policy().allowed_scopes);
        assert_eq!(d.audiences, policy().allowed_audiences);
    }

    #[test]
    fn scopes_and_audiences_beyond_the_policy_are_refused_naming_the_field() {
        let e = decide(
            &meta(
                r#"{"client_name":"A","redirect_uris":["https://a.example/cb"],
                    "scope":"mcp:tools admin:all","audiences":["https://other.example"]}"#,
            ),
            &policy(),
            Access::Token,
        )
        .unwrap_err();
        assert_eq!(fields(&e), vec!["scope", "audiences"]);
        let err = OAuthError::from(e);
        assert_eq!(err.code, ErrorCode::InvalidClientMetadata);
        assert!(err.description.contains("scope:"));
    }

    #[test]
    fn admin_scope_and_audience_never_go_to_registered_clients() {
        let mut p = policy();
        p.allowed_scopes.push("gatehouse:admin".into());
        p.allowed_audiences.push(format!("{ISSUER}/admin/api"));
        let d = decide(
            &meta(r#"{"client_name":"A","redirect_uris":["https://a.example/cb"]}"#),
            &p,
            Access::Token,
        )
        .unwrap();
        assert!(!d.scopes.iter().any(|s| s == "gatehouse:admin"));
        assert!(!d.audiences.iter().any(|a| a.contains("/admin")));
        let e = decide(
            &meta(&format!(
                r#"{{"client_name":"A","redirect_uris":["https://a.example/cb"],
                    "scope":"gatehouse:admin","audiences":["{ISSUER}/admin/api"]}}"#
            )),
            &p,
            Access::Token,
        )
        .unwrap_err();
        assert_eq!(fields(&e), vec!["scope", "audiences"]);
    }

    #[test]
    fn confidential_needs_the_policy_and_a_token() {
        let m = meta(
            r#"{"client_name":"S","token_endpoint_auth_method":"client_secret_basic",
                "grant_types":["client_credentials"]}"#,
        );
        let e = decide(&m, &policy(), Access::Token).unwrap_err();
        assert_eq!(fields(&e), vec!["token_endpoint_auth_method"]);
        let mut p = policy();
        p.allow_confidential = true;
        let d = decide(&m, &p, Access::Token).unwrap();
        assert!(d.response_types.is_empty());
        assert!(decide(&m, &p, Access::Open).is_err());
    }

    #[test]
    fn open_access_takes_only_loopback_or_private_use_redirects() {
        for ok in [
            "http://127.0.0.1:8976/cb",
            "http://[::1]/cb",
            "http://localhost:1234/cb",
            "com.example.app:/oauth2redirect",
        ] {
            let m = meta(&format!(
                r#"{{"client_name":"N","redirect_uris":["{ok}"]}}"#
            ));
            assert!(decide(&m, &policy(), Access::Open).is_ok(), "{ok}");
        }
        for bad in [
            "https://app.example/cb",
            "http://app.example/cb",
            "myapp:/cb",
            "com.example.app://host/cb",
            "javascript:alert(1)",
        ] {
            let m = meta(&format!(
                r#"{{"client_name":"N","redirect_uris":["{bad}"]}}"#
            ));
            let e = decide(&m, &policy(), Access::Open).unwrap_err();
            assert_eq!(fields(&e), vec!["redirect_uris"], "{bad}");
            assert_eq!(OAuthError::from(e).code, ErrorCode::InvalidRedirectUri);
        }
    }

    #[test]
    fn skip_consent_is_never_set_by_registration() {
        for asked in [r#"true"#, r#""yes""#, r#"1"#] {
            let body = format!(r#"{{"client_name":"A","skip_consent":{asked}}}"#);
            let e = parse(body.as_bytes()).unwrap_err();
            assert_eq!(fields(&e), vec!["skip_consent"], "{asked}");
            assert_eq!(OAuthError::from(e).code, ErrorCode::InvalidClientMetadata);
        }
        // Asking for what every registered client gets anyway is fine.
        assert!(parse(br#"{"client_name":"A","skip_consent":false}"#).is_ok());
    }

    #[test]
    fn post_logout_redirect_uris_follow_the_redirect_policy() {
        let m = meta(
            r#"{"client_name":"N","redirect_uris":["http://127.0.0.1:8976/cb"],
                "post_logout_redirect_uris":["http://127.0.0.1:8976/bye","com.example.app:/bye"]}"#,
        );
        let d = decide(&m, &policy(), Access::Open).unwrap();
        assert_eq!(
            d.post_logout_redirect_uris,
            vec!["http://127.0.0.1:8976/bye", "com.example.app:/bye"]
        );
        let m = meta(
            r#"{"client_name":"N","redirect_uris":["http://127.0.0.1:8976/cb"],
                "post_logout_redirect_uris":["https://app.example/bye"]}"#,
        );
        let e = decide(&m, &policy(), Access::Open).unwrap_err();
        assert_eq!(fields(&e), vec!["post_logout_redirect_uris"]);
        assert_eq!(OAuthError::from(e).code, ErrorCode::InvalidClientMetadata);
        assert!(decide(&m, &policy(), Access::Token).is_ok());
        let e = parse(br#"{"post_logout_redirect_uris":"https://a.example/bye"}"#).unwrap_err();
        assert_eq!(fields(&e), vec!["post_logout_redirect_uris"]);
    }

    #[test]
    fn malformed_metadata_names_the_field() {
        assert_eq!(fields(&parse(b"{").unwrap_err()), vec!["body"]);
        assert_eq!(fields(&parse(b"[1]").unwrap_err()), vec!["body"]);
        let e = parse(br#"{"redirect_uris":"https://a.example/cb","scope":3}"#).unwrap_err();
        assert_eq!(fields(&e), vec!["redirect_uris", "scope"]);
    }

    #[test]
    fn password_and_unknown_grant_types_are_refused() {
        let m = meta(
            r#"{"client_name":"A","redirect_uris":["https://a.example/cb"],
                "grant_types":["authorization_code","password","implicit"]}"#,
        );
        let e = decide(&m, &policy(), Access::Token).unwrap_err();
        assert_eq!(fields(&e), vec!["grant_types", "grant_types"]);
    }

    #[test]
    fn too_many_redirect_uris_are_refused() {
        let m = meta(
            r#"{"client_name":"A","redirect_uris":["https://a.example/1","https://a.example/2",
                "https://a.example/3","https://a.example/4"]}"#,
        );
        assert_eq!(
            fields(&decide(&m, &policy(), Access::Token).unwrap_err()),
            vec!["redirect_uris"]
        );
    }
}
