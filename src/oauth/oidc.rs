//! OpenID Connect on top of the authorization code flow (OIDC Core 1.0): the request's OIDC
//! parameters, what a sign-in must do next (`prompt`, `max_age`, remembered consent), the claims
//! each scope releases, and what an ID token is minted from. Plain functions; `now` passed in.

use serde::{Deserialize, Serialize};

use super::errors::{ErrorCode, OAuthError};
use super::model::{Account, GrantState};
use super::params::Params;

/// The scope that makes a request an OpenID Connect one (an ID token is issued).
pub const OPENID: &str = "openid";
/// Releases `name` and `preferred_username`.
pub const PROFILE: &str = "profile";
/// Releases `email` and `email_verified`.
pub const EMAIL: &str = "email";
/// The OpenID Connect scopes Gatehouse understands (a client still needs them registered).
pub const SCOPES: [&str; 3] = [OPENID, PROFILE, EMAIL];

/// The claims Gatehouse can release, as the discovery document lists them.
pub const CLAIMS: [&str; 16] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "acr",
    "amr",
    "sid",
    "at_hash",
    "azp",
    "name",
    "preferred_username",
    "email",
    "email_verified",
];

/// The `prompt` values `/authorize` honours (OIDC Core §3.1.2.1).
pub const PROMPT_VALUES: [&str; 3] = ["none", "login", "consent"];

/// The longest `nonce` accepted, in bytes: it is stored with the grant and echoed in ID tokens.
pub const NONCE_MAX: usize = 255;
/// The longest `login_hint` kept (a login name; longer hints are ignored).
pub const LOGIN_HINT_MAX: usize = 255;
/// The longest `max_age` accepted, in seconds (a year): a larger one means nothing more.
pub const MAX_AGE_MAX: i64 = 366 * 24 * 3600;

/// `acr` of a sign-in with a password alone.
pub const ACR_PASSWORD: &str = "urn:gatehouse:acr:pwd";
/// `acr` of a sign-in with a password and a second factor.
pub const ACR_MFA: &str = "urn:gatehouse:acr:mfa";
/// The `acr` values Gatehouse asserts.
pub const ACR_VALUES: [&str; 2] = [ACR_PASSWORD, ACR_MFA];

/// The `prompt` of an authorization request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Prompt {
    /// Show no page: answer at once, or with `login_required` / `consent_required` /
    /// `interaction_required`.
    pub none: bool,
    /// Authenticate again, even with a live session.
    pub login: bool,
    /// Ask for consent again, even when it was given before.
    pub consent: bool,
}

impl Prompt {
    /// Reads `prompt`: space-separated known values, `none` alone.
    pub fn parse(value: Option<&str>) -> Result<Prompt, OAuthError> {
        let mut prompt = Prompt::default();
        let Some(value) = value else {
            return Ok(prompt);
        };
        for word in value.split(' ').filter(|w| !w.is_empty()) {
            match word {
                "none" => prompt.none = true,
                "login" => prompt.login = true,
                "consent" => prompt.consent = true,
                _ => {
                    return Err(OAuthError::invalid_request(
                        "prompt has a value Gatehouse does not support (none, login, consent)",
                    ))
                }
            }
        }
        if prompt.none && (prompt.login || prompt.consent) {
            return Err(OAuthError::invalid_request(
                "prompt=none cannot be combined with another prompt value",
            ));
        }
        Ok(prompt)
    }

    /// As stored with the pending request.
    pub fn as_stored(self) -> String {
        let mut words = Vec::new();
        if self.none {
            words.push("none");
        }
        if self.login {
            words.push("login");
        }
        if self.consent {
            words.push("consent");
        }
        words.join(" ")
    }

    /// From [`Prompt::as_stored`] (unknown words, which cannot be stored, are ignored).
    pub fn from_stored(stored: &str) -> Prompt {
        Prompt {
            none: stored.split(' ').any(|w| w == "none"),
            login: stored.split(' ').any(|w| w == "login"),
            consent: stored.split(' ').any(|w| w == "consent"),
        }
    }
}

/// The OpenID Connect parameters of an authorization request, checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OidcRequest {
    pub nonce: Option<String>,
    pub prompt: Prompt,
    /// Seconds: a sign-in older than this must be done again.
    pub max_age: Option<i64>,
    /// A login name to fill in on the login page.
    pub login_hint: Option<String>,
}

/// Reads and checks `nonce`, `prompt`, `max_age`, `login_hint`, and refuses what Gatehouse does
/// not support (`claims`, `request`, `request_uri`, `registration`) with its OpenID Connect error
/// (OIDC Core §3.1.2.6). These apply to every authorization request, OpenID Connect or not;
/// the nonce is kept only when `openid` is asked.
pub fn read_request(params: &Params, openid: bool) -> Result<OidcRequest, OAuthError> {
    if params.contains("request") {
        return Err(OAuthError::new(
            ErrorCode::RequestNotSupported,
            "request objects are not supported",
        ));
    }
    if params.contains("request_uri") {
        return Err(OAuthError::new(
            ErrorCode::RequestUriNotSupported,
            "request_uri is not supported",
        ));
    }
    if params.contains("registration") {
        return Err(OAuthError::new(
            ErrorCode::RegistrationNotSupported,
            "the registration parameter is not supported; register the client first",
        ));
    }
    if params.contains("claims") {
        return Err(OAuthError::invalid_request(
            "the claims parameter is not supported; ask for scopes instead",
        ));
    }
    let nonce = match params.get("nonce") {
        Some(n) if n.len() > NONCE_MAX => {
            return Err(OAuthError::invalid_request(
                "nonce is longer than 255 characters",
            ))
        }
        Some(n) => Some(n.to_owned()),
        None => None,
    };
    let prompt = Prompt::parse(params.get("prompt"))?;
    let max_age = match params.get("max_age") {
        None => None,
        Some(text) => Some(parse_max_age(text)?),
    };
    let login_hint = params
        .get("login_hint")
        .filter(|h| !h.is_empty() && h.len() <= LOGIN_HINT_MAX)
        .map(str::to_owned);
    Ok(OidcRequest {
        nonce: nonce.filter(|_| openid),
        prompt,
        max_age,
        login_hint,
    })
}

fn parse_max_age(text: &str) -> Result<i64, OAuthError> {
    let not_a_number = || OAuthError::invalid_request("max_age must be a number of seconds");
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(not_a_number());
    }
    // Digits only: a value too large for i64 means "any age", like MAX_AGE_MAX.
    Ok(text.parse::<i64>().unwrap_or(MAX_AGE_MAX).min(MAX_AGE_MAX))
}

/// Whether a scope string asks for OpenID Connect.
pub fn is_openid(scope: &str) -> bool {
    scope.split(' ').any(|s| s == OPENID)
}

/// The browser's sign-in, as far as the next step is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignedIn {
    /// Nobody (or a half-finished sign-in).
    No,
    /// Signed in, but without the second factor this client needs.
    NeedsSecondFactor,
    /// Signed in with every factor needed, at `auth_time`.
    Yes { auth_time: i64 },
}

/// What an authorization request does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// The login page (or its second step).
    Login,
    /// The consent page.
    Consent,
    /// Issue the code now: signed in recently enough, consent given or not needed.
    Issue,
    /// Answer this error at the redirect URI (only with `prompt=none`).
    Refuse(OAuthError),
}

/// What a pending request needs of the sign-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    pub prompt: Prompt,
    pub max_age: Option<i64>,
    /// When the request was made: `prompt=login` needs a sign-in from then on.
    pub requested_at: i64,
}

impl Freshness {
    /// Whether a sign-in at `auth_time` is recent enough at `now`.
    pub fn satisfied_by(&self, auth_time: i64, now: i64) -> bool {
        if self.prompt.login && auth_time < self.requested_at {
            return false;
        }
        match self.max_age {
            Some(max_age) => now.saturating_sub(auth_time) <= max_age,
            None => true,
        }
    }
}

/// The next step of a request (OIDC Core §3.1.2.3 – §3.1.2.4): sign in when nobody is, or the
/// sign-in is older than `max_age` or than a `prompt=login` request; then consent unless the
/// user gave it for these scopes before (and no `prompt=consent`) or the client skips it; then
/// the code. With `prompt=none` no page is ever shown: the step that would need one becomes
/// its error.
pub fn next_step(
    freshness: &Freshness,
    signed_in: SignedIn,
    consent_given: bool,
    skip_consent: bool,
    now: i64,
) -> Next {
    let none = freshness.prompt.none;
    match signed_in {
        SignedIn::No if none => {
            return Next::Refuse(OAuthError::new(
                ErrorCode::LoginRequired,
                "the user is not signed in",
            ))
        }
        SignedIn::NeedsSecondFactor if none => {
            return Next::Refuse(OAuthError::new(
                ErrorCode::InteractionRequired,
                "this application needs a second factor",
            ))
        }
        SignedIn::No | SignedIn::NeedsSecondFactor => return Next::Login,
        SignedIn::Yes { auth_time } if !freshness.satisfied_by(auth_time, now) => {
            if none {
                return Next::Refuse(OAuthError::new(
                    ErrorCode::LoginRequired,
                    "the sign-in is older than max_age allows",
                ));
            }
            return Next::Login;
        }
        SignedIn::Yes { .. } => {}
    }
    let ask = freshness.prompt.consent || !(consent_given || skip_consent);
    match (ask, none) {
        (false, _) => Next::Issue,
        (true, true) => Next::Refuse(OAuthError::new(
            ErrorCode::ConsentRequired,
            "the user has not allowed this application these scopes",
        )),
        (true, false) => Next::Consent,
    }
}

/// What a user allowed a client before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consented {
    pub scopes: Vec<String>,
    pub audiences: Vec<String>,
}

impl Consented {
    /// Whether it covers `scope` (space-separated) for `audience`: a user is asked again only
    /// for what is new.
    pub fn covers(&self, scope: &str, audience: &str) -> bool {
        self.audiences.iter().any(|a| a == audience)
            && scope
                .split(' ')
                .filter(|s| !s.is_empty())
                .all(|s| self.scopes.iter().any(|c| c == s))
    }

    /// This consent and `scope` for `audience` together (what is remembered after approval).
    pub fn with(&self, scope: &str, audience: &str) -> Consented {
        let mut scopes = self.scopes.clone();
        for s in scope.split(' ').filter(|s| !s.is_empty()) {
            if !scopes.iter().any(|c| c == s) {
                scopes.push(s.to_owned());
            }
        }
        let mut audiences = self.audiences.clone();
        if !audiences.iter().any(|a| a == audience) {
            audiences.push(audience.to_owned());
        }
        Consented { scopes, audiences }
    }
}

/// The profile claims a scope releases (OIDC Core §5.4): `name` and `preferred_username` with
/// `profile`, `email` and `email_verified` with `email` (when the user has an address).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileClaims {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
}

/// [`ProfileClaims`] of `user` for `scope`.
pub fn profile_claims(scope: &str, user: &Account) -> ProfileClaims {
    let has = |s: &str| scope.split(' ').any(|t| t == s);
    let mut claims = ProfileClaims::default();
    if has(PROFILE) {
        claims.name = user.profile.name.clone();
        claims.preferred_username = Some(user.username.clone());
    }
    if has(EMAIL) {
        if let Some(email) = &user.profile.email {
            claims.email = Some(email.clone());
            claims.email_verified = Some(user.profile.email_verified);
        }
    }
    claims
}

/// The authentication context class of a sign-in's methods.
pub fn acr(amr: &[String]) -> &'static str {
    if crate::mfa::amr::has_second_factor(amr) {
        ACR_MFA
    } else {
        ACR_PASSWORD
    }
}

/// What the service mints an ID token from, beside the access token of the same grant
/// (OIDC Core §3.1.3.3, §12.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdTokenFacts {
    pub auth_time: Option<i64>,
    /// Echoed only in the ID token of the code exchange, never after a refresh.
    pub nonce: Option<String>,
    /// The approving browser session's hash, from which `sid` is derived.
    pub session_hash: Option<String>,
    pub claims: ProfileClaims,
}

/// The ID token a code exchange (`first`) or a refresh of `scope` comes with: one when
/// `openid` was granted to a user.
pub fn id_token_facts(
    scope: &str,
    user: &Account,
    grant: &GrantState,
    first: bool,
) -> Option<Box<IdTokenFacts>> {
    is_openid(scope).then(|| {
        Box::new(IdTokenFacts {
            auth_time: grant.auth_time,
            nonce: grant.nonce.clone().filter(|_| first),
            session_hash: grant.session_hash.clone(),
            claims: profile_claims(scope, user),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::model::Profile;

    fn params(query: &str) -> Params {
        Params::parse(query.as_bytes()).unwrap()
    }

    fn fresh(prompt: &str, max_age: Option<i64>) -> Freshness {
        Freshness {
            prompt: Prompt::parse(Some(prompt)).unwrap(),
            max_age,
            requested_at: 1_000,
        }
    }

    fn alice() -> Account {
        Account {
            id: "usr_1".into(),
            roles: vec![],
            active: true,
            username: "alice".into(),
            profile: Profile {
                name: Some("Alice Liddell".into()),
                email: Some("alice@example.com".into()),
                email_verified: true,
            },
        }
    }

    #[test]
    fn prompt_none_is_alone_and_unknown_values_are_refused() {
        assert!(Prompt::parse(Some("login consent")).is_ok());
        for bad in ["none login", "consent none", "select_account", "loginx"] {
            let e = Prompt::parse(Some(bad)).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidRequest, "{bad}");
        }
        let p = Prompt::parse(Some("consent login")).unwrap();
        assert_eq!(Prompt::from_stored(&p.as_stored()), p);
    }

    #[test]
    fn oidc_request_bounds_nonce_and_reads_max_age() {
        let ok = read_request(&params("nonce=n-1&max_age=300&login_hint=alice"), true).unwrap();
        assert_eq!(ok.nonce.as_deref(), Some("n-1"));
        assert_eq!(ok.max_age, Some(300));
        assert_eq!(ok.login_hint.as_deref(), Some("alice"));
        assert_eq!(read_request(&params("nonce=n"), false).unwrap().nonce, None);
        let long = format!("nonce={}", "a".repeat(NONCE_MAX + 1));
        assert_eq!(
            read_request(&params(&long), true).unwrap_err().code,
            ErrorCode::InvalidRequest
        );
        // An empty value is an omitted parameter (RFC 6749 §3.1).
        assert_eq!(
            read_request(&params("max_age="), true).unwrap().max_age,
            None
        );
        for bad in ["max_age=soon", "max_age=-1", "max_age=+5", "max_age=1.5"] {
            assert_eq!(
                read_request(&params(bad), true).unwrap_err().code,
                ErrorCode::InvalidRequest,
                "{bad}"
            );
        }
        assert_eq!(
            read_request(&params("max_age=99999999999999999999999"), true)
                .unwrap()
                .max_age,
            Some(MAX_AGE_MAX)
        );
    }

    #[test]
    fn oidc_request_refuses_claims_and_request_objects_with_their_codes() {
        let code = |q| read_request(&params(q), true).unwrap_err().code;
        assert_eq!(code("claims=%7B%7D"), ErrorCode::InvalidRequest);
        assert_eq!(code("request=x"), ErrorCode::RequestNotSupported);
        assert_eq!(code("request_uri=x"), ErrorCode::RequestUriNotSupported);
        assert_eq!(code("registration=x"), ErrorCode::RegistrationNotSupported);
    }

    #[test]
    fn prompt_none_never_shows_a_page() {
        let none = fresh("none", None);
        let code = |next: Next| match next {
            Next::Refuse(e) => e.code,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            code(next_step(&none, SignedIn::No, true, false, 1_000)),
            ErrorCode::LoginRequired
        );
        assert_eq!(
            code(next_step(
                &none,
                SignedIn::NeedsSecondFactor,
                true,
                false,
                1_000
            )),
            ErrorCode::InteractionRequired
        );
        let signed_in = SignedIn::Yes { auth_time: 900 };
        assert_eq!(
            code(next_step(&none, signed_in, false, false, 1_000)),
            ErrorCode::ConsentRequired
        );
        assert_eq!(next_step(&none, signed_in, true, false, 1_000), Next::Issue);
        assert_eq!(next_step(&none, signed_in, false, true, 1_000), Next::Issue);
        let old = Freshness {
            max_age: Some(60),
            ..none
        };
        assert_eq!(
            code(next_step(&old, signed_in, true, false, 1_000)),
            ErrorCode::LoginRequired
        );
    }

    #[test]
    fn prompt_login_and_max_age_need_a_new_sign_in() {
        let signed_in_before = SignedIn::Yes { auth_time: 900 };
        let login = fresh("login", None);
        assert_eq!(
            next_step(&login, signed_in_before, true, false, 1_000),
            Next::Login
        );
        let after = SignedIn::Yes { auth_time: 1_000 };
        assert_eq!(next_step(&login, after, true, false, 1_010), Next::Issue);
        let max_age = fresh("", Some(50));
        assert_eq!(
            next_step(&max_age, signed_in_before, true, false, 1_000),
            Next::Login
        );
        assert_eq!(
            next_step(&max_age, signed_in_before, true, false, 950),
            Next::Issue
        );
        assert_eq!(
            next_step(&fresh("", Some(0)), signed_in_before, true, false, 901),
            Next::Login
        );
    }

    #[test]
    fn consent_is_asked_for_new_scopes_or_with_prompt_consent() {
        let signed_in = SignedIn::Yes { auth_time: 900 };
        let plain = fresh("", None);
        assert_eq!(
            next_step(&plain, signed_in, false, false, 1_000),
            Next::Consent
        );
        assert_eq!(
            next_step(&plain, signed_in, true, false, 1_000),
            Next::Issue
        );
        assert_eq!(
            next_step(&plain, signed_in, false, true, 1_000),
            Next::Issue
        );
        let again = fresh("consent", None);
        assert_eq!(
            next_step(&again, signed_in, true, true, 1_000),
            Next::Consent
        );
        let given = Consented {
            scopes: vec!["openid".into(), "profile".into()],
            audiences: vec!["https://api.example".into()],
        };
        assert!(given.covers("openid profile", "https://api.example"));
        assert!(!given.covers("openid email", "https://api.example"));
        assert!(!given.covers("openid", "https://other.example"));
        let more = given.with("openid email", "https://api.example");
        assert!(more.covers("openid profile email", "https://api.example"));
        assert_eq!(more.scopes.len(), 3);
    }

    #[test]
    fn profile_and_email_claims_only_with_their_scopes() {
        let user = alice();
        assert_eq!(profile_claims("openid", &user), ProfileClaims::default());
        let profile = profile_claims("openid profile", &user);
        assert_eq!(profile.name.as_deref(), Some("Alice Liddell"));
        assert_eq!(profile.preferred_username.as_deref(), Some("alice"));
        assert_eq!(profile.email, None);
        let email = profile_claims("openid email", &user);
        assert_eq!(email.email.as_deref(), Some("alice@example.com"));
        assert_eq!(email.email_verified, Some(true));
        assert_eq!(email.name, None);
    }

    #[test]
    fn id_token_only_with_openid_and_nonce_only_first() {
        let grant = GrantState {
            expires_at: 0,
            revoked_at: None,
            amr: vec!["pwd".into()],
            auth_time: Some(5),
            nonce: Some("n".into()),
            session_hash: Some("s".into()),
        };
        assert!(id_token_facts("api:read", &alice(), &grant, true).is_none());
        let first = id_token_facts("openid", &alice(), &grant, true).unwrap();
        assert_eq!(first.nonce.as_deref(), Some("n"));
        assert_eq!(first.auth_time, Some(5));
        let refreshed = id_token_facts("openid", &alice(), &grant, false).unwrap();
        assert_eq!(refreshed.nonce, None);
        assert_eq!(acr(&["pwd".into()]), ACR_PASSWORD);
        assert_eq!(acr(&["pwd".into(), "otp".into(), "mfa".into()]), ACR_MFA);
    }
}
