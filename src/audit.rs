//! The audit log: security events with who, which client, what, the outcome and where from.
//!
//! Events are written by the service layer (`flows`, `registry`, `keys::rotation`), inside the
//! transaction of the change they describe when there is one, and each is also logged as one
//! `tracing` line with target `audit`. No event carries a secret, code, token or password: at most
//! a `jti`, a grant id or a hash prefix.
//!
//! A client address is never stored: [`anonymise`] keeps a keyed hash (HMAC-SHA256 under a
//! master-key subkey, so equal addresses can be correlated without being recoverable by someone
//! who reads the table) and the network prefix (IPv4 /24, IPv6 /48).

use std::fmt;
use std::net::IpAddr;

use crate::secret::{hmac_b64, new_id};

/// What happened. Stored by name ([`AuditEvent::as_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditEvent {
    /// A browser sign-in, or a password grant's password check.
    SignIn,
    SignOut,
    /// An access token issued by the code, password or client_credentials grant.
    TokenIssued,
    TokenRefreshed,
    RefreshReuseDetected,
    CodeReplayDetected,
    TokenRevoked,
    ClientCreated,
    ClientDeleted,
    UserCreated,
    UserDisabled,
    UserEnabled,
    UserDeleted,
    ClientUpdated,
    ClientSecretRotated,
    PasswordChanged,
    RolesChanged,
    KeyRotated,
    /// A TOTP factor activated (page or CLI).
    MfaEnrolled,
    /// A second factor accepted at sign-in or in the password grant (detail: `totp` or `recovery_code`).
    MfaUsed,
    /// A second factor refused: a wrong, malformed or replayed code.
    MfaFailed,
    /// The user turned TOTP off with a current code.
    MfaDisabled,
    /// An administrator removed a user's TOTP factor and recovery codes.
    MfaReset,
    /// New recovery codes replaced the old ones.
    RecoveryCodesRegenerated,
    /// Sign-in suspended after too many failures (detail: the factor and whether the device was known).
    LockedOut,
    /// An administrator cleared a user's failure counters and locks.
    Unlocked,
    /// A client registered itself (RFC 7591; detail: the initial access token's id, or open).
    ClientRegistered,
    /// An administrator created an initial access token for dynamic registration.
    RegistrationTokenCreated,
    /// An administrator revoked an initial access token.
    RegistrationTokenRevoked,
    /// A user's OpenID Connect profile (name, e-mail) changed.
    ProfileChanged,
    /// A user allowed a client scopes (remembered; detail: the scopes).
    ConsentGranted,
    /// A user withdrew the consent given to a client; its grants end.
    ConsentWithdrawn,
}

impl AuditEvent {
    pub const ALL: [AuditEvent; 32] = [
        AuditEvent::SignIn,
        AuditEvent::SignOut,
        AuditEvent::TokenIssued,
        AuditEvent::TokenRefreshed,
        AuditEvent::RefreshReuseDetected,
        AuditEvent::CodeReplayDetected,
        AuditEvent::TokenRevoked,
        AuditEvent::ClientCreated,
        AuditEvent::ClientDeleted,
        AuditEvent::UserCreated,
        AuditEvent::UserDisabled,
        AuditEvent::UserEnabled,
        AuditEvent::UserDeleted,
        AuditEvent::ClientUpdated,
        AuditEvent::ClientSecretRotated,
        AuditEvent::PasswordChanged,
        AuditEvent::RolesChanged,
        AuditEvent::KeyRotated,
        AuditEvent::MfaEnrolled,
        AuditEvent::MfaUsed,
        AuditEvent::MfaFailed,
        AuditEvent::MfaDisabled,
        AuditEvent::MfaReset,
        AuditEvent::RecoveryCodesRegenerated,
        AuditEvent::LockedOut,
        AuditEvent::Unlocked,
        AuditEvent::ClientRegistered,
        AuditEvent::RegistrationTokenCreated,
        AuditEvent::RegistrationTokenRevoked,
        AuditEvent::ProfileChanged,
        AuditEvent::ConsentGranted,
        AuditEvent::ConsentWithdrawn,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuditEvent::SignIn => "sign_in",
            AuditEvent::SignOut => "sign_out",
            AuditEvent::TokenIssued => "token_issued",
            AuditEvent::TokenRefreshed => "token_refreshed",
            AuditEvent::RefreshReuseDetected => "refresh_reuse_detected",
            AuditEvent::CodeReplayDetected => "code_replay_detected",
            AuditEvent::TokenRevoked => "token_revoked",
            AuditEvent::ClientCreated => "client_created",
            AuditEvent::ClientDeleted => "client_deleted",
            AuditEvent::UserCreated => "user_created",
            AuditEvent::UserDisabled => "user_disabled",
            AuditEvent::UserEnabled => "user_enabled",
            AuditEvent::UserDeleted => "user_deleted",
            AuditEvent::ClientUpdated => "client_updated",
            AuditEvent::ClientSecretRotated => "client_secret_rotated",
            AuditEvent::PasswordChanged => "password_changed",
            AuditEvent::RolesChanged => "roles_changed",
            AuditEvent::KeyRotated => "key_rotated",
            AuditEvent::MfaEnrolled => "mfa_enrolled",
            AuditEvent::MfaUsed => "mfa_used",
            AuditEvent::MfaFailed => "mfa_failed",
            AuditEvent::MfaDisabled => "mfa_disabled",
            AuditEvent::MfaReset => "mfa_reset",
            AuditEvent::RecoveryCodesRegenerated => "recovery_codes_regenerated",
            AuditEvent::LockedOut => "locked_out",
            AuditEvent::Unlocked => "unlocked",
            AuditEvent::ClientRegistered => "client_registered",
            AuditEvent::RegistrationTokenCreated => "registration_token_created",
            AuditEvent::RegistrationTokenRevoked => "registration_token_revoked",
            AuditEvent::ProfileChanged => "profile_changed",
            AuditEvent::ConsentGranted => "consent_granted",
            AuditEvent::ConsentWithdrawn => "consent_withdrawn",
        }
    }

    /// The event stored under `name`, if it is one of ours.
    pub fn parse(name: &str) -> Option<AuditEvent> {
        AuditEvent::ALL.into_iter().find(|e| e.as_str() == name)
    }
}

impl fmt::Display for AuditEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether what was attempted went through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// Refused: a wrong password, a replayed code, a reused refresh token.
    Failure,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
        }
    }
}

/// Who acted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A user, by id.
    User(String),
    /// A client, by id (a token request, a revocation).
    Client(String),
    /// An administrator at the command line (the registry's and `keys rotate`'s caller).
    Operator,
    /// Gatehouse itself: a scheduled task.
    System,
    /// Nobody we know: a failed sign-in with an unknown user name.
    Anonymous,
}

impl Actor {
    /// The stored form: the id, or `cli`, `system`, `anonymous`.
    pub fn as_str(&self) -> &str {
        match self {
            Actor::User(id) | Actor::Client(id) => id,
            Actor::Operator => "cli",
            Actor::System => "system",
            Actor::Anonymous => "anonymous",
        }
    }
}

/// A client address as the audit log keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// HMAC-SHA256 of the address under the audit subkey, base64url.
    pub hash: String,
    /// The network: `a.b.c.0/24` or an IPv6 `/48`.
    pub network: String,
}

/// The host an address stands for in a per-address bound: an IPv4 address itself (also when
/// mapped into IPv6), an IPv6 address by its /64 (one host commonly holds a whole /64).
pub fn host(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(std::net::Ipv6Addr::from(
            u128::from(v6) & !u128::from(u64::MAX),
        )),
        v4 => v4,
    }
}

/// A keyed hash of the [`host`] an address stands for: what a per-address bound kept in the
/// database stores instead of the address (equal hosts give equal hashes; the address cannot be
/// read back without the key).
pub fn host_hash(key: &[u8; 32], ip: IpAddr) -> String {
    hmac_b64(key, &["host", &host(ip).to_string()])
}

/// Anonymises an address: a keyed hash of the full address plus its /24 (IPv4) or /48 (IPv6)
/// network. An IPv4-mapped IPv6 address counts as the IPv4 address it carries.
pub fn anonymise(key: &[u8; 32], ip: IpAddr) -> Address {
    let ip = ip.to_canonical();
    let network = match ip {
        IpAddr::V4(v4) => ipnet::Ipv4Net::new(v4, 24).map(|n| n.trunc().to_string()),
        IpAddr::V6(v6) => ipnet::Ipv6Net::new(v6, 48).map(|n| n.trunc().to_string()),
    }
    // Both prefix lengths are valid, so this branch is never taken; it still never keeps the address.
    .unwrap_or_default();
    Address {
        hash: hmac_b64(key, &["audit address", &ip.to_string()]),
        network,
    }
}

/// One event, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: String,
    /// Unix seconds.
    pub at: i64,
    pub event: AuditEvent,
    pub outcome: Outcome,
    pub actor: Actor,
    /// The user the event is about.
    pub user_id: Option<String>,
    /// The client the event is about.
    pub client_id: Option<String>,
    pub address: Option<Address>,
    /// A short, secret-free note: a grant type, a grant id, a `jti`, a key id, a reason.
    pub detail: Option<String>,
}

impl Entry {
    /// An event at `now`, by `actor`, with nothing else known yet.
    pub fn new(event: AuditEvent, outcome: Outcome, actor: Actor, now: i64) -> Entry {
        Entry {
            id: new_id("ev"),
            at: now,
            event,
            outcome,
            actor,
            user_id: None,
            client_id: None,
            address: None,
            detail: None,
        }
    }

    pub fn user(mut self, user_id: impl Into<String>) -> Entry {
        self.user_id = Some(user_id.into());
        self
    }

    pub fn client(mut self, client_id: impl Into<String>) -> Entry {
        self.client_id = Some(client_id.into());
        self
    }

    pub fn address(mut self, address: Option<Address>) -> Entry {
        self.address = address;
        self
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Entry {
        self.detail = Some(detail.into());
        self
    }

    /// The JSON-log line of this event (target `audit`). An event that is only logged is made
    /// only when [`logged`] says these lines are on.
    pub fn log(&self) {
        tracing::info!(
            target: "audit",
            event = self.event.as_str(),
            outcome = self.outcome.as_str(),
            actor = self.actor.as_str(),
            user_id = self.user_id.as_deref(),
            client_id = self.client_id.as_deref(),
            network = self.address.as_ref().map(|a| a.network.as_str()),
            address_hash = self.address.as_ref().map(|a| a.hash.as_str()),
            detail = self.detail.as_deref(),
            "audit event"
        );
    }
}

/// Whether the log filter lets the `audit` lines through (target `audit` at info).
pub fn logged() -> bool {
    tracing::enabled!(target: "audit", tracing::Level::INFO)
}

/// Reads `--since`: unix seconds (digits only), or a duration before `now` such as `90s`, `15m`,
/// `1h` or `2d`. `None` when it is neither.
pub fn parse_since(text: &str, now: i64) -> Option<i64> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().ok();
    }
    let unit = match text.chars().last()? {
        's' => 1,
        'm' => 60,
        'h' => 3_600,
        'd' => 86_400,
        _ => return None,
    };
    let digits = &text[..text.len() - 1];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let amount: i64 = digits.parse().ok()?;
    Some(now.saturating_sub(amount.checked_mul(unit)?))
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ` (UTC), for the command line's human output.
pub fn format_utc(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let of_day = secs.rem_euclid(86_400);
    // Days to a civil date in the proleptic Gregorian calendar (eras of 400 years).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        of_day / 3_600,
        of_day % 3_600 / 60,
        of_day % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [7; 32];

    #[test]
    fn ipv4_keeps_only_the_slash_24_and_a_keyed_hash() {
        let a = anonymise(&KEY, "127.0.0.1".parse().unwrap());
        assert_eq!(a.network, "127.0.0.0/24");
        assert!(!a.hash.contains("127.0.0.1"));
        assert_eq!(a, anonymise(&KEY, "127.0.0.1".parse().unwrap()));
        assert_ne!(a.hash, anonymise(&KEY, "127.0.0.2".parse().unwrap()).hash);
        assert_ne!(
            a.hash,
            anonymise(&[8; 32], "127.0.0.1".parse().unwrap()).hash
        );
    }

    #[test]
    fn ipv6_keeps_only_the_slash_48() {
        let a = anonymise(&KEY, "2001:db8:abcd:12::1".parse().unwrap());
        assert_eq!(a.network, "2001:db8:abcd::/48");
        assert!(!a.network.contains(":12:"));
    }

    #[test]
    fn ipv4_mapped_ipv6_counts_as_ipv4() {
        let mapped = anonymise(&KEY, "::ffff:192.0.2.77".parse().unwrap());
        let plain = anonymise(&KEY, "192.0.2.77".parse().unwrap());
        assert_eq!(mapped, plain);
        assert_eq!(plain.network, "192.0.2.0/24");
    }

    #[test]
    fn since_reads_unix_seconds_or_a_duration_back() {
        let now = 1_000_000;
        assert_eq!(parse_since("1700000000", now), Some(1_700_000_000));
        assert_eq!(parse_since("90s", now), Some(now - 90));
        assert_eq!(parse_since("15m", now), Some(now - 900));
        assert_eq!(parse_since("1h", now), Some(now - 3_600));
        assert_eq!(parse_since("2d", now), Some(now - 172_800));
        for bad in ["", "h", "1w", "-1h", "1.5h", "abc", "1 h"] {
            assert_eq!(parse_since(bad, now), None, "{bad:?}");
        }
    }

    #[test]
    fn utc_times_read_as_calendar_dates() {
        assert_eq!(format_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_utc(1_795_942_861), "2026-11-29T09:01:01Z");
    }

    #[test]
    fn event_names_round_trip() {
        for e in AuditEvent::ALL {
            assert_eq!(AuditEvent::parse(e.as_str()), Some(e));
        }
        assert_eq!(AuditEvent::parse("nope"), None);
    }

    /// The audit lines of events that are only logged (a token issued, refreshed) are made only
    /// when the log filter lets target `audit` through at info.
    #[test]
    fn audit_lines_are_made_only_when_the_log_filter_lets_them_through() {
        let under = |filter: &str| {
            let subscriber = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_writer(std::io::sink)
                .finish();
            tracing::subscriber::with_default(subscriber, logged)
        };
        assert!(!under("warn"));
        assert!(!under("info,audit=warn"));
        assert!(under("info"));
        assert!(under("warn,audit=info"));
    }
}
