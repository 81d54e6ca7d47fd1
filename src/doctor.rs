//! `gatehouse doctor`: the configuration and the database audited against RFC 9700 and the
//! security checklist. Every check is a plain function of the settings and of what was read
//! from the database and the key directory ([`Observed`], read by `flows::doctor::observe`):
//! no I/O here, `now` passed in.

use std::path::PathBuf;

use serde::Serialize;

use crate::config::{RegistrationMode, Settings};
use crate::keys::KeyInfo;
use crate::oauth::model::{Client, GrantType};

/// How bad a finding is; `--fail-on` compares against it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    /// Every severity, the worst last.
    pub const ALL: [Severity; 5] = [
        Severity::Info,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    pub fn parse(name: &str) -> Option<Severity> {
        Severity::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// One thing to fix (or to know), with the rule it comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub severity: Severity,
    /// The check that found it (see [`CHECKS`]).
    pub check: &'static str,
    /// The security checklist number(s) or RFC section the check enforces.
    pub rule: &'static str,
    pub message: String,
    pub fix: String,
}

/// A check that found nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Passed {
    pub check: &'static str,
    pub rule: &'static str,
    pub summary: &'static str,
}

/// What doctor found: findings the worst first, then the checks that passed.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub findings: Vec<Finding>,
    pub passed: Vec<Passed>,
}

impl Report {
    /// Findings at or above `severity` (what makes `--fail-on` fail).
    pub fn at_or_above(&self, severity: Severity) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity >= severity)
            .count()
    }
}

/// Where the master key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MasterKeySource {
    /// `GATEHOUSE_MASTER_KEY`.
    Environment,
    /// `keys/master.key`, with its Unix permission bits when they could be read.
    File { path: PathBuf, mode: Option<u32> },
    /// Neither: `serve` would create the file.
    Missing { path: PathBuf },
}

/// An administrator (role `admin`) and whether they have an active second factor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin {
    pub username: String,
    pub has_totp: bool,
}

/// What doctor read from the database and the key directory.
pub struct Observed {
    pub now: i64,
    pub clients: Vec<Client>,
    pub admins: Vec<Admin>,
    pub keys: Vec<KeyInfo>,
    pub master_key: MasterKeySource,
}

/// A finding before the check's name and rule are attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub severity: Severity,
    pub message: String,
    pub fix: String,
}

fn issue(severity: Severity, message: impl Into<String>, fix: impl Into<String>) -> Issue {
    Issue {
        severity,
        message: message.into(),
        fix: fix.into(),
    }
}

/// One check: its name, the rule it enforces, what passing means, and the check itself.
pub struct Check {
    pub name: &'static str,
    pub rule: &'static str,
    pub passes: &'static str,
    pub run: fn(&Settings, &Observed) -> Vec<Issue>,
}

/// Every check doctor runs, in the order it reports them.
pub const CHECKS: &[Check] = &[
    Check {
        name: "issuer_https",
        rule: "checklist 35; RFC 8414 §2; RFC 9700 §2.6",
        passes: "the issuer is https",
        run: issuer_https,
    },
    Check {
        name: "pkce_s256",
        rule: "checklist 4, 5; RFC 9700 §2.1.1",
        passes: "PKCE with S256 is required of every client (Gatehouse enforces it)",
        run: pkce_s256,
    },
    Check {
        name: "no_public_password_client",
        rule: "checklist 27, 28; RFC 9700 §2.4",
        passes: "no public client has the password grant",
        run: no_public_password_client,
    },
    Check {
        name: "redirect_uris_https_or_loopback",
        rule: "checklist 55; RFC 9700 §2.6",
        passes: "every redirect URI is https, loopback http or a private-use scheme",
        run: redirect_uris_https_or_loopback,
    },
    Check {
        name: "signing_key_rotation",
        rule: "checklist 33; keys.rotate_every_secs",
        passes: "signing keys rotate on a schedule and the signing key is within it",
        run: signing_key_rotation,
    },
    Check {
        name: "master_key_protected",
        rule: "checklist 53 (secrets at rest under the master key)",
        passes: "the master key comes from the environment or a file only its owner reads",
        run: master_key_protected,
    },
    Check {
        name: "token_lifetimes",
        rule: "checklist 11, 20; RFC 6819 §5.1.5.3; RFC 9700 §4.14.2",
        passes: "access tokens, codes and refresh tokens are short-lived",
        run: token_lifetimes,
    },
    Check {
        name: "cors_origins_https",
        rule: "checklist 45; RFC 9700 §2.6",
        passes: "every CORS origin is https or loopback",
        run: cors_origins_https,
    },
    Check {
        name: "audit_retention",
        rule: "checklist 64 (changes audited)",
        passes: "audit events are kept long enough to investigate",
        run: audit_retention,
    },
    Check {
        name: "refresh_retry_window",
        rule: "checklist 16; RFC 9700 §4.14.2",
        passes: "a rotated refresh token is refused at once (reuse detection is immediate)",
        run: refresh_retry_window,
    },
    Check {
        name: "trusted_proxies_narrow",
        rule: "checklist 26, 49 (per-address limits)",
        passes: "X-Forwarded-For is believed only from named proxies",
        run: trusted_proxies_narrow,
    },
    Check {
        name: "admins_have_mfa",
        rule: "checklist 64",
        passes: "every administrator has a second factor",
        run: admins_have_mfa,
    },
    Check {
        name: "registration_not_open",
        rule: "checklist 61; RFC 7591 §3",
        passes: "dynamic client registration is off",
        run: registration_not_open,
    },
    Check {
        name: "admin_scope_confidential_only",
        rule: "checklist 64",
        passes: "no public client may ask for gatehouse:admin",
        run: admin_scope_confidential_only,
    },
];

/// Runs every check.
pub fn run(settings: &Settings, observed: &Observed) -> Report {
    let mut findings = Vec::new();
    let mut passed = Vec::new();
    for check in CHECKS {
        let issues = (check.run)(settings, observed);
        if issues.is_empty() {
            passed.push(Passed {
                check: check.name,
                rule: check.rule,
                summary: check.passes,
            });
        }
        findings.extend(issues.into_iter().map(|i| Finding {
            severity: i.severity,
            check: check.name,
            rule: check.rule,
            message: i.message,
            fix: i.fix,
        }));
    }
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    Report { findings, passed }
}

fn host_is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    }
}

fn kind(c: &Client) -> &'static str {
    if c.is_confidential() {
        "confidential"
    } else {
        "public"
    }
}

pub fn issuer_https(settings: &Settings, _: &Observed) -> Vec<Issue> {
    let issuer = &settings.server.issuer;
    match url::Url::parse(issuer) {
        Ok(u) if u.scheme() == "https" => vec![],
        Ok(u) if u.scheme() == "http" && host_is_loopback(&u) => vec![issue(
            Severity::Low,
            format!("the issuer {issuer} is http on a loopback address: fine for development only"),
            "set server.issuer (GATEHOUSE_ISSUER) to the https URL clients reach in production",
        )],
        _ => vec![issue(
            Severity::Critical,
            format!(
                "the issuer {issuer} is not https: codes and tokens cross the network in clear"
            ),
            "serve Gatehouse behind TLS and set server.issuer to its https URL",
        )],
    }
}

/// PKCE S256 is not a setting: the authorization endpoint refuses a request without an S256
/// challenge from every client (`oauth::pkce`), and the metadata lists only S256.
pub fn pkce_s256(_: &Settings, _: &Observed) -> Vec<Issue> {
    vec![]
}

pub fn no_public_password_client(_: &Settings, observed: &Observed) -> Vec<Issue> {
    observed
        .clients
        .iter()
        .filter(|c| c.grant_types.contains(&GrantType::Password))
        .map(|c| {
            if c.is_confidential() {
                issue(
                    Severity::Low,
                    format!(
                        "client {} ({}) uses the password grant, which RFC 9700 says not to use",
                        c.id, c.name
                    ),
                    format!(
                        "move it to authorization_code with PKCE: gatehouse client update {} \
                         --grant-type authorization_code --grant-type refresh_token",
                        c.id
                    ),
                )
            } else {
                issue(
                    Severity::High,
                    format!(
                        "public client {} ({}) has the password grant: anyone holding its \
                         client_id can try passwords",
                        c.id, c.name
                    ),
                    format!(
                        "gatehouse client update {} --grant-type authorization_code \
                         --grant-type refresh_token",
                        c.id
                    ),
                )
            }
        })
        .collect()
}

pub fn redirect_uris_https_or_loopback(_: &Settings, observed: &Observed) -> Vec<Issue> {
    let mut out = Vec::new();
    for c in &observed.clients {
        for uri in &c.redirect_uris {
            let Ok(url) = url::Url::parse(uri) else {
                out.push(issue(
                    Severity::High,
                    format!(
                        "client {} has a redirect URI that is not a URL: {uri}",
                        c.id
                    ),
                    format!(
                        "gatehouse client update {} --redirect-uri <https URI>",
                        c.id
                    ),
                ));
                continue;
            };
            let plain_http = url.scheme() == "http" && !host_is_loopback(&url);
            if plain_http || uri.contains('*') || url.fragment().is_some() {
                out.push(issue(
                    Severity::High,
                    format!(
                        "client {} ({}) redirects to {uri}: not https, loopback or exact",
                        c.id, c.name
                    ),
                    format!(
                        "gatehouse client update {} --redirect-uri https://… (http only on \
                         127.0.0.1, [::1] or localhost)",
                        c.id
                    ),
                ));
            }
        }
    }
    out
}

pub fn signing_key_rotation(settings: &Settings, observed: &Observed) -> Vec<Issue> {
    let every = settings.keys.rotate_every_secs;
    let mut out = Vec::new();
    let signing = observed.keys.iter().find(|k| k.state == "signing");
    if every <= 0 {
        let age = signing.map_or(String::new(), |k| {
            format!(
                " (the signing key is {} d old)",
                (observed.now - k.activate_at).max(0) / 86_400
            )
        });
        out.push(issue(
            Severity::Low,
            format!("signing keys never rotate on their own (keys.rotate_every_secs = 0){age}"),
            "set keys.rotate_every_secs, e.g. 7776000 (90 days), or run gatehouse keys rotate \
             on a schedule",
        ));
        return out;
    }
    if let Some(k) = signing {
        // The schedule rotates once the key is `every` old; the next one signs a publish
        // delay later. A day beyond that, the schedule is not running.
        let overdue = k.activate_at + every + settings.keys.publish_delay_secs + 86_400;
        if observed.now > overdue {
            out.push(issue(
                Severity::Medium,
                format!(
                    "the signing key {} has signed for {} d, past keys.rotate_every_secs ({} d)",
                    k.kid,
                    (observed.now - k.activate_at) / 86_400,
                    every / 86_400
                ),
                "run gatehouse keys rotate, and check that a server is running (it rotates on \
                 schedule)",
            ));
        }
    }
    out
}

pub fn master_key_protected(_: &Settings, observed: &Observed) -> Vec<Issue> {
    match &observed.master_key {
        MasterKeySource::Environment => vec![],
        MasterKeySource::File { path, mode } => match mode {
            Some(mode) if mode & 0o077 != 0 => vec![issue(
                Severity::High,
                format!(
                    "the master key file {} has mode {:o}: others on this machine can read the \
                     key that decrypts signing keys and TOTP secrets",
                    path.display(),
                    mode & 0o777
                ),
                format!("chmod 600 {}", path.display()),
            )],
            _ => vec![],
        },
        MasterKeySource::Missing { path } => vec![issue(
            Severity::Info,
            format!(
                "no master key yet: neither GATEHOUSE_MASTER_KEY nor {} (the server creates the \
                 file, mode 0600, on first start)",
                path.display()
            ),
            "with several instances, set the same GATEHOUSE_MASTER_KEY on each",
        )],
    }
}

pub fn token_lifetimes(settings: &Settings, _: &Observed) -> Vec<Issue> {
    let t = &settings.tokens;
    let mut out = Vec::new();
    if t.access_token_ttl_secs > 86_400 {
        out.push(issue(
            Severity::High,
            format!(
                "access tokens live {} h (tokens.access_token_ttl_secs): a stolen one works that \
                 long and resource servers cannot revoke it",
                t.access_token_ttl_secs / 3_600
            ),
            "set tokens.access_token_ttl_secs to 900 (15 min) and use refresh tokens",
        ));
    } else if t.access_token_ttl_secs > 3_600 {
        out.push(issue(
            Severity::Medium,
            format!(
                "access tokens live {} min (tokens.access_token_ttl_secs), more than an hour",
                t.access_token_ttl_secs / 60
            ),
            "set tokens.access_token_ttl_secs to 900 (15 min) or less",
        ));
    }
    if t.code_ttl_secs > 60 {
        out.push(issue(
            Severity::Low,
            format!(
                "authorization codes live {} s (tokens.code_ttl_secs), more than 60 s",
                t.code_ttl_secs
            ),
            "set tokens.code_ttl_secs to 60",
        ));
    }
    if t.refresh_token_ttl_secs > 90 * 86_400 {
        out.push(issue(
            Severity::Low,
            format!(
                "refresh-token families live {} d (tokens.refresh_token_ttl_secs), more than 90 d",
                t.refresh_token_ttl_secs / 86_400
            ),
            "set tokens.refresh_token_ttl_secs to 30 days or less",
        ));
    }
    out
}

pub fn cors_origins_https(_: &Settings, observed: &Observed) -> Vec<Issue> {
    let mut out = Vec::new();
    for c in &observed.clients {
        for origin in &c.allowed_origins {
            let insecure = match url::Url::parse(origin) {
                Ok(u) => u.scheme() != "https" && !host_is_loopback(&u),
                Err(_) => true,
            };
            if insecure {
                out.push(issue(
                    Severity::Medium,
                    format!(
                        "client {} ({}) allows the browser origin {origin}: not https, so a \
                         network attacker can inject script that calls /token as it",
                        c.id, c.name
                    ),
                    format!(
                        "gatehouse client update {} --allowed-origin https://…",
                        c.id
                    ),
                ));
            }
        }
    }
    out
}

pub fn audit_retention(settings: &Settings, _: &Observed) -> Vec<Issue> {
    let days = settings.audit.retention_days;
    if days < 7 {
        vec![issue(
            Severity::Low,
            format!("audit events are kept {days} d (audit.retention_days): too short to investigate an incident"),
            "set audit.retention_days to 30 or more",
        )]
    } else {
        vec![]
    }
}

pub fn refresh_retry_window(settings: &Settings, _: &Observed) -> Vec<Issue> {
    let secs = settings.tokens.refresh_retry_window_secs;
    match secs {
        s if s <= 0 => vec![],
        s if s <= 10 => vec![issue(
            Severity::Info,
            format!(
                "a rotated refresh token is accepted again for {s} s \
                 (tokens.refresh_retry_window_secs): reuse is detected only after that"
            ),
            "keep it as short as the clients' retries need, or 0",
        )],
        s => vec![issue(
            Severity::Low,
            format!(
                "a rotated refresh token is accepted again for {s} s \
                 (tokens.refresh_retry_window_secs): a thief has that long before reuse is detected"
            ),
            "set tokens.refresh_retry_window_secs to 10 or less, or 0",
        )],
    }
}

pub fn trusted_proxies_narrow(settings: &Settings, _: &Observed) -> Vec<Issue> {
    settings
        .server
        .trusted_proxies
        .iter()
        .filter_map(|net| {
            let everyone = net.prefix_len() == 0;
            let wide = match net {
                ipnet::IpNet::V4(n) => n.prefix_len() < 8,
                ipnet::IpNet::V6(n) => n.prefix_len() < 32,
            };
            if everyone {
                Some(issue(
                    Severity::High,
                    format!(
                        "server.trusted_proxies has {net}: every client may set X-Forwarded-For, \
                         so per-address rate limits and the audit log's addresses can be forged"
                    ),
                    "list only the addresses of your reverse proxies or load balancers",
                ))
            } else if wide {
                Some(issue(
                    Severity::Medium,
                    format!("server.trusted_proxies has the wide range {net}"),
                    "list only the addresses of your reverse proxies or load balancers",
                ))
            } else {
                None
            }
        })
        .collect()
}

pub fn admins_have_mfa(_: &Settings, observed: &Observed) -> Vec<Issue> {
    observed
        .admins
        .iter()
        .filter(|a| !a.has_totp)
        .map(|a| {
            issue(
                Severity::High,
                format!(
                    "administrator {} has no second factor: the admin console makes them enrol \
                     first, but a stolen password is one step from it",
                    a.username
                ),
                format!("gatehouse user totp-enroll --username {}", a.username),
            )
        })
        .collect()
}

pub fn registration_not_open(settings: &Settings, _: &Observed) -> Vec<Issue> {
    match settings.registration.mode {
        RegistrationMode::Off => vec![],
        RegistrationMode::Token => vec![issue(
            Severity::Info,
            "dynamic client registration is on with initial access tokens (registration.mode = token)",
            "hand out tokens with short lifetimes and few uses (gatehouse registration-token create)",
        )],
        RegistrationMode::Open => vec![issue(
            Severity::Medium,
            "dynamic client registration is open (registration.mode = open): anyone may register \
             loopback and native public clients",
            "set registration.mode = token unless anonymous native clients must register",
        )],
    }
}

pub fn admin_scope_confidential_only(_: &Settings, observed: &Observed) -> Vec<Issue> {
    observed
        .clients
        .iter()
        .filter(|c| {
            !c.is_confidential()
                && c.scopes
                    .iter()
                    .any(|s| s == crate::oauth::admin_access::ADMIN_SCOPE)
        })
        .map(|c| {
            issue(
                Severity::Critical,
                format!(
                    "{} client {} ({}) may ask for gatehouse:admin: any page that runs its flow \
                     holds admin API tokens",
                    kind(c),
                    c.id,
                    c.name
                ),
                format!(
                    "remove the scope (gatehouse client update {} --scope …) or use a \
                     confidential client",
                    c.id
                ),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(env: &[(&str, &str)]) -> Settings {
        Settings::load_from(
            None,
            env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        )
        .unwrap()
    }

    const NOW: i64 = 1_800_000_000;

    fn observed() -> Observed {
        Observed {
            now: NOW,
            clients: vec![],
            admins: vec![],
            keys: vec![],
            master_key: MasterKeySource::Environment,
        }
    }

    fn client(id: &str, confidential: bool, grants: &[GrantType]) -> Client {
        Client {
            id: id.into(),
            name: id.to_owned(),
            secret_hash: confidential.then(|| "ab".repeat(32)),
            redirect_uris: vec!["https://app.example/cb".to_owned()],
            grant_types: grants.to_vec(),
            scopes: vec!["api:read".to_owned()],
            audiences: vec!["https://api.example".to_owned()],
            allowed_origins: vec![],
            created_at: NOW,
            require_mfa: false,
            previous_secret: None,
            skip_consent: false,
            post_logout_redirect_uris: Vec::new(),
        }
    }

    fn key(state: &'static str, activate_at: i64) -> KeyInfo {
        KeyInfo {
            kid: "k1".to_owned(),
            alg: "ES256".to_owned(),
            state,
            created_at: activate_at,
            activate_at,
            retire_at: None,
            expires_at: None,
        }
    }

    fn severities(issues: &[Issue]) -> Vec<Severity> {
        issues.iter().map(|i| i.severity).collect()
    }

    #[test]
    fn checklist_35_issuer_is_https_loopback_http_is_low() {
        let o = observed();
        assert!(issuer_https(
            &settings(&[("GATEHOUSE_ISSUER", "https://auth.example")]),
            &o
        )
        .is_empty());
        assert_eq!(
            severities(&issuer_https(
                &settings(&[("GATEHOUSE_ISSUER", "http://127.0.0.1:8080")]),
                &o
            )),
            [Severity::Low]
        );
        let mut s = settings(&[]);
        s.server.issuer = "http://auth.example".to_owned();
        assert_eq!(severities(&issuer_https(&s, &o)), [Severity::Critical]);
    }

    #[test]
    fn rfc9700_2_1_1_pkce_s256_is_enforced_and_reported_passing() {
        let report = run(&settings(&[]), &observed());
        assert!(report.passed.iter().any(|p| p.check == "pkce_s256"));
        assert!(!report.findings.iter().any(|f| f.check == "pkce_s256"));
    }

    #[test]
    fn rfc9700_2_4_no_public_client_has_the_password_grant() {
        let mut o = observed();
        o.clients = vec![
            client(
                "spa",
                false,
                &[GrantType::AuthorizationCode, GrantType::Password],
            ),
            client("backend", true, &[GrantType::Password]),
            client("web", false, &[GrantType::AuthorizationCode]),
        ];
        let issues = no_public_password_client(&settings(&[]), &o);
        assert_eq!(severities(&issues), [Severity::High, Severity::Low]);
        assert!(issues[0].message.contains("spa") && issues[0].fix.contains("client update spa"));
    }

    #[test]
    fn checklist_55_redirect_uris_are_https_or_loopback() {
        let mut o = observed();
        let mut c = client("c", false, &[GrantType::AuthorizationCode]);
        c.redirect_uris = vec![
            "https://app.example/cb".to_owned(),
            "http://127.0.0.1:5173/cb".to_owned(),
            "com.example.app:/cb".to_owned(),
            "http://app.example/cb".to_owned(),
        ];
        o.clients = vec![c];
        let issues = redirect_uris_https_or_loopback(&settings(&[]), &o);
        assert_eq!(severities(&issues), [Severity::High]);
        assert!(issues[0].message.contains("http://app.example/cb"));
    }

    #[test]
    fn checklist_33_signing_keys_rotate_on_schedule() {
        let mut o = observed();
        o.keys = vec![key("signing", NOW - 200 * 86_400)];
        let never = settings(&[]);
        assert_eq!(never.keys.rotate_every_secs, 0);
        assert_eq!(
            severities(&signing_key_rotation(&never, &o)),
            [Severity::Low]
        );
        let ninety = settings(&[("GATEHOUSE_KEYS__ROTATE_EVERY_SECS", "7776000")]);
        assert_eq!(
            severities(&signing_key_rotation(&ninety, &o)),
            [Severity::Medium]
        );
        o.keys = vec![key("signing", NOW - 10 * 86_400)];
        assert!(signing_key_rotation(&ninety, &o).is_empty());
    }

    #[test]
    fn checklist_53_master_key_file_readable_by_others_is_high() {
        let mut o = observed();
        let path = PathBuf::from("keys/master.key");
        o.master_key = MasterKeySource::File {
            path: path.clone(),
            mode: Some(0o100644),
        };
        let issues = master_key_protected(&settings(&[]), &o);
        assert_eq!(severities(&issues), [Severity::High]);
        assert!(issues[0].fix.contains("chmod 600"));
        o.master_key = MasterKeySource::File {
            path: path.clone(),
            mode: Some(0o100600),
        };
        assert!(master_key_protected(&settings(&[]), &o).is_empty());
        o.master_key = MasterKeySource::Missing { path };
        assert_eq!(
            severities(&master_key_protected(&settings(&[]), &o)),
            [Severity::Info]
        );
    }

    #[test]
    fn rfc6819_5_1_5_3_access_tokens_are_short_lived() {
        let o = observed();
        assert!(token_lifetimes(&settings(&[]), &o).is_empty());
        let two_hours = settings(&[("GATEHOUSE_TOKENS__ACCESS_TOKEN_TTL_SECS", "7200")]);
        assert_eq!(
            severities(&token_lifetimes(&two_hours, &o)),
            [Severity::Medium]
        );
        let two_days = settings(&[("GATEHOUSE_TOKENS__ACCESS_TOKEN_TTL_SECS", "172800")]);
        assert_eq!(
            severities(&token_lifetimes(&two_days, &o)),
            [Severity::High]
        );
    }

    #[test]
    fn checklist_45_cors_origins_are_https_or_loopback() {
        let mut o = observed();
        let mut c = client("c", false, &[GrantType::AuthorizationCode]);
        c.allowed_origins = vec![
            "https://app.example".to_owned(),
            "http://127.0.0.1:5173".to_owned(),
            "http://app.example".to_owned(),
        ];
        o.clients = vec![c];
        let issues = cors_origins_https(&settings(&[]), &o);
        assert_eq!(severities(&issues), [Severity::Medium]);
        assert!(issues[0].message.contains("http://app.example"));
    }

    #[test]
    fn checklist_64_audit_retention_long_enough() {
        let o = observed();
        assert!(audit_retention(&settings(&[]), &o).is_empty());
        let short = settings(&[("GATEHOUSE_AUDIT__RETENTION_DAYS", "2")]);
        assert_eq!(severities(&audit_retention(&short, &o)), [Severity::Low]);
    }

    #[test]
    fn rfc9700_4_14_2_refresh_retry_window_is_short() {
        let o = observed();
        assert!(refresh_retry_window(&settings(&[]), &o).is_empty());
        let five = settings(&[("GATEHOUSE_TOKENS__REFRESH_RETRY_WINDOW_SECS", "5")]);
        assert_eq!(
            severities(&refresh_retry_window(&five, &o)),
            [Severity::Info]
        );
        let sixty = settings(&[("GATEHOUSE_TOKENS__REFRESH_RETRY_WINDOW_SECS", "60")]);
        assert_eq!(
            severities(&refresh_retry_window(&sixty, &o)),
            [Severity::Low]
        );
    }

    #[test]
    fn checklist_49_trusted_proxies_are_not_everyone() {
        let o = observed();
        let mut s = settings(&[]);
        assert!(trusted_proxies_narrow(&s, &o).is_empty());
        s.server.trusted_proxies = vec![
            "10.0.0.0/8".parse().unwrap(),
            "0.0.0.0/0".parse().unwrap(),
            "::/0".parse().unwrap(),
            "1.0.0.0/4".parse().unwrap(),
        ];
        assert_eq!(
            severities(&trusted_proxies_narrow(&s, &o)),
            [Severity::High, Severity::High, Severity::Medium]
        );
    }

    #[test]
    fn checklist_64_admins_have_a_second_factor() {
        let mut o = observed();
        o.admins = vec![
            Admin {
                username: "root".to_owned(),
                has_totp: true,
            },
            Admin {
                username: "ops".to_owned(),
                has_totp: false,
            },
        ];
        let issues = admins_have_mfa(&settings(&[]), &o);
        assert_eq!(severities(&issues), [Severity::High]);
        assert!(issues[0].fix.contains("totp-enroll --username ops"));
    }

    #[test]
    fn checklist_61_open_registration_is_medium() {
        let o = observed();
        let mut s = settings(&[]);
        assert!(registration_not_open(&s, &o).is_empty());
        s.registration.mode = RegistrationMode::Token;
        assert_eq!(severities(&registration_not_open(&s, &o)), [Severity::Info]);
        s.registration.mode = RegistrationMode::Open;
        assert_eq!(
            severities(&registration_not_open(&s, &o)),
            [Severity::Medium]
        );
    }

    #[test]
    fn checklist_64_public_client_with_admin_scope_is_critical() {
        let mut o = observed();
        let mut public = client("spa", false, &[GrantType::AuthorizationCode]);
        public.scopes.push("gatehouse:admin".to_owned());
        let mut conf = client("ops", true, &[GrantType::ClientCredentials]);
        conf.scopes.push("gatehouse:admin".to_owned());
        o.clients = vec![public, conf];
        let issues = admin_scope_confidential_only(&settings(&[]), &o);
        assert_eq!(severities(&issues), [Severity::Critical]);
        assert!(issues[0].message.contains("spa"));
    }

    #[test]
    fn report_sorts_worst_first_and_counts_for_fail_on() {
        let mut o = observed();
        o.clients = vec![client("spa", false, &[GrantType::Password])];
        let report = run(&settings(&[]), &o);
        assert_eq!(report.findings[0].severity, Severity::High);
        assert!(report
            .findings
            .windows(2)
            .all(|w| w[0].severity >= w[1].severity));
        assert_eq!(report.at_or_above(Severity::High), 1);
        assert!(report.at_or_above(Severity::Info) >= 2);
        assert_eq!(Severity::parse("medium"), Some(Severity::Medium));
        assert_eq!(Severity::parse("severe"), None);
    }
}
