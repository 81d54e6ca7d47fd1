//! The browser's part of an authorization code flow, for the bench driver: `GET /authorize` with
//! PKCE (S256), the login page and its form, the consent page and its form, the redirect with the
//! code, and the code exchange at `/token`, over one keep-alive connection with its cookies.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use crate::driver::{enc, post_token, Conn, Response};

/// The `state` every request carries; the redirect must give it back.
const STATE: &str = "bench-state";

/// A public client's sign-in, the same for every connection but the user.
pub struct Flow {
    pub client_id: String,
    pub redirect_uri: String,
    pub scope: String,
    pub password: String,
    /// `prompt=consent`: the consent page every time, though the user gave it before.
    pub prompt_consent: bool,
}

/// One connection's browser: its user and the cookies the server set.
pub struct Browser {
    pub user: String,
    cookies: Vec<(String, String)>,
}

/// How a step ended, beside a broken connection (the `Err` of the I/O result).
pub enum Step<T> {
    Done(T),
    /// An answer the flow does not expect; what it was.
    Refused(String),
}

/// A PKCE pair: the verifier and its S256 challenge.
pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

impl Pkce {
    pub fn fresh() -> Pkce {
        let verifier = URL_SAFE_NO_PAD.encode(gatehouse::secret::random_bytes::<32>());
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
        Pkce {
            challenge: URL_SAFE_NO_PAD.encode(digest.as_ref()),
            verifier,
        }
    }
}

impl Browser {
    pub fn new(user: String) -> Browser {
        Browser {
            user,
            cookies: Vec::new(),
        }
    }

    /// Forgets the sign-in session, keeping the device cookie: the same browser, signed out.
    pub fn sign_out(&mut self) {
        self.cookies.retain(|(name, _)| name.contains("device"));
    }

    fn cookie_header(&self) -> String {
        if self.cookies.is_empty() {
            return String::new();
        }
        let pairs: Vec<String> = self
            .cookies
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        format!("Cookie: {}\r\n", pairs.join("; "))
    }

    fn keep_cookies(&mut self, r: &Response) {
        for line in r.head.lines() {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            if !name.eq_ignore_ascii_case("set-cookie") {
                continue;
            }
            let first = value.trim().split(';').next().unwrap_or("");
            let Some((n, v)) = first.split_once('=') else {
                continue;
            };
            let removed = v.is_empty() || value.to_ascii_lowercase().contains("max-age=0");
            self.cookies.retain(|(name, _)| name != n);
            if !removed {
                self.cookies.push((n.to_owned(), v.to_owned()));
            }
        }
    }

    async fn get(&mut self, conn: &mut Conn, path: &str) -> std::io::Result<Response> {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{}\r\n",
            self.cookie_header()
        );
        let r = conn.send(request.as_bytes()).await?;
        self.keep_cookies(&r);
        Ok(r)
    }

    async fn post(&mut self, conn: &mut Conn, path: &str, body: &str) -> std::io::Result<Response> {
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{}Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            self.cookie_header(),
            body.len()
        );
        let r = conn.send(request.as_bytes()).await?;
        self.keep_cookies(&r);
        Ok(r)
    }

    /// From `GET /authorize` to the code: follows the server's redirects, signs in on the login
    /// page and approves on the consent page, whichever of them the server shows.
    pub async fn authorize(
        &mut self,
        conn: &mut Conn,
        flow: &Flow,
        pkce: &Pkce,
    ) -> std::io::Result<Step<String>> {
        // Built apart: the serializer must not live across an await (it is not Send).
        let query = {
            let mut query = form_urlencoded::Serializer::new(String::new());
            query
                .append_pair("client_id", &flow.client_id)
                .append_pair("redirect_uri", &flow.redirect_uri)
                .append_pair("response_type", "code")
                .append_pair("scope", &flow.scope)
                .append_pair("state", STATE)
                .append_pair("code_challenge", &pkce.challenge)
                .append_pair("code_challenge_method", "S256");
            if flow.prompt_consent {
                query.append_pair("prompt", "consent");
            }
            query.finish()
        };
        let mut r = self.get(conn, &format!("/authorize?{query}")).await?;
        let mut signed_in = false;
        // authorize → login page → login → consent page → consent → client, at most.
        for _ in 0..8 {
            match r.status {
                302 | 303 => {
                    let Some(location) = header(&r, "location") else {
                        return Ok(Step::Refused(format!("{} without a Location", r.status)));
                    };
                    if let Some(query) = location.strip_prefix(&flow.redirect_uri) {
                        return Ok(code_of(query));
                    }
                    let path = match location.find("://") {
                        // Our own server, named by its issuer: keep the path.
                        Some(i) => location[i + 3..]
                            .find('/')
                            .map(|j| location[i + 3 + j..].to_owned())
                            .unwrap_or_else(|| "/".to_owned()),
                        None => location,
                    };
                    r = self.get(conn, &path).await?;
                }
                200 => {
                    let page = String::from_utf8_lossy(&r.body).into_owned();
                    let (Some(interaction), Some(csrf)) =
                        (hidden(&page, "interaction"), hidden(&page, "csrf"))
                    else {
                        return Ok(Step::Refused("a page without a form".to_owned()));
                    };
                    let common = format!("interaction={}&csrf={}", enc(&interaction), enc(&csrf));
                    r = if page.contains("action=\"/login\"") {
                        if signed_in {
                            // The form again: the password was refused or the hashes are busy.
                            return Ok(Step::Refused(format!(
                                "the login form again ({})",
                                r.status
                            )));
                        }
                        signed_in = true;
                        let body = format!(
                            "{common}&username={}&password={}",
                            enc(&self.user),
                            enc(&flow.password)
                        );
                        self.post(conn, "/login", &body).await?
                    } else if page.contains("action=\"/consent\"") {
                        self.post(conn, "/consent", &format!("{common}&decision=approve"))
                            .await?
                    } else {
                        return Ok(Step::Refused(
                            "a page that is neither login nor consent".to_owned(),
                        ));
                    };
                }
                s => return Ok(Step::Refused(format!("{s} on the way to the code"))),
            }
        }
        Ok(Step::Refused("too many steps".to_owned()))
    }

    /// The code exchange at `/token` (a public client: no authentication, the PKCE verifier).
    pub async fn exchange(
        &mut self,
        conn: &mut Conn,
        flow: &Flow,
        code: &str,
        pkce: &Pkce,
    ) -> std::io::Result<Step<()>> {
        let body = format!(
            "grant_type=authorization_code&code={}&redirect_uri={}&code_verifier={}&client_id={}",
            enc(code),
            enc(&flow.redirect_uri),
            enc(&pkce.verifier),
            enc(&flow.client_id)
        );
        let r = conn.send(&post_token(&body, None)).await?;
        Ok(
            if r.status == 200 && r.body.windows(14).any(|w| w == b"\"access_token\"") {
                Step::Done(())
            } else {
                Step::Refused(format!(
                    "the code exchange answered {} {}",
                    r.status,
                    String::from_utf8_lossy(&r.body)
                ))
            },
        )
    }
}

/// The first value of header `name`.
fn header(r: &Response, name: &str) -> Option<String> {
    r.head.lines().find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
    })
}

/// The code of the redirect's query (`?code=..&state=..`), when its state is ours.
fn code_of(query: &str) -> Step<String> {
    let query = query.trim_start_matches('?');
    let mut code = None;
    let mut state = None;
    let mut error = None;
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        match &*k {
            "code" => code = Some(v.into_owned()),
            "state" => state = Some(v.into_owned()),
            "error" => error = Some(v.into_owned()),
            _ => {}
        }
    }
    match (code, state.as_deref(), error) {
        (Some(code), Some(STATE), _) => Step::Done(code),
        (_, _, Some(e)) => Step::Refused(format!("the client got error={e}")),
        _ => Step::Refused("the redirect had no code or another state".to_owned()),
    }
}

/// The value of the hidden field `name` of an HTML page (askama escapes a few characters).
fn hidden(page: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page.find(&marker)? + marker.len();
    let end = page[start..].find('"')? + start;
    Some(
        page[start..end]
            .replace("&#x2f;", "/")
            .replace("&#43;", "+")
            .replace("&#x3d;", "=")
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&amp;", "&"),
    )
}
