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
    pub consent: ConsentSettings,
    /// What the loader noticed and `serve` logs as warnings once logging is up (the issuer and
    /// the bind address disagree, an http issuer on a public bind address).
    #[serde(skip)]
    pub warnings: Vec<String>,
    /// Every setting's effective value and where it came from, for `gatehouse config show`.
    #[serde(skip)]
    pub effective: Vec<Effective>,
}

/// One setting as `gatehouse config show` prints it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Effective {
    /// `section.key`.
    pub key: String,
    /// The value as JSON (a password in a database URL replaced by `***`).
    pub value: serde_json::Value,
    /// `default`, `file PATH`, `env NAME`, or `server.bind` for an issuer that follows it.
    pub source: String,
}

/// The consent page.
#[derive(Debug, Clone, Deserialize)]
pub struct ConsentSettings {
    /// What the consent page says a scope allows, by scope name; a scope without one is shown
    /// by its name.
    pub scope_descriptions: std::collections::BTreeMap<String, String>,
}

impl ConsentSettings {
    /// The description of `scope`, if one is configured.
    pub fn describe(&self, scope: &str) -> Option<&str> {
        self.scope_descriptions
            .get(scope)
            .map(String::as_str)
            .filter(|d| !d.trim().is_empty())
    }
}

/// Settings under this prefix are a map whose keys the administrator chooses (scope names).
const OPEN_MAPS: [&str; 1] = ["consent.scope_descriptions"];

/// Whether `key` is a documented setting, or an entry of a map whose keys are free.
fn is_known(known: &std::collections::BTreeSet<String>, key: &str) -> bool {
    known.contains(key)
        || OPEN_MAPS.iter().any(|map| {
            key.strip_prefix(map)
                .is_some_and(|rest| rest.starts_with('.') || rest.starts_with("__"))
        })
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
    /// OpenID Connect ID token lifetime.
    pub id_token_ttl_secs: i64,
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
    /// Shortest new password, in characters (at least 8).
    pub min_length: usize,
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

/// A database URL Gatehouse can keep data in: `sqlite://PATH`, `sqlite:PATH`, a bare file path,
/// or `postgres://…` / `postgresql://…`. An empty URL and SQLite's in-memory database would lose
/// everything at the next start, and another scheme is a typo or an unsupported database.
fn check_database_url(url: &str) -> anyhow::Result<()> {
    let url = url.trim();
    if url.is_empty() {
        anyhow::bail!(
            "database.url is empty: use a file (sqlite://gatehouse.db, the default) or \
             postgres://user@host/db"
        );
    }
    if let Some((scheme, _)) = url.split_once(':') {
        let looks_like_scheme = !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if looks_like_scheme && !matches!(scheme, "sqlite" | "postgres" | "postgresql") {
            anyhow::bail!(
                "database.url {url:?}: the scheme {scheme:?} is not one Gatehouse speaks; use \
                 sqlite://PATH, a file path, or postgres://…"
            );
        }
    }
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    if path.is_empty() || path.contains(":memory:") || path.starts_with("file::memory") {
        anyhow::bail!(
            "database.url {url:?} is a database in memory, lost when Gatehouse stops: name a \
             file, such as sqlite://gatehouse.db"
        );
    }
    Ok(())
}

/// Every setting's dotted name: those `config/default.toml` documents.
fn known_keys() -> anyhow::Result<std::collections::BTreeSet<String>> {
    let defaults = config::Config::builder()
        .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml))
        .build()?;
    Ok(flatten_keys(defaults.cache).into_iter().collect())
}

/// A URL with its password, if any, replaced by `***`.
pub fn redact_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

/// Every leaf of a configuration tree with its value, by dotted name, in name order.
fn flatten_values(value: config::Value) -> Vec<(String, serde_json::Value)> {
    fn walk(prefix: &str, value: config::Value, out: &mut Vec<(String, serde_json::Value)>) {
        match value.kind {
            config::ValueKind::Table(table) => {
                for (k, v) in table {
                    let name = if prefix.is_empty() {
                        k
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&name, v, out);
                }
            }
            _ => {
                let json = value
                    .try_deserialize::<serde_json::Value>()
                    .unwrap_or(serde_json::Value::Null);
                out.push((prefix.to_owned(), json));
            }
        }
    }
    let mut out = Vec::new();
    walk("", value, &mut out);
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The dotted names of a configuration tree's leaves (`server.bind`).
fn flatten_keys(value: config::Value) -> Vec<String> {
    fn walk(prefix: &str, value: config::Value, out: &mut Vec<String>) {
        match value.kind {
            config::ValueKind::Table(table) => {
                for (k, v) in table {
                    let name = if prefix.is_empty() {
                        k
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&name, v, out);
                }
            }
            _ => out.push(prefix.to_owned()),
        }
    }
    let mut out = Vec::new();
    walk("", value, &mut out);
    out
}

/// ": did you mean `x`?" when a known setting is a few edits from `key`.
fn suggestion(key: &str, known: &std::collections::BTreeSet<String>) -> String {
    let best = known
        .iter()
        .map(|k| (edit_distance(key, k), k))
        .min_by_key(|(d, _)| *d);
    match best {
        Some((d, k)) if d <= 3.max(key.len() / 5) => format!(": did you mean `{k}`?"),
        _ => ": see config/default.toml for every setting".to_owned(),
    }
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
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
        let known = known_keys()?;
        let mut builder = config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml));
        let from_env = env
            .iter()
            .find(|(k, _)| k == "GATEHOUSE_CONFIG")
            .map(|(_, v)| PathBuf::from(v));
        // Which settings were given, and where: unknown ones are refused, and the issuer
        // follows the bind address unless it was given.
        let mut given: Vec<(String, String)> = Vec::new();
        if let Some(path) = file.map(Path::to_path_buf).or(from_env) {
            if !path.exists() {
                anyhow::bail!("configuration file {} does not exist", path.display());
            }
            let in_file = flatten_keys(
                config::Config::builder()
                    .add_source(config::File::from(path.clone()))
                    .build()?
                    .cache,
            );
            for key in &in_file {
                if !is_known(&known, key) {
                    anyhow::bail!(
                        "unknown setting `{key}` in {}{}",
                        path.display(),
                        suggestion(key, &known)
                    );
                }
            }
            given.extend(
                in_file
                    .into_iter()
                    .map(|k| (k, format!("file {}", path.display()))),
            );
            builder = builder.add_source(config::File::from(path));
        }
        let mut sectioned: Vec<(String, String, String)> = Vec::new();
        for (var, value) in &env {
            let Some((section, key)) = var
                .strip_prefix("GATEHOUSE_")
                .and_then(|rest| rest.split_once("__"))
            else {
                continue;
            };
            let key = format!("{}.{}", section.to_lowercase(), key.to_lowercase());
            if !is_known(&known, &key) {
                anyhow::bail!(
                    "unknown setting {var} (`{key}`){}",
                    suggestion(&key, &known)
                );
            }
            sectioned.push((key, value.clone(), var.clone()));
        }
        for (key, value, var) in sectioned {
            given.push((key.clone(), format!("env {var}")));
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
                given.push((key.to_owned(), format!("env {var}")));
                builder = builder.set_override(key, v.clone())?;
            }
        }
        let built = builder.build()?;
        let values = flatten_values(built.cache.clone());
        let mut settings: Settings = built.try_deserialize()?;
        let issuer_given = given.iter().any(|(k, _)| k == "server.issuer");
        settings.follow_bind(issuer_given);
        settings.effective = values
            .into_iter()
            .map(|(key, value)| {
                let source = given
                    .iter()
                    .rev()
                    .find(|(k, _)| *k == key)
                    .map(|(_, source)| source.clone());
                let (value, source) = match key.as_str() {
                    "server.issuer" if !issuer_given => (
                        serde_json::Value::String(settings.server.issuer.clone()),
                        "server.bind".to_owned(),
                    ),
                    "database.url" => (
                        serde_json::Value::String(redact_password(&settings.database.url)),
                        source.unwrap_or_else(|| "default".into()),
                    ),
                    _ => (value, source.unwrap_or_else(|| "default".into())),
                };
                Effective { key, value, source }
            })
            .collect();
        settings.validate()?;
        Ok(settings)
    }

    /// When no issuer was given, a loopback bind address moves it (`http://<bind>`); a warning
    /// notes an issuer and a bind address that disagree on a loopback host, and a public bind
    /// address serving plain http under a loopback issuer.
    fn follow_bind(&mut self, issuer_given: bool) {
        let bind = self.server.bind.clone();
        let bind_host = bind
            .rsplit_once(':')
            .map(|(host, _)| host.trim_start_matches('[').trim_end_matches(']'))
            .unwrap_or(&bind)
            .to_owned();
        let bind_loopback = bind_host == "localhost"
            || bind_host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if !issuer_given && bind_loopback {
            // host:port, an IPv6 host already in brackets: the URL's authority as it is.
            self.server.issuer = format!("http://{bind}");
            return;
        }
        let Ok(issuer) = url::Url::parse(&self.server.issuer) else {
            return;
        };
        if is_loopback(&issuer) && bind_loopback {
            let same_port = issuer.port_or_known_default().map(|p| p.to_string())
                == bind.rsplit_once(':').map(|(_, p)| p.to_owned());
            if !same_port {
                self.warnings.push(format!(
                    "the issuer {} and the bind address {bind} differ: browsers and clients \
                     reach this server through the issuer's address",
                    self.server.issuer
                ));
            }
        } else if is_loopback(&issuer) && !bind_loopback && issuer.scheme() == "http" {
            self.warnings.push(format!(
                "listening on {bind}, beyond this machine, over plain http with the loopback \
                 issuer {}: set GATEHOUSE_ISSUER to the https address clients use",
                self.server.issuer
            ));
        }
    }

    /// Rejects settings that would make Gatehouse insecure or broken, with a readable reason.
    pub fn validate(&self) -> anyhow::Result<()> {
        check_database_url(&self.database.url)?;
        if !(8..=1024).contains(&self.passwords.min_length) {
            anyhow::bail!("passwords.min_length must be between 8 and 1024");
        }
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
        if self.tokens.access_token_ttl_secs < 1
            || self.tokens.refresh_token_ttl_secs < 1
            || self.tokens.id_token_ttl_secs < 1
        {
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

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn unknown_environment_settings_are_refused_with_the_closest_name() {
        let err = Settings::load_from(
            None,
            env(&[("GATEHOUSE_TOKENS__ACCES_TOKEN_TTL_SECS", "60")]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("GATEHOUSE_TOKENS__ACCES_TOKEN_TTL_SECS"),
            "{err}"
        );
        assert!(
            err.contains("did you mean `tokens.access_token_ttl_secs`"),
            "{err}"
        );
        let err = Settings::load_from(None, env(&[("GATEHOUSE_SERVR__BIND", "127.0.0.1:1")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`server.bind`"), "{err}");
        // Variables that name no section are not settings (GATEHOUSE_MASTER_KEY, test variables).
        assert!(Settings::load_from(None, env(&[("GATEHOUSE_SOMETHING_ELSE", "x")])).is_ok());
    }

    #[test]
    fn unknown_file_settings_are_refused_with_the_closest_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gatehouse.toml");
        std::fs::write(&path, "[server]\nbnid = \"127.0.0.1:9000\"\n").unwrap();
        let err = Settings::load_from(Some(&path), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`server.bnid`"), "{err}");
        assert!(err.contains("did you mean `server.bind`"), "{err}");
        std::fs::write(&path, "[server]\nbind = \"127.0.0.1:9000\"\n").unwrap();
        let ok = Settings::load_from(Some(&path), env(&[])).unwrap();
        assert_eq!(
            ok.server.issuer, "http://127.0.0.1:9000",
            "the file's bind moves it too"
        );
    }

    #[test]
    fn database_urls_that_would_lose_data_or_are_typos_are_refused() {
        for bad in [
            "",
            "  ",
            "sqlite:",
            "sqlite://",
            ":memory:",
            "sqlite::memory:",
            "mysql://x/y",
            "postgress://h/d",
        ] {
            assert!(
                Settings::load_from(None, env(&[("GATEHOUSE_DATABASE_URL", bad)])).is_err(),
                "{bad:?}"
            );
        }
        for good in [
            "sqlite://gatehouse.db",
            "sqlite:data/g.db",
            "data/g.db",
            "/var/lib/g.db",
            "postgres://u@h/d",
            "postgresql://h/d",
        ] {
            assert!(
                Settings::load_from(None, env(&[("GATEHOUSE_DATABASE_URL", good)])).is_ok(),
                "{good:?}"
            );
        }
    }

    #[test]
    fn config_show_names_each_value_and_its_source_with_secrets_redacted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gatehouse.toml");
        std::fs::write(&path, "[tokens]\naccess_token_ttl_secs = 300\n").unwrap();
        let s = Settings::load_from(
            Some(&path),
            env(&[
                ("GATEHOUSE_BIND", "127.0.0.1:9000"),
                (
                    "GATEHOUSE_DATABASE_URL",
                    "postgres://gh:hunter2@db/gatehouse",
                ),
                ("GATEHOUSE_LOCKOUT__MAX_FAILURES", "7"),
            ]),
        )
        .unwrap();
        let get = |key: &str| s.effective.iter().find(|e| e.key == key).unwrap().clone();
        assert_eq!(get("tokens.access_token_ttl_secs").value, 300);
        assert!(get("tokens.access_token_ttl_secs")
            .source
            .starts_with("file "));
        assert_eq!(
            get("lockout.max_failures").source,
            "env GATEHOUSE_LOCKOUT__MAX_FAILURES"
        );
        assert_eq!(get("server.bind").source, "env GATEHOUSE_BIND");
        assert_eq!(get("server.issuer").value, "http://127.0.0.1:9000");
        assert_eq!(get("server.issuer").source, "server.bind");
        assert_eq!(get("jwks.max_age_secs").source, "default");
        let db = get("database.url");
        assert!(!db.value.to_string().contains("hunter2"), "{db:?}");
        assert_eq!(db.value, "postgres://gh:***@db/gatehouse");
    }

    #[test]
    fn issuer_follows_a_loopback_bind_unless_given() {
        let moved =
            Settings::load_from(None, env(&[("GATEHOUSE_BIND", "127.0.0.1:9000")])).unwrap();
        assert_eq!(moved.server.issuer, "http://127.0.0.1:9000");
        assert!(moved.warnings.is_empty());
        let v6 = Settings::load_from(None, env(&[("GATEHOUSE_BIND", "[::1]:9000")])).unwrap();
        assert_eq!(v6.server.issuer, "http://[::1]:9000");

        let both = Settings::load_from(
            None,
            env(&[
                ("GATEHOUSE_BIND", "127.0.0.1:9000"),
                ("GATEHOUSE_ISSUER", "http://127.0.0.1:8080"),
            ]),
        )
        .unwrap();
        assert_eq!(both.server.issuer, "http://127.0.0.1:8080", "given: kept");
        assert!(both.warnings[0].contains("differ"), "{:?}", both.warnings);

        let public = Settings::load_from(None, env(&[("GATEHOUSE_BIND", "0.0.0.0:8080")])).unwrap();
        assert_eq!(public.server.issuer, "http://127.0.0.1:8080");
        assert!(
            public.warnings[0].contains("plain http"),
            "{:?}",
            public.warnings
        );

        let proxied = Settings::load_from(
            None,
            env(&[
                ("GATEHOUSE_BIND", "0.0.0.0:8080"),
                ("GATEHOUSE_ISSUER", "https://auth.example"),
            ]),
        )
        .unwrap();
        assert!(proxied.warnings.is_empty());
    }
}
