//! The device cookie (checklist 59; OWASP "Slow Down Online Guessing Attacks with Device
//! Cookies"): `v1.<user id>.<device id>.<issued at>.<mac>`, the MAC being HMAC-SHA256 over the
//! three values under a master-key subkey. No server row is needed to recognise it; its device id
//! names the browser's own failure counter ([`super::lockout::Device::Known`]).
//!
//! It proves only that this browser once signed in as this user: it never signs anyone in by
//! itself, so it is not a credential, and it is kept only to choose which counter an attempt uses.

use crate::secret::{constant_time_eq, hmac_b64};

/// Longest cookie value read; anything longer is not ours.
const MAX_LEN: usize = 256;
const VERSION: &str = "v1";

fn mac(key: &[u8; 32], user_id: &str, device_id: &str, issued_at: i64) -> String {
    hmac_b64(
        key,
        &["device cookie", user_id, device_id, &issued_at.to_string()],
    )
}

/// The cookie value for `user_id`'s device `device_id`, issued at `issued_at`.
pub fn sign(key: &[u8; 32], user_id: &str, device_id: &str, issued_at: i64) -> String {
    let mac = mac(key, user_id, device_id, issued_at);
    format!("{VERSION}.{user_id}.{device_id}.{issued_at}.{mac}")
}

/// The device id of a cookie whose MAC verifies, that names `user_id`, and that is younger than
/// `ttl_secs` at `now`; `None` for anything else (absent, malformed, forged, expired, another
/// user's), which then counts as an unknown device.
pub fn verify(
    key: &[u8; 32],
    value: &str,
    user_id: &str,
    now: i64,
    ttl_secs: i64,
) -> Option<String> {
    if value.len() > MAX_LEN {
        return None;
    }
    let mut parts = value.split('.');
    let (version, user, device, issued, presented) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    if parts.next().is_some() || version != VERSION || device.is_empty() {
        return None;
    }
    let issued_at: i64 = issued.parse().ok()?;
    if !constant_time_eq(presented, &mac(key, user, device, issued_at)) {
        return None;
    }
    let live = issued_at <= now && now < issued_at.saturating_add(ttl_secs);
    (user == user_id && live).then(|| device.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [3; 32];
    const NOW: i64 = 1_800_000_000;
    const TTL: i64 = 31_536_000;

    #[test]
    fn rule59_a_signed_cookie_names_its_device_for_its_user_only() {
        let cookie = sign(&KEY, "usr_a", "dev_1", NOW);
        assert_eq!(
            verify(&KEY, &cookie, "usr_a", NOW + 10, TTL).as_deref(),
            Some("dev_1")
        );
        assert_eq!(verify(&KEY, &cookie, "usr_b", NOW + 10, TTL), None);
    }

    #[test]
    fn rule59_forged_expired_or_malformed_cookies_are_unknown() {
        let cookie = sign(&KEY, "usr_a", "dev_1", NOW);
        assert_eq!(verify(&[4; 32], &cookie, "usr_a", NOW, TTL), None);
        assert_eq!(verify(&KEY, &cookie, "usr_a", NOW + TTL, TTL), None);
        assert_eq!(verify(&KEY, &cookie, "usr_a", NOW - 1, TTL), None);
        let other_device = cookie.replace("dev_1", "dev_2");
        assert_eq!(verify(&KEY, &other_device, "usr_a", NOW, TTL), None);
        let later = cookie.replace(&NOW.to_string(), &(NOW + 5).to_string());
        assert_eq!(verify(&KEY, &later, "usr_a", NOW + 10, TTL), None);
        for bad in [
            "",
            "v1",
            "v1.usr_a.dev_1.x.mac",
            &format!("{cookie}.extra"),
            &cookie.replacen("v1", "v2", 1),
            &"a".repeat(300),
        ] {
            assert_eq!(verify(&KEY, bad, "usr_a", NOW, TTL), None, "{bad:?}");
        }
    }
}
