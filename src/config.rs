//! Typed settings, layered: `config/default.toml` (built in) → an optional file → `GATEHOUSE_*` environment.

use std::path::{Path, PathBuf};

use serde::Deserialize;

const DEFAULTS: &str = include_str!("../config/default.toml");

/// The signing algorithms `keys.algorithm` may name (ES256 by default; DESIGN.md "Keys").
pub const SIGNING_ALGORITHMS: [&str; 3] = ["ES256", "RS256", "EdDSA"];

/// Every setting Gatehouse reads. `config/default.toml` documents each one with its default.
#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub keys: KeySettings,
    pub tokens: TokenSettings,
    pub session: SessionSettings,
    pub jwks: JwksSettings,
    pub passwords: PasswordSettings,
    pub clients: ClientSettings,
    pub audit: AuditSettings,
    pub prune: PruneSettings,
    pub rate_limits: RateLimitSettings,
    pub lockout: LockoutSettings,
    pub mfa: MfaSettings,
    pub demo: DemoSettings,
    pub registration: RegistrationSettings,
    pub metrics: MetricsSettings,
}

/// Prometheus metrics, served on their own listener only.
#[derive(Debug, Clone, Deserialize)]
pub struct MetricsSettings {
    /// host:port of the `/metrics` listener; empty (the default) turns metrics serving off.
    /// Never the public `server.bind`.
    pub bind: String,
}

impl MetricsSettings {
    /// The metrics listener's address, when one is configured.
    pub fn bind(&self) -> Option<&str> {
        Some(self.bind.trim()).filter(|b| !b.is_empty())
    }
}

/// Dynamic client registration (RFC 7591, RFC 7592): off unless turned on.
#[derive(Debug, Clone, Deserialize)]
pub struct RegistrationSettings {
    /// `off`, `token` (an initial access token is needed) or `open` (loopback and native public
    /// clients may also register without one).
    pub mode: RegistrationMode,
    /// Scopes a registered client may have (those not asked for: all of them).
    pub allowed_scopes: Vec<String>,
    /// Audiences a registered client may have (those not asked for: all of them); at least one
    /// when registration is on.
    pub allowed_audiences: Vec<String>,
    /// Confidential clients (client_secret_basic/post, client_credentials) may register with an
    /// initial access token.
    pub allow_confidential: bool,
    /// Most redirect URIs one registered client has.
    pub max_redirect_uris: usize,
    /// Lifetime of an initial access token when `registration-token create` names none.
    pub token_ttl_secs: i64,
    /// Registrations one initial access token allows when `registration-token create` names none.
    pub token_max_uses: i64,
    /// Open mode: most clients registered without a token from one address (an IPv6 /64).
    pub open_max_per_address: i64,
    /// Open mode: most clients registered without a token in all.
    pub open_max_clients: i64,
}

/// Whether and how clients may register themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RegistrationMode {
    Off,
    Token,
    Open,
}

/// The `/demo` page.
#[derive(Debug, Clone, Deserialize)]
pub struct DemoSettings {
    pub enabled: DemoMode,
}

/// `auto` (on for a loopback issuer), `on` or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DemoMode {
    Auto,
    On,
    Off,
}

/// The second factor (TOTP).
#[derive(Debug, Clone, Deserialize)]
pub struct MfaSettings {
    /// Every sign-in needs a second factor, whatever the client (users without one enrol first).
    pub required_for_all_clients: bool,
    /// The issuer name authenticator apps show beside the account.
    pub issuer_name: String,
    /// Seconds a half-signed-in session (password checked, code or enrolment pending) lives.
    pub pending_ttl_secs: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ServerSettings {
    /// host:port to listen on.
    pub bind: String,
    /// Issuer identifier, compared exactly.
    pub issuer: String,
    /// JSON log lines.
    pub json_logs: bool,
    /// HTTP workers; 0 means one per core.
    pub workers: usize,
    /// Proxies (addresses or CIDR ranges) whose X-Forwarded-For is believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSettings {
    /// `sqlite://path`, a bare path, or `postgres://…`.
    pub url: String,
    /// Maximum pooled connections.
    pub pool_size: u32,
    /// SQLite only: the size (MiB) past which the background task checkpoints the write-ahead
    /// log and truncates it (0 = never).
    pub sqlite_wal_limit_mb: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct KeySettings {
    /// Directory of `master.key` on a single node.
    pub dir: PathBuf,
    /// Algorithm of new signing keys: ES256, RS256 or EdDSA.
    pub algorithm: String,
    /// Seconds from `gatehouse keys rotate` to the new key's first signature: it is published at
    /// once, so this must exceed the JWKS cache lifetime plus the reload interval.
    pub publish_delay_secs: i64,
    /// Seconds between two reloads of the signing keys from the database (each instance).
    pub reload_secs: u64,
    /// Rotate automatically once the signing key is this many seconds old (0 = never).
    pub rotate_every_secs: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TokenSettings {
    /// Access token lifetime.
    pub access_token_ttl_secs: i64,
    /// Absolute refresh-token family lifetime.
    pub refresh_token_ttl_secs: i64,
    /// Idle timeout of a refresh token.
    pub refresh_token_idle_secs: i64,
    /// Authorization code lifetime.
    pub code_ttl_secs: i64,
    /// Seconds a just-rotated refresh token may be presented again (0 = off).
    pub refresh_retry_window_secs: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SessionSettings {
    /// Login session lifetime.
    pub ttl_secs: i64,
    /// Pending authorization request lifetime (also the lifetime of a session before login).
    pub interaction_ttl_secs: i64,
    /// Most pending authorization requests one session holds: a new one beyond it replaces the
    /// session's oldest, so one cookie cannot grow the table (checklist 58).
    pub max_pending_per_session: u32,
    /// Most live sessions not yet signed in that one client address (an IPv6 address by its /64)
    /// holds, across every instance: a cookieless `/authorize` beyond it gets 429 (0 = no cap).
    pub max_anonymous_per_address: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct JwksSettings {
    /// Cache-Control max-age of JWKS and metadata.
    pub max_age_secs: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ClientSettings {
    /// How long a client that authenticated with its secret is remembered for client_credentials
    /// (0 = never): deleting a client, rotating its secret or editing it takes effect on every
    /// instance within this bound. A failed authentication always reads the database.
    pub cache_secs: i64,
    /// How long a client's old secret keeps working after `client rotate-secret` (0: not at all).
    pub secret_rotation_grace_secs: i64,
}

/// Per-address request limits of this instance, per endpoint group: a steady rate per minute and
/// a burst allowed at once. A rate of 0 turns the group's limit off.
#[derive(Debug, Clone, Deserialize)]
pub struct RateLimitSettings {
    /// `POST /login` (password checks).
    pub login_per_minute: u32,
    pub login_burst: u32,
    /// `POST /consent`.
    pub consent_per_minute: u32,
    pub consent_burst: u32,
    /// `GET /authorize`.
    pub authorize_per_minute: u32,
    pub authorize_burst: u32,
    /// `POST /token`.
    pub token_per_minute: u32,
    pub token_burst: u32,
    /// Most addresses each group remembers; past it, a new address is not limited.
    pub max_addresses: usize,
}

/// Sign-in lockout per user, device and factor (checklist 49, 59).
#[derive(Debug, Clone, Deserialize)]
pub struct LockoutSettings {
    /// Failures that lock one counter (a user's unknown devices, or one known device, for one
    /// factor).
    pub max_failures: u32,
    /// How long a lock lasts; failures with none newer for this long are forgotten.
    pub duration_secs: i64,
    /// Lifetime of the device cookie a successful browser sign-in sets.
    pub device_cookie_ttl_secs: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AuditSettings {
    /// Days an audit event is kept; older ones are purged by the background task.
    pub retention_days: i64,
}

impl AuditSettings {
    /// The retention in seconds.
    pub fn retention_secs(&self) -> i64 {
        self.retention_days.saturating_mul(86_400)
    }
}

/// The background task's clean-up of expired rows (`flows::prune`) and of old audit events.
#[derive(Debug, Clone, Deserialize)]
pub struct PruneSettings {
    /// Seconds between two prune rounds of one instance (a round that leaves a backlog is
    /// followed by the next one a second later).
    pub every_secs: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PasswordSettings {
    /// argon2id memory cost in KiB.
    pub memory_kib: u32,
    /// argon2id iterations.
    pub iterations: u32,
    /// argon2id lanes.
    pub parallelism: u32,
    /// Most password hashes computed at once (0 = one per core). Each holds `memory_kib` until it
    /// finishes, even when the client that asked for it has gone away.
    pub max_concurrent_hashes: usize,
    /// Most password checks waiting for a hash slot; one more is answered "busy, retry" at once.
    pub max_queued_hashes: usize,
}

/// Above this many concurrent hashes Gatehouse only adds memory, not throughput.
pub const MAX_CONCURRENT_HASHES: usize = 1024;

impl PasswordSettings {
    /// `max_concurrent_hashes` with 0 resolved to the number of cores, at most
    /// [`MAX_CONCURRENT_HASHES`].
    pub fn concurrent_hashes(&self) -> usize {
        let n = match self.max_concurrent_hashes {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        n.min(MAX_CONCURRENT_HASHES)
    }
}

/// Settings that are lists; their environment variables are comma-separated.
const LIST_SETTINGS: [&str; 3] = [
    "server.trusted_proxies",
    "registration.allowed_scopes",
    "registration.allowed_audiences",
];

/// Short environment names that override one setting each.
const SHORTCUTS: [(&str, &str); 4] = [
    ("GATEHOUSE_DATABASE_URL", "database.url"),
    ("GATEHOUSE_ISSUER", "server.issuer"),
    ("GATEHOUSE_BIND", "server.bind"),
    ("GATEHOUSE_KEYS_DIR", "keys.dir"),
];

impl Settings {
    /// Loads the layered settings. `file` (or `GATEHOUSE_CONFIG`) is optional but must exist when named.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Settings> {
        Self::load_from(file, std::env::vars())
    }

    /// Same as [`Settings::load`], with the environment given explicitly (tests use this).
    pub fn load_from(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> anyhow::Result<Settings> {
        let env: Vec<(String, String)> = env.into_iter().collect();
        let mut builder = config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml));
        let from_env = env
            .iter()
            .find(|(k, _)| k == "GATEHOUSE_CONFIG")
            .map(|(_, v)| PathBuf::from(v));
        if let Some(path) = file.map(Path::to_path_buf).or(from_env) {
            if !path.exists() {
                anyhow::bail!("configuration file {} does not exist", path.display());
            }
            builder = builder.add_source(config::File::from(path));
        }
        let sectioned: config::Map<String, String> = env
            .iter()
            .filter_map(|(k, v)| {
                let rest = k.strip_prefix("GATEHOUSE_")?;
                let (section, key) = rest.split_once("__")?;
                Some((
                    format!("{}.{}", section.to_lowercase(), key.to_lowercase()),
                    v.clone(),
                ))
            })
            .collect();
        for (key, value) in sectioned {
            builder = if LIST_SETTINGS.contains(&key.as_str()) {
                let items: Vec<String> = value
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect();
                builder.set_override(key, items)?
            } else {
                builder.set_override(key, value)?
            };
        }
        for (var, key) in SHORTCUTS {
            if let Some((_, v)) = env.iter().find(|(k, _)| k == var) {
                builder = builder.set_override(key, v.clone())?;
            }
        }
        let settings: Settings = builder.build()?.try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    /// Rejects settings that would make Gatehouse insecure or broken, with a readable reason.
    pub fn validate(&self) -> anyhow::Result<()> {
        if !(1..=3650).contains(&self.audit.retention_days) {
            anyhow::bail!("audit.retention_days must be between 1 and 3650");
        }
        let lockout = &self.lockout;
        if !(1..=100).contains(&lockout.max_failures) {
            anyhow::bail!("lockout.max_failures must be between 1 and 100");
        }
        // At most max_failures guesses per lock period and counter: at least 36 s per failure
        // keeps a counter at or below 100 failures an hour (checklist 49).
        if lockout.duration_secs < 36 * i64::from(lockout.max_failures)
            || lockout.duration_secs > 30 * 86_400
        {
            anyhow::bail!(
                "lockout.duration_secs must be at least 36 s per allowed failure ({} s for \
                 max_failures = {}) and at most 30 days",
                36 * i64::from(lockout.max_failures),
                lockout.max_failures
            );
        }
        if !(3_600..=5 * 365 * 86_400).contains(&lockout.device_cookie_ttl_secs) {
            anyhow::bail!("lockout.device_cookie_ttl_secs must be between 1 hour and 5 years");
        }
        if !(1..=86_400).contains(&self.prune.every_secs) {
            anyhow::bail!("prune.every_secs must be between 1 and 86400");
        }
        if !(0..=30 * 86_400).contains(&self.clients.secret_rotation_grace_secs) {
            anyhow::bail!("clients.secret_rotation_grace_secs must be between 0 and 30 days");
        }
        if !(0..=300).contains(&self.clients.cache_secs) {
            anyhow::bail!("clients.cache_secs must be between 0 (off) and 300");
        }
        let issuer = url::Url::parse(&self.server.issuer).map_err(|e| {
            anyhow::anyhow!("server.issuer {:?} is not a URL: {e}", self.server.issuer)
        })?;
        let loopback = is_loopback(&issuer);
        match issuer.scheme() {
            "https" => {}
            "http" if loopback => {}
            _ => anyhow::bail!(
                "server.issuer must be https (http is allowed only on a loopback address): {}",
                self.server.issuer
            ),
        }
        if issuer.query().is_some() || issuer.fragment().is_some() {
            anyhow::bail!("server.issuer must not have a query or fragment (RFC 8414 §2)");
        }
        if issuer.path() != "/" || self.server.issuer.ends_with('/') {
            anyhow::bail!(
                "server.issuer must be scheme://host[:port] without a path or trailing '/': \
                 Gatehouse serves its endpoints at the root and tokens compare the issuer exactly"
            );
        }
        if self.server.issuer.ends_with('/') {
            anyhow::bail!("server.issuer must not end with '/': tokens compare it exactly");
        }
        if !(1..=600).contains(&self.tokens.code_ttl_secs) {
            anyhow::bail!("tokens.code_ttl_secs must be between 1 and 600");
        }
        if !(0..=60).contains(&self.tokens.refresh_retry_window_secs) {
            anyhow::bail!("tokens.refresh_retry_window_secs must be between 0 (off) and 60");
        }
        if self.passwords.max_concurrent_hashes > MAX_CONCURRENT_HASHES {
            anyhow::bail!(
                "passwords.max_concurrent_hashes must be at most {MAX_CONCURRENT_HASHES} (0 = one per core)"
            );
        }
        if self.session.max_pending_per_session < 1 {
            anyhow::bail!("session.max_pending_per_session must be at least 1");
        }
        if !(30..=1800).contains(&self.mfa.pending_ttl_secs) {
            anyhow::bail!("mfa.pending_ttl_secs must be between 30 and 1800");
        }
        if self.mfa.issuer_name.trim().is_empty() || self.mfa.issuer_name.contains(':') {
            anyhow::bail!("mfa.issuer_name must be a non-empty name without ':'");
        }
        if self.tokens.access_token_ttl_secs < 1 || self.tokens.refresh_token_ttl_secs < 1 {
            anyhow::bail!("token lifetimes must be positive");
        }
        if !SIGNING_ALGORITHMS.contains(&self.keys.algorithm.as_str()) {
            anyhow::bail!(
                "keys.algorithm {:?} is not supported: use one of {}",
                self.keys.algorithm,
                SIGNING_ALGORITHMS.join(", ")
            );
        }
        self.validate_registration()?;
        if let Some(bind) = self.metrics.bind() {
            if bind == self.server.bind.trim() {
                anyhow::bail!(
                    "metrics.bind must differ from server.bind: metrics are never served on the \
                     public listener"
                );
            }
        }
        if !(1..=3600).contains(&self.keys.reload_secs) {
            anyhow::bail!("keys.reload_secs must be between 1 and 3600");
        }
        // A new key must reach every instance's JWKS (next reload) and every cache of it
        // (max-age) before anything it signs is presented.
        let cached_for = i64::from(self.jwks.max_age_secs) + self.keys.reload_secs as i64;
        if self.keys.publish_delay_secs <= cached_for {
            anyhow::bail!(
                "keys.publish_delay_secs ({}) must be greater than jwks.max_age_secs plus \
                 keys.reload_secs ({cached_for}): a new key is published that long before it signs",
                self.keys.publish_delay_secs
            );
        }
        if self.keys.rotate_every_secs < 0
            || (self.keys.rotate_every_secs > 0
                && self.keys.rotate_every_secs <= self.keys.publish_delay_secs)
        {
            anyhow::bail!(
                "keys.rotate_every_secs must be 0 (no scheduled rotation) or greater than \
                 keys.publish_delay_secs ({})",
                self.keys.publish_delay_secs
            );
        }
        Ok(())
    }

    /// Dynamic registration's settings: only audiences a client may be registered for, none
    /// reserved for admin-registered clients, and sane bounds.
    fn validate_registration(&self) -> anyhow::Result<()> {
        let r = &self.registration;
        if !(1..=100).contains(&r.max_redirect_uris) {
            anyhow::bail!("registration.max_redirect_uris must be between 1 and 100");
        }
        if !(60..=365 * 86_400).contains(&r.token_ttl_secs) {
            anyhow::bail!("registration.token_ttl_secs must be between 60 s and 365 days");
        }
        if !(1..=10_000).contains(&r.token_max_uses) {
            anyhow::bail!("registration.token_max_uses must be between 1 and 10000");
        }
        if r.open_max_per_address < 1 || r.open_max_clients < 1 {
            anyhow::bail!(
                "registration.open_max_per_address and registration.open_max_clients must be at least 1"
            );
        }
        for s in &r.allowed_scopes {
            if s.starts_with("gatehouse:") {
                anyhow::bail!(
                    "registration.allowed_scopes must not name {s:?}: gatehouse: scopes are for \
                     clients an administrator registers"
                );
            }
        }
        for a in &r.allowed_audiences {
            let url = url::Url::parse(a).map_err(|_| {
                anyhow::anyhow!("registration.allowed_audiences: {a:?} is not an absolute URI")
            })?;
            if url.fragment().is_some() {
                anyhow::bail!("registration.allowed_audiences: {a:?} must not have a fragment");
            }
            if a.strip_prefix(&self.server.issuer)
                .is_some_and(|rest| rest.starts_with("/admin"))
            {
                anyhow::bail!(
                    "registration.allowed_audiences must not name {a:?}: it is for clients an \
                     administrator registers"
                );
            }
        }
        if r.mode != RegistrationMode::Off && r.allowed_audiences.is_empty() {
            anyhow::bail!(
                "registration.mode is {:?} but registration.allowed_audiences is empty: name the \
                 resource servers registered clients may get tokens for",
                r.mode
            );
        }
        Ok(())
    }

    /// True when the issuer is https: cookies get `Secure` and the `__Host-` prefix, responses HSTS.
    pub fn is_https(&self) -> bool {
        url::Url::parse(&self.server.issuer).is_ok_and(|u| u.scheme() == "https")
    }

    /// Whether `/demo` is served: `demo.enabled`, where `auto` means on a loopback issuer only.
    pub fn demo_enabled(&self) -> bool {
        match self.demo.enabled {
            DemoMode::On => true,
            DemoMode::Off => false,
            DemoMode::Auto => url::Url::parse(&self.server.issuer).is_ok_and(|u| is_loopback(&u)),
        }
    }
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn with(issuer: &str, demo: &str) -> Settings {
        Settings::load_from(
            None,
            vec![
                ("GATEHOUSE_ISSUER".to_owned(), issuer.to_owned()),
                ("GATEHOUSE_DEMO__ENABLED".to_owned(), demo.to_owned()),
            ],
        )
        .unwrap()
    }

    #[test]
    fn demo_is_on_by_default_for_loopback_issuers_only() {
        assert!(with("http://127.0.0.1:8080", "auto").demo_enabled());
        assert!(with("http://localhost:8080", "auto").demo_enabled());
        assert!(with("http://[::1]:8080", "auto").demo_enabled());
        assert!(!with("https://auth.example", "auto").demo_enabled());
        assert!(with("https://auth.example", "on").demo_enabled());
        assert!(!with("http://127.0.0.1:8080", "off").demo_enabled());
        assert!(Settings::load_from(
            None,
            vec![("GATEHOUSE_DEMO__ENABLED".to_owned(), "maybe".to_owned())]
        )
        .is_err());
    }
}
