//! RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0 §2–3, checklist 63): which client
//! a logout request is about, where the browser may go afterwards, and whether to sign out at
//! once or ask first. Plain functions over what the service read; no I/O.
//!
//! - An `id_token_hint` must be an ID token Gatehouse issued (the service checks it with
//!   `id_token::check_hint`: our keys, the signature, our issuer; an expired one still counts).
//! - With both a hint and `client_id`, the hint's audience must be that client.
//! - A `post_logout_redirect_uri` needs a client (from `client_id` or the hint) and must be
//!   exactly one of its registered `post_logout_redirect_uris`. Every refusal is a page, never a
//!   redirect; `state` is added to the redirect only when given.
//! - Sign out at once only when the hint names this browser's signed-in session (its `sid` and
//!   `sub`); any other signed-in browser is asked first, so a third party cannot sign a user out
//!   with a link.

use url::Url;

use super::model::Client;
use super::params::Params;
use crate::secret::constant_time_eq;

/// A logout request as sent (the query of a GET, or a form POST). `ui_locales` and
/// `logout_hint` are accepted and ignored, as are parameters Gatehouse does not know.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndSessionRequest {
    pub id_token_hint: Option<String>,
    pub client_id: Option<String>,
    pub post_logout_redirect_uri: Option<String>,
    pub state: Option<String>,
}

impl EndSessionRequest {
    /// Reads the parameters (already parsed strictly: no duplicates, bounded sizes).
    pub fn read(params: &Params) -> EndSessionRequest {
        let get = |name| params.get(name).map(str::to_owned);
        EndSessionRequest {
            id_token_hint: get("id_token_hint"),
            client_id: get("client_id"),
            post_logout_redirect_uri: get("post_logout_redirect_uri"),
            state: get("state"),
        }
    }
}

/// What a verified `id_token_hint` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hint {
    /// Its audience: the client it was issued to.
    pub client_id: String,
    /// The user it was issued for.
    pub subject: String,
    /// The browser session that signed in (`sid`), when it has one.
    pub sid: Option<String>,
}

/// The `id_token_hint`, as the service found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HintCheck {
    Absent,
    /// Not an ID token of ours: unknown key, bad signature, another issuer, an access token,
    /// not a JWT.
    Invalid,
    Valid(Hint),
}

/// Why a logout request is refused: shown on a page, never sent to a redirect URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    InvalidHint,
    HintForAnotherClient,
    UnknownClient,
    RedirectWithoutClient,
    UnregisteredRedirect,
}

impl Refusal {
    /// A readable reason, for the error page.
    pub fn message(self) -> &'static str {
        match self {
            Refusal::InvalidHint => {
                "The sign-out request carries an id_token_hint that is not a valid ID token from \
                 this server."
            }
            Refusal::HintForAnotherClient => {
                "The sign-out request's id_token_hint was issued to another application than its \
                 client_id."
            }
            Refusal::UnknownClient => "The application asking to sign you out is not registered.",
            Refusal::RedirectWithoutClient => {
                "The sign-out request names a post_logout_redirect_uri but no application \
                 (client_id or id_token_hint)."
            }
            Refusal::UnregisteredRedirect => {
                "The sign-out request's post_logout_redirect_uri is not registered for this \
                 application."
            }
        }
    }
}

/// The client a request is about: its `client_id`, else the audience of a valid hint. The
/// service reads this client, then calls [`check`].
pub fn client_named<'a>(req: &'a EndSessionRequest, hint: &'a HintCheck) -> Option<&'a str> {
    match (&req.client_id, hint) {
        (Some(id), _) => Some(id),
        (None, HintCheck::Valid(h)) => Some(&h.client_id),
        (None, _) => None,
    }
}

/// A request that passed [`check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// The client (id and name), when the request named one.
    pub client: Option<(String, String)>,
    /// A registered post-logout redirect URI, exactly as registered.
    pub post_logout_redirect_uri: Option<String>,
    pub state: Option<String>,
    pub hint: Option<Hint>,
}

impl Checked {
    pub fn client_id(&self) -> Option<&str> {
        self.client.as_ref().map(|(id, _)| id.as_str())
    }

    pub fn client_name(&self) -> Option<&str> {
        self.client.as_ref().map(|(_, name)| name.as_str())
    }

    /// Where to send the browser when done: the registered URI, with `state` added when the
    /// request had one (RP-Initiated Logout §3).
    pub fn redirect(&self) -> Option<String> {
        let uri = self.post_logout_redirect_uri.as_ref()?;
        let Some(state) = &self.state else {
            return Some(uri.clone());
        };
        // Registered URIs parse (the registry checked them); keep the exact string otherwise.
        let mut url = Url::parse(uri).ok()?;
        url.query_pairs_mut().append_pair("state", state);
        Some(url.into())
    }

    /// The request to carry in the confirmation form: the client resolved, no hint.
    pub fn carried(&self) -> EndSessionRequest {
        EndSessionRequest {
            id_token_hint: None,
            client_id: self.client_id().map(str::to_owned),
            post_logout_redirect_uri: self.post_logout_redirect_uri.clone(),
            state: self.state.clone(),
        }
    }
}

/// Checks a request against its hint and the client [`client_named`] names (`None` when there
/// is none, or no such client).
pub fn check(
    req: &EndSessionRequest,
    hint: HintCheck,
    client: Option<&Client>,
) -> Result<Checked, Refusal> {
    let hint = match hint {
        HintCheck::Absent => None,
        HintCheck::Invalid => return Err(Refusal::InvalidHint),
        HintCheck::Valid(h) => Some(h),
    };
    if let (Some(h), Some(id)) = (&hint, &req.client_id) {
        if &h.client_id != id {
            return Err(Refusal::HintForAnotherClient);
        }
    }
    let named = req.client_id.is_some() || hint.is_some();
    let client = match client {
        Some(c) if named => Some(c),
        _ if named => return Err(Refusal::UnknownClient),
        _ => None,
    };
    if let Some(uri) = &req.post_logout_redirect_uri {
        let Some(client) = client else {
            return Err(Refusal::RedirectWithoutClient);
        };
        if !client.post_logout_redirect_uris.iter().any(|u| u == uri) {
            return Err(Refusal::UnregisteredRedirect);
        }
    }
    Ok(Checked {
        client: client.map(|c| (c.id.to_string(), c.name.clone())),
        post_logout_redirect_uri: req.post_logout_redirect_uri.clone(),
        state: req.state.clone(),
        hint,
    })
}

/// This browser's session, as the service found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Browser {
    /// No session, or one not (or not yet fully) signed in.
    NotSignedIn,
    /// A signed-in session: its user and its `sid` (`id_token::session_id` of its hash).
    SignedIn { user_id: String, sid: String },
}

/// What to do with a checked request in this browser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The hint names this very session: sign out now, no page.
    SignOut,
    /// Signed in, but nothing proves the request comes from this session's application: ask.
    Confirm,
    /// Nothing to end here.
    NothingToEnd,
}

pub fn next_step(checked: &Checked, browser: &Browser) -> Step {
    let Browser::SignedIn { user_id, sid } = browser else {
        return Step::NothingToEnd;
    };
    let same_session = checked.hint.as_ref().is_some_and(|h| {
        h.subject == *user_id && h.sid.as_deref().is_some_and(|s| constant_time_eq(s, sid))
    });
    if same_session {
        Step::SignOut
    } else {
        Step::Confirm
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::model::GrantType;

    const BYE: &str = "https://app.example/bye";

    fn client() -> Client {
        Client {
            id: "cl_app".into(),
            name: "App".into(),
            secret_hash: None,
            redirect_uris: vec!["https://app.example/cb".into()],
            grant_types: GrantType::DEFAULT.to_vec(),
            scopes: vec!["openid".into()],
            audiences: vec!["https://api.example".into()],
            allowed_origins: vec![],
            created_at: 0,
            require_mfa: false,
            previous_secret: None,
            skip_consent: false,
            post_logout_redirect_uris: vec![BYE.into(), "com.example.app:/bye?x=1".into()],
        }
    }

    fn hint(client_id: &str, sid: Option<&str>) -> HintCheck {
        HintCheck::Valid(Hint {
            client_id: client_id.into(),
            subject: "usr_1".into(),
            sid: sid.map(str::to_owned),
        })
    }

    fn request(pairs: &[(&str, &str)]) -> EndSessionRequest {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs {
            s.append_pair(k, v);
        }
        EndSessionRequest::read(&Params::parse(s.finish().as_bytes()).unwrap())
    }

    fn signed_in(sid: &str) -> Browser {
        Browser::SignedIn {
            user_id: "usr_1".into(),
            sid: sid.into(),
        }
    }

    #[test]
    fn registered_uri_redirects_with_state_only_when_given() {
        let c = client();
        let req = request(&[
            ("client_id", "cl_app"),
            ("post_logout_redirect_uri", BYE),
            ("state", "s 1&x"),
            ("ui_locales", "fr"),
            ("logout_hint", "alice"),
        ]);
        let checked = check(&req, HintCheck::Absent, Some(&c)).unwrap();
        assert_eq!(checked.client_id(), Some("cl_app"));
        assert_eq!(
            checked.redirect().as_deref(),
            Some("https://app.example/bye?state=s+1%26x")
        );
        let req = request(&[("client_id", "cl_app"), ("post_logout_redirect_uri", BYE)]);
        let checked = check(&req, HintCheck::Absent, Some(&c)).unwrap();
        assert_eq!(checked.redirect().as_deref(), Some(BYE), "no state added");
        // A registered URI with a query keeps it; state is appended.
        let req = request(&[
            ("post_logout_redirect_uri", "com.example.app:/bye?x=1"),
            ("state", "s"),
        ]);
        let checked = check(&req, hint("cl_app", None), Some(&c)).unwrap();
        assert_eq!(
            checked.redirect().as_deref(),
            Some("com.example.app:/bye?x=1&state=s")
        );
        // Without a redirect URI there is nowhere to go: state alone changes nothing.
        let req = request(&[("state", "s")]);
        let checked = check(&req, HintCheck::Absent, None).unwrap();
        assert_eq!(checked.redirect(), None);
        assert_eq!(checked.client, None);
    }

    #[test]
    fn post_logout_redirect_uri_must_be_registered_exactly() {
        let c = client();
        for uri in [
            "https://app.example/bye/",
            "https://app.example/bye?x=1",
            "https://APP.example/bye",
            "https://app.example:443/bye",
            "https://evil.example/bye",
            "https://app.example/cb",
        ] {
            let req = request(&[("client_id", "cl_app"), ("post_logout_redirect_uri", uri)]);
            assert_eq!(
                check(&req, HintCheck::Absent, Some(&c)),
                Err(Refusal::UnregisteredRedirect),
                "{uri}"
            );
        }
    }

    #[test]
    fn post_logout_redirect_uri_needs_a_client() {
        let req = request(&[("post_logout_redirect_uri", BYE)]);
        assert_eq!(
            check(&req, HintCheck::Absent, None),
            Err(Refusal::RedirectWithoutClient)
        );
    }

    #[test]
    fn id_token_hint_verified_and_bound_to_client_id() {
        let c = client();
        let req = request(&[("id_token_hint", "x"), ("post_logout_redirect_uri", BYE)]);
        assert_eq!(
            check(&req, HintCheck::Invalid, Some(&c)),
            Err(Refusal::InvalidHint)
        );
        let req = request(&[("id_token_hint", "x"), ("client_id", "cl_app")]);
        assert_eq!(
            check(&req, hint("cl_other", None), Some(&c)),
            Err(Refusal::HintForAnotherClient)
        );
        // The hint alone names the client.
        let req = request(&[("id_token_hint", "x"), ("post_logout_redirect_uri", BYE)]);
        let h = hint("cl_app", Some("sid"));
        assert_eq!(client_named(&req, &h), Some("cl_app"));
        assert!(check(&req, h, Some(&c)).is_ok());
    }

    #[test]
    fn unknown_client_is_refused() {
        let req = request(&[("client_id", "cl_gone")]);
        assert_eq!(
            check(&req, HintCheck::Absent, None),
            Err(Refusal::UnknownClient)
        );
        assert_eq!(
            check(&request(&[]), hint("cl_gone", None), None),
            Err(Refusal::UnknownClient)
        );
    }

    #[test]
    fn signs_out_at_once_only_for_the_hints_own_session() {
        let c = client();
        let req = request(&[("post_logout_redirect_uri", BYE)]);
        let checked = check(&req, hint("cl_app", Some("sid-1")), Some(&c)).unwrap();
        assert_eq!(next_step(&checked, &signed_in("sid-1")), Step::SignOut);
        assert_eq!(next_step(&checked, &signed_in("sid-2")), Step::Confirm);
        let other_user = Browser::SignedIn {
            user_id: "usr_2".into(),
            sid: "sid-1".into(),
        };
        assert_eq!(next_step(&checked, &other_user), Step::Confirm);
        assert_eq!(
            next_step(&checked, &Browser::NotSignedIn),
            Step::NothingToEnd
        );
        // No hint, or a hint without sid: always asked.
        let checked = check(
            &request(&[("client_id", "cl_app")]),
            HintCheck::Absent,
            Some(&c),
        );
        assert_eq!(
            next_step(&checked.unwrap(), &signed_in("sid-1")),
            Step::Confirm
        );
        let checked = check(&request(&[]), hint("cl_app", None), Some(&c)).unwrap();
        assert_eq!(next_step(&checked, &signed_in("sid-1")), Step::Confirm);
    }

    #[test]
    fn confirmation_carries_the_checked_request_without_the_hint() {
        let c = client();
        let req = request(&[
            ("id_token_hint", "x"),
            ("post_logout_redirect_uri", BYE),
            ("state", "s"),
        ]);
        let checked = check(&req, hint("cl_app", None), Some(&c)).unwrap();
        let carried = checked.carried();
        assert_eq!(carried.id_token_hint, None);
        assert_eq!(carried.client_id.as_deref(), Some("cl_app"));
        // Checked again on the form's POST, it gives the same answer.
        let again = check(&carried, HintCheck::Absent, Some(&c)).unwrap();
        assert_eq!(again.redirect(), checked.redirect());
    }
}
