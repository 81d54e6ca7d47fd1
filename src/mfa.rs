//! The second factor as plain functions: TOTP (RFC 6238) codes and secrets, recovery codes, and
//! the sign-in policy that says when a second factor is needed. No I/O and no clock: `now` is
//! passed in. The store keeps the secret sealed under the master key and the last accepted time
//! step (`store::mfa`); the services (`flows::mfa`, `flows::authorize`, the password grant)
//! combine the two.

use std::fmt;

use base64::Engine as _;
use totp_rs::{Algorithm, Builder, Secret, Totp};

use crate::secret::{random_bytes, TokenHash};

/// Digits in a code.
pub const DIGITS: usize = 6;
/// Seconds per time step (RFC 6238 §5.2 recommends 30).
pub const STEP_SECS: u64 = 30;
/// Steps accepted either side of the server's current one (checklist 53: at most ±1).
pub const SKEW_STEPS: u16 = 1;
/// Bytes of a TOTP secret: 160 bits, RFC 4226 §4's recommendation (checklist 53).
pub const SECRET_BYTES: usize = 20;
/// Recovery codes issued at once (each single use).
pub const RECOVERY_CODES: usize = 10;
/// Random bytes per recovery code: 80 bits, enough for a plain SHA-256 at rest.
const RECOVERY_CODE_BYTES: usize = 10;

/// `amr` values (RFC 8176) of a sign-in.
pub mod amr {
    /// A password.
    pub const PASSWORD: &str = "pwd";
    /// A one-time password (TOTP).
    pub const OTP: &str = "otp";
    /// More than one factor.
    pub const MFA: &str = "mfa";

    /// Password alone.
    pub fn password() -> Vec<String> {
        vec![PASSWORD.to_owned()]
    }

    /// Password and a TOTP code.
    pub fn password_and_otp() -> Vec<String> {
        vec![PASSWORD.to_owned(), OTP.to_owned(), MFA.to_owned()]
    }

    /// Password and a recovery code (a second factor, but not a one-time password from a device).
    pub fn password_and_recovery_code() -> Vec<String> {
        vec![PASSWORD.to_owned(), MFA.to_owned()]
    }

    /// True when the list names a second factor.
    pub fn has_second_factor(amr: &[String]) -> bool {
        amr.iter().any(|a| a == MFA)
    }
}

/// A TOTP secret. Its `Debug` hides the bytes; it is shown to the user once, at enrolment.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpSecret(Vec<u8>);

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret(..)")
    }
}

impl TotpSecret {
    /// 160 random bits from the operating system's CSPRNG.
    pub fn generate() -> TotpSecret {
        TotpSecret(random_bytes::<SECRET_BYTES>().to_vec())
    }

    /// A secret read back from the store (after the master key opened it).
    pub fn from_bytes(bytes: Vec<u8>) -> TotpSecret {
        TotpSecret(bytes)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The secret as authenticator apps take it typed in: RFC 4648 base32, no padding.
    pub fn base32(&self) -> String {
        Secret::new(self.0.clone().into_boxed_slice()).to_base32()
    }

    fn totp(&self, issuer: &str, account: &str) -> Result<Totp, MfaError> {
        Builder::new()
            .with_algorithm(Algorithm::SHA1)
            .with_digits(DIGITS as u8)
            .with_skew(SKEW_STEPS)
            .with_step_duration(STEP_SECS)
            .with_secret(self.0.clone())
            .with_issuer(Some(label(issuer)))
            .with_account_name(label(account))
            .build()
            .map_err(|_| MfaError::Secret)
    }

    /// The `otpauth://totp/…` URL of the enrolment QR code, naming the issuer and the account.
    pub fn otpauth_url(&self, issuer: &str, account: &str) -> Result<String, MfaError> {
        self.totp(issuer, account)?
            .to_url()
            .map_err(|_| MfaError::Secret)
    }

    /// The time step a well-formed `code` matches at `now`, within ±[`SKEW_STEPS`], if any.
    /// Accepting it once is the caller's part: [`accepts`] and the store's compare-and-swap.
    pub fn matched_step(&self, code: &Code, now: i64) -> Option<i64> {
        let now = u64::try_from(now).ok()?;
        let totp = self.totp("Gatehouse", "user").ok()?;
        totp.check(&code.0, now).and_then(|s| i64::try_from(s).ok())
    }

    /// The code of the step containing `now` (tests and the CLI's self-check).
    pub fn code_at(&self, now: i64) -> Result<String, MfaError> {
        let now = u64::try_from(now).map_err(|_| MfaError::Secret)?;
        Ok(self.totp("Gatehouse", "user")?.generate(now).to_string())
    }
}

/// A step is accepted only when it is later than the last one accepted (checklist 52: a code
/// is good once, and so is every earlier one).
pub fn accepts(step: i64, last_accepted: Option<i64>) -> bool {
    last_accepted.is_none_or(|last| step > last)
}

/// An otpauth label part: the URL format forbids `:` in the issuer and the account name.
fn label(text: &str) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| if c == ':' { '-' } else { c })
        .collect();
    if cleaned.trim().is_empty() {
        "account".to_owned()
    } else {
        cleaned
    }
}

/// Something the second factor refused to work with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MfaError {
    #[error("the TOTP secret is not usable")]
    Secret,
    #[error("the QR code could not be drawn")]
    Qr,
}

/// A code as typed: exactly six ASCII digits once spaces between groups are removed.
#[derive(Clone, PartialEq, Eq)]
pub struct Code(String);

impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Code(..)")
    }
}

impl Code {
    /// `None` for anything but six digits (a space between groups, as apps show them, is fine;
    /// tabs, newlines, signs and other characters are not).
    pub fn parse(input: &str) -> Option<Code> {
        let digits: String = input.chars().filter(|c| *c != ' ').collect();
        (digits.len() == DIGITS && digits.bytes().all(|b| b.is_ascii_digit()))
            .then_some(Code(digits))
    }
}

/// A recovery code as shown: `xxxx-xxxx-xxxx-xxxx` in lower-case base32.
#[derive(Clone, PartialEq, Eq)]
pub struct RecoveryCode(String);

impl fmt::Debug for RecoveryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RecoveryCode(..)")
    }
}

const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

impl RecoveryCode {
    /// A fresh set of [`RECOVERY_CODES`] codes.
    pub fn generate_set() -> Vec<RecoveryCode> {
        (0..RECOVERY_CODES)
            .map(|_| {
                let bytes = random_bytes::<RECOVERY_CODE_BYTES>();
                RecoveryCode(base32(&bytes))
            })
            .collect()
    }

    /// Reads a typed code: case, spaces and dashes do not matter. `None` when it cannot be one.
    pub fn parse(input: &str) -> Option<RecoveryCode> {
        let cleaned: String = input
            .chars()
            .filter(|c| *c != '-' && *c != ' ')
            .map(|c| c.to_ascii_lowercase())
            .collect();
        (cleaned.len() == RECOVERY_CODE_BYTES * 8 / 5
            && cleaned.bytes().all(|b| BASE32.contains(&b)))
        .then_some(RecoveryCode(cleaned))
    }

    /// What the store keeps: SHA-256 of the normalised code.
    pub fn hash(&self) -> TokenHash {
        TokenHash::of(&self.0)
    }

    /// The code for display, in groups of four.
    pub fn display(&self) -> String {
        self.0
            .as_bytes()
            .chunks(4)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join("-")
    }
}

fn base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 8 / 5 + 1);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(BASE32[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(BASE32[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// The enrolment QR code of an otpauth URL, as an SVG `data:` URI (the CSP allows `img-src data:`;
/// no script, no inline markup).
pub fn qr_data_uri(url: &str) -> Result<String, MfaError> {
    let code = qrcode::QrCode::new(url.as_bytes()).map_err(|_| MfaError::Qr)?;
    let svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build();
    Ok(format!(
        "data:image/svg+xml;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(svg)
    ))
}

/// Whether a sign-in needs a second factor: the client requires it, or the server requires it
/// for every client.
pub fn required(client_requires: bool, all_clients: bool) -> bool {
    client_requires || all_clients
}

/// The role whose holders administer Gatehouse.
pub const ADMIN_ROLE: &str = "admin";

/// Whether a session may use Gatehouse's own administration: the user has the `admin` role and
/// signed in with a second factor. Every admin page and admin API call by a user asks this.
pub fn admin_may_enter(roles: &[String], amr: &[String]) -> bool {
    roles.iter().any(|r| r == ADMIN_ROLE) && amr::has_second_factor(amr)
}

/// What comes after a correct password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterPassword {
    /// Signed in with the password alone.
    SignedIn,
    /// The user has TOTP: the code page.
    SecondFactor,
    /// A second factor is required and the user has none: enrolment first.
    Enrol,
}

pub fn after_password(has_factor: bool, required: bool) -> AfterPassword {
    match (has_factor, required) {
        (true, _) => AfterPassword::SecondFactor,
        (false, true) => AfterPassword::Enrol,
        (false, false) => AfterPassword::SignedIn,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn secret() -> TotpSecret {
        TotpSecret::from_bytes(b"12345678901234567890".to_vec())
    }

    #[test]
    fn rule53_secret_has_160_bits_from_the_csprng() {
        let a = TotpSecret::generate();
        let b = TotpSecret::generate();
        assert_eq!(a.as_bytes().len() * 8, 160);
        assert_ne!(a, b);
        assert_eq!(a.base32().len(), 32);
    }

    #[test]
    fn rfc6238_sha1_test_vector() {
        // RFC 6238 Appendix B, T = 59: 94287082 (8 digits); the 6-digit code is its last six.
        let code = Code::parse("287082").unwrap();
        assert_eq!(secret().matched_step(&code, 59), Some(1));
        assert_eq!(secret().code_at(59).unwrap(), "287082");
    }

    #[test]
    fn rule53_window_is_one_step_either_side() {
        let s = secret();
        let now = 1_000_000_000;
        let step = now / 30;
        for (offset, accepted) in [(-2, false), (-1, true), (0, true), (1, true), (2, false)] {
            let code = Code::parse(&s.code_at(now + offset * 30).unwrap()).unwrap();
            let got = s.matched_step(&code, now);
            if accepted {
                assert_eq!(got, Some(step + offset), "offset {offset}");
            } else {
                assert_eq!(got, None, "offset {offset}");
            }
        }
    }

    #[test]
    fn rule52_a_step_is_accepted_once() {
        assert!(accepts(10, None));
        assert!(accepts(11, Some(10)));
        assert!(!accepts(10, Some(10)));
        assert!(!accepts(9, Some(10)));
    }

    #[test]
    fn malformed_codes_are_refused() {
        for bad in [
            "",
            "12345",
            "1234567",
            "12a456",
            "+12345",
            "12\t3456",
            "123456\n",
            "１２３４５６",
        ] {
            assert!(Code::parse(bad).is_none(), "{bad:?}");
        }
        assert!(Code::parse("123 456").is_some());
    }

    #[test]
    fn recovery_codes_are_distinct_and_read_back_however_typed() {
        let set = RecoveryCode::generate_set();
        assert_eq!(set.len(), 10);
        let hashes: std::collections::BTreeSet<_> = set.iter().map(|c| c.hash().0).collect();
        assert_eq!(hashes.len(), 10);
        let shown = set[0].display();
        assert_eq!(shown.len(), 19);
        let typed = shown.to_uppercase().replace('-', " ");
        assert_eq!(RecoveryCode::parse(&typed).unwrap().hash(), set[0].hash());
        assert!(RecoveryCode::parse("not-a-code").is_none());
        assert!(RecoveryCode::parse("abcd-efgh-ijkl-mno1").is_none());
    }

    #[test]
    fn otpauth_url_names_issuer_and_account() {
        let url = secret().otpauth_url("Gatehouse", "ali:ce").unwrap();
        assert!(url.starts_with("otpauth://totp/Gatehouse:ali-ce?"), "{url}");
        assert!(url.contains("issuer=Gatehouse"), "{url}");
        assert!(
            url.contains(&format!("secret={}", secret().base32())),
            "{url}"
        );
        let qr = qr_data_uri(&url).unwrap();
        assert!(qr.starts_with("data:image/svg+xml;base64,"));
    }

    #[test]
    fn second_factor_policy() {
        assert!(!required(false, false));
        assert!(required(true, false));
        assert!(required(false, true));
        assert_eq!(after_password(true, false), AfterPassword::SecondFactor);
        assert_eq!(after_password(false, true), AfterPassword::Enrol);
        assert_eq!(after_password(false, false), AfterPassword::SignedIn);
    }

    #[test]
    fn admins_need_a_second_factor() {
        let admin = vec!["admin".to_owned()];
        assert!(!admin_may_enter(&admin, &amr::password()));
        assert!(admin_may_enter(&admin, &amr::password_and_otp()));
        assert!(admin_may_enter(&admin, &amr::password_and_recovery_code()));
        assert!(!admin_may_enter(
            &["user".to_owned()],
            &amr::password_and_otp()
        ));
    }

    #[test]
    fn debug_hides_secrets() {
        assert_eq!(format!("{:?}", secret()), "TotpSecret(..)");
        assert_eq!(format!("{:?}", Code::parse("123456").unwrap()), "Code(..)");
    }
}
