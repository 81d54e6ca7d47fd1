//! The second factor's service: enrolment, checking a code or a recovery code, disabling,
//! regenerating recovery codes and the administrator's reset. The account page, the sign-in's code
//! step, the password grant and the CLI all call these, so each rule is written once. Each
//! function works on a connection and takes `now`, so a caller can put it in its own transaction.

use crate::audit::{Actor, AuditEvent, Entry, Outcome};
use crate::keys::MasterKey;
use crate::mfa::{self, Code, RecoveryCode, TotpSecret};
use crate::store::audit::record;
use crate::store::mfa::{self as table, TotpFactor};
use crate::store::{write_tx, AnyConnection};

/// A second factor as presented: a TOTP code or a recovery code.
#[derive(Debug, Clone)]
pub enum Presented {
    Totp(Code),
    Recovery(RecoveryCode),
}

/// Why a second factor was refused (for the audit log; the user sees one message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not six digits / not a recovery code's shape.
    Malformed,
    /// No active factor.
    NotEnrolled,
    /// A code outside ±1 step, or a recovery code that is unknown or used.
    Wrong,
    /// A code whose step was already accepted (checklist 52).
    Replayed,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Malformed => "malformed",
            Refusal::NotEnrolled => "not enrolled",
            Refusal::Wrong => "wrong",
            Refusal::Replayed => "replayed",
        }
    }
}

/// Reads what a form or token request carries: `otp` (a TOTP code) or `recovery_code`.
/// `Err(Malformed)` when one is present but cannot be a code; `Ok(None)` when neither is.
pub fn presented(otp: Option<&str>, recovery: Option<&str>) -> Result<Option<Presented>, Refusal> {
    match (
        otp.filter(|s| !s.is_empty()),
        recovery.filter(|s| !s.is_empty()),
    ) {
        (Some(code), _) => Code::parse(code)
            .map(|c| Some(Presented::Totp(c)))
            .ok_or(Refusal::Malformed),
        (None, Some(code)) => RecoveryCode::parse(code)
            .map(|c| Some(Presented::Recovery(c)))
            .ok_or(Refusal::Malformed),
        (None, None) => Ok(None),
    }
}

fn open_secret(master: &MasterKey, factor: &TotpFactor) -> anyhow::Result<TotpSecret> {
    Ok(TotpSecret::from_bytes(master.open(&factor.secret_jwe)?))
}

/// Checks a second factor and, when it is good, uses it up: the TOTP step is recorded (a
/// compare-and-swap, so the same code is refused afterwards on every instance) or the recovery
/// code marked used. Returns the `amr` of a password plus this factor.
pub fn verify(
    conn: &mut AnyConnection,
    master: &MasterKey,
    user_id: &str,
    presented: &Presented,
    now: i64,
) -> anyhow::Result<Result<Vec<String>, Refusal>> {
    let Some(factor) = TotpFactor::find(conn, user_id)?.filter(TotpFactor::is_active) else {
        return Ok(Err(Refusal::NotEnrolled));
    };
    match presented {
        Presented::Totp(code) => {
            let secret = open_secret(master, &factor)?;
            let Some(step) = secret.matched_step(code, now) else {
                return Ok(Err(Refusal::Wrong));
            };
            if !mfa::accepts(step, factor.last_step)
                || !TotpFactor::accept_step(conn, user_id, step)?
            {
                return Ok(Err(Refusal::Replayed));
            }
            Ok(Ok(mfa::amr::password_and_otp()))
        }
        Presented::Recovery(code) => {
            if table::use_recovery_code(conn, user_id, code.hash().as_str(), now)? {
                Ok(Ok(mfa::amr::password_and_recovery_code()))
            } else {
                Ok(Err(Refusal::Wrong))
            }
        }
    }
}

/// The audit entry of a second factor's check.
pub fn audit_entry(
    result: &Result<Vec<String>, Refusal>,
    presented: Option<&Presented>,
    user_id: &str,
    now: i64,
) -> Entry {
    let via = match presented {
        Some(Presented::Recovery(_)) => "recovery_code",
        _ => "totp",
    };
    match result {
        Ok(_) => Entry::new(
            AuditEvent::MfaUsed,
            Outcome::Success,
            Actor::User(user_id.to_owned()),
            now,
        )
        .user(user_id.to_owned())
        .detail(via),
        Err(refusal) => Entry::new(
            AuditEvent::MfaFailed,
            Outcome::Failure,
            Actor::Anonymous,
            now,
        )
        .user(user_id.to_owned())
        .detail(format!("{via}: {}", refusal.as_str())),
    }
}

/// What enrolment shows: the secret as text, the otpauth URL and its QR code.
#[derive(Clone)]
pub struct Enrolment {
    pub secret: String,
    pub otpauth_url: String,
    pub qr: String,
}

impl std::fmt::Debug for Enrolment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Enrolment(..)")
    }
}

fn enrolment(secret: &TotpSecret, issuer_name: &str, account: &str) -> anyhow::Result<Enrolment> {
    let otpauth_url = secret.otpauth_url(issuer_name, account)?;
    let qr = mfa::qr_data_uri(&otpauth_url)?;
    Ok(Enrolment {
        secret: secret.base32(),
        otpauth_url,
        qr,
    })
}

/// Starts (or shows again) an enrolment: a pending factor with a new secret, or the pending one.
/// `None` when the user already has an active factor.
pub fn begin(
    conn: &mut AnyConnection,
    master: &MasterKey,
    issuer_name: &str,
    user_id: &str,
    account: &str,
    now: i64,
) -> anyhow::Result<Option<Enrolment>> {
    match TotpFactor::find(conn, user_id)? {
        Some(f) if f.is_active() => Ok(None),
        Some(f) => Ok(Some(enrolment(
            &open_secret(master, &f)?,
            issuer_name,
            account,
        )?)),
        None => {
            let secret = TotpSecret::generate();
            let pending = TotpFactor {
                user_id: user_id.to_owned(),
                secret_jwe: master.seal(secret.as_bytes())?,
                last_step: None,
                confirmed_at: None,
                created_at: now,
            };
            if !write_tx(conn, |conn| pending.put_pending(conn))? {
                return Ok(None);
            }
            Ok(Some(enrolment(&secret, issuer_name, account)?))
        }
    }
}

/// Why an enrolment was not confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfirmError {
    /// Nothing pending (never started, or already active).
    NothingPending,
    /// The code is not six digits.
    Malformed,
    /// The code does not match the pending secret.
    Wrong,
    /// What had to happen with it (finishing a sign-in) could not: the session is gone.
    Expired,
}

/// Activates the pending factor with one valid code, issues recovery codes and writes the audit
/// event, in one transaction; `also` runs in it too (a sign-in finished by enrolling) and returns
/// false to undo everything. The codes are returned for showing once.
pub fn confirm(
    conn: &mut AnyConnection,
    master: &MasterKey,
    user_id: &str,
    code: &str,
    now: i64,
    also: impl FnOnce(&mut AnyConnection) -> diesel::QueryResult<bool>,
) -> anyhow::Result<Result<Vec<RecoveryCode>, ConfirmError>> {
    let Some(code) = Code::parse(code) else {
        return Ok(Err(ConfirmError::Malformed));
    };
    let Some(pending) = TotpFactor::find(conn, user_id)?.filter(|f| !f.is_active()) else {
        return Ok(Err(ConfirmError::NothingPending));
    };
    let Some(step) = open_secret(master, &pending)?.matched_step(&code, now) else {
        return Ok(Err(ConfirmError::Wrong));
    };
    let codes = RecoveryCode::generate_set();
    let hashes: Vec<String> = codes.iter().map(|c| c.hash().0).collect();
    let confirmed = write_tx(conn, |conn| {
        if !TotpFactor::confirm(conn, user_id, &pending.secret_jwe, step, now)? {
            return Ok(Err(ConfirmError::NothingPending));
        }
        table::replace_recovery_codes(conn, user_id, &hashes, now)?;
        record(
            conn,
            &Entry::new(
                AuditEvent::MfaEnrolled,
                Outcome::Success,
                Actor::User(user_id.to_owned()),
                now,
            )
            .user(user_id.to_owned())
            .detail("totp"),
        )?;
        if !also(conn)? {
            return Err(diesel::result::Error::RollbackTransaction);
        }
        Ok(Ok(()))
    });
    match confirmed {
        Ok(Ok(())) => Ok(Ok(codes)),
        Ok(Err(e)) => Ok(Err(e)),
        Err(diesel::result::Error::RollbackTransaction) => Ok(Err(ConfirmError::Expired)),
        Err(e) => Err(e.into()),
    }
}

/// What the command line's enrolment prints.
pub struct Enrolled {
    pub enrolment: Enrolment,
    pub recovery_codes: Vec<RecoveryCode>,
}

/// Enrols and activates a factor at once (the administrator's `user totp-enroll`, which shows the
/// secret to the person enrolling). `None` when the user already has an active factor.
pub fn enrol_now(
    conn: &mut AnyConnection,
    master: &MasterKey,
    issuer_name: &str,
    user_id: &str,
    account: &str,
    now: i64,
) -> anyhow::Result<Option<Enrolled>> {
    let secret = TotpSecret::generate();
    let shown = enrolment(&secret, issuer_name, account)?;
    let sealed = master.seal(secret.as_bytes())?;
    let codes = RecoveryCode::generate_set();
    let hashes: Vec<String> = codes.iter().map(|c| c.hash().0).collect();
    let done = write_tx(conn, |conn| {
        let pending = TotpFactor {
            user_id: user_id.to_owned(),
            secret_jwe: sealed.clone(),
            last_step: None,
            confirmed_at: None,
            created_at: now,
        };
        if !pending.put_pending(conn)? {
            return Ok(false);
        }
        // Activated without a code: the step before the first one a code can match.
        let before = now / mfa::STEP_SECS as i64 - i64::from(mfa::SKEW_STEPS) - 1;
        if !TotpFactor::confirm(conn, user_id, &sealed, before, now)? {
            return Err(diesel::result::Error::RollbackTransaction);
        }
        table::replace_recovery_codes(conn, user_id, &hashes, now)?;
        record(
            conn,
            &Entry::new(
                AuditEvent::MfaEnrolled,
                Outcome::Success,
                Actor::Operator,
                now,
            )
            .user(user_id.to_owned())
            .detail("totp, command line"),
        )?;
        Ok::<_, diesel::result::Error>(true)
    })?;
    Ok(done.then_some(Enrolled {
        enrolment: shown,
        recovery_codes: codes,
    }))
}

/// Turns the factor off after a current TOTP code (the user's own choice). The code is checked
/// and used up as at sign-in; a refusal is the caller's to record (with the lockout's count).
pub fn disable(
    conn: &mut AnyConnection,
    master: &MasterKey,
    user_id: &str,
    code: &str,
    now: i64,
) -> anyhow::Result<Result<(), Refusal>> {
    with_current_code(conn, master, user_id, code, now, |conn| {
        TotpFactor::delete(conn, user_id)?;
        record(
            conn,
            &Entry::new(
                AuditEvent::MfaDisabled,
                Outcome::Success,
                Actor::User(user_id.to_owned()),
                now,
            )
            .user(user_id.to_owned()),
        )?;
        Ok(())
    })
}

/// New recovery codes after a current TOTP code; the old ones stop working. A refusal is the
/// caller's to record.
pub fn regenerate_recovery_codes(
    conn: &mut AnyConnection,
    master: &MasterKey,
    user_id: &str,
    code: &str,
    now: i64,
) -> anyhow::Result<Result<Vec<RecoveryCode>, Refusal>> {
    with_current_code(conn, master, user_id, code, now, |conn| {
        let codes = RecoveryCode::generate_set();
        let hashes: Vec<String> = codes.iter().map(|c| c.hash().0).collect();
        table::replace_recovery_codes(conn, user_id, &hashes, now)?;
        record(
            conn,
            &Entry::new(
                AuditEvent::RecoveryCodesRegenerated,
                Outcome::Success,
                Actor::User(user_id.to_owned()),
                now,
            )
            .user(user_id.to_owned()),
        )?;
        Ok(codes)
    })
}

/// Runs `then` in one transaction with the check of a current TOTP code (used up as at sign-in),
/// when the code is good.
fn with_current_code<T>(
    conn: &mut AnyConnection,
    master: &MasterKey,
    user_id: &str,
    code: &str,
    now: i64,
    then: impl FnOnce(&mut AnyConnection) -> anyhow::Result<T>,
) -> anyhow::Result<Result<T, Refusal>> {
    let Some(code) = Code::parse(code) else {
        return Ok(Err(Refusal::Malformed));
    };
    write_tx(conn, |conn| {
        if let Err(refusal) = verify(conn, master, user_id, &Presented::Totp(code), now)? {
            return Ok(Err(refusal));
        }
        then(conn).map(Ok)
    })
}

/// The administrator's reset: removes the factor (active or pending) and the recovery codes.
/// True when there was something to remove.
pub fn reset(
    conn: &mut AnyConnection,
    user_id: &str,
    actor: Actor,
    now: i64,
) -> anyhow::Result<bool> {
    Ok(write_tx(conn, |conn| {
        let removed = TotpFactor::delete(conn, user_id)?;
        if removed {
            record(
                conn,
                &Entry::new(AuditEvent::MfaReset, Outcome::Success, actor, now)
                    .user(user_id.to_owned()),
            )?;
        }
        Ok::<_, diesel::result::Error>(removed)
    })?)
}
