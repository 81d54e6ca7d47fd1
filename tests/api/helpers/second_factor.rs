//! A user's TOTP second factor as the tests set it up and use it: enrolment as
//! `gatehouse user totp-enroll` does it, and the codes an authenticator app would show.

use gatehouse::mfa::TotpSecret;

use super::TestApp;

/// Enrols `username` as `gatehouse user totp-enroll` does; returns the secret and the recovery codes.
pub fn enrol(app: &TestApp, username: &str) -> (TotpSecret, Vec<String>) {
    let user_id = user_id(app, username);
    let enrolled = gatehouse::flows::mfa::enrol_now(
        &mut app.conn(),
        &app.state.master,
        "Gatehouse",
        &user_id,
        username,
        app.now(),
    )
    .expect("enrol")
    .expect("not enrolled before");
    let secret = secret_of(&enrolled.enrolment.secret);
    let codes = enrolled
        .recovery_codes
        .iter()
        .map(|c| c.display())
        .collect();
    (secret, codes)
}

pub fn user_id(app: &TestApp, username: &str) -> String {
    gatehouse::registry::find_user(&mut app.conn(), username)
        .expect("user exists")
        .id
}

/// The secret from its base32 text (what an authenticator app reads from the QR code).
pub fn secret_of(base32: &str) -> TotpSecret {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut bytes = Vec::new();
    let (mut buffer, mut bits) = (0u32, 0);
    for c in base32.trim_end_matches('=').bytes() {
        let v = ALPHABET.iter().position(|a| *a == c).expect("base32") as u32;
        buffer = (buffer << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            bytes.push((buffer >> bits) as u8);
        }
    }
    TotpSecret::from_bytes(bytes)
}

/// Moves the server's clock to the start of its next TOTP time step, so that a code made now
/// is still the same number of steps off when the server checks it (the clock is the wall
/// clock plus an offset, and would otherwise cross a step boundary in one run in thirty).
pub fn to_start_of_step(app: &TestApp) {
    app.advance_clock(30 - app.now().rem_euclid(30));
}

/// The code an authenticator shows `steps` time steps from the server's now.
pub fn code(app: &TestApp, secret: &TotpSecret, steps: i64) -> String {
    secret.code_at(app.now() + steps * 30).expect("code")
}
