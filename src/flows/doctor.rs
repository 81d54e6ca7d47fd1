//! `gatehouse doctor`'s reading: the clients, the administrators with their second factor and
//! the signing keys from the database, and where the master key comes from. The checks
//! themselves are `doctor`'s plain functions.

use crate::config::Settings;
use crate::doctor::{Admin, MasterKeySource, Observed};
use crate::keys::KeyInfo;
use crate::mfa::ADMIN_ROLE;
use crate::oauth::model::Client;
use crate::store::keys::SigningKeyRow;
use crate::store::mfa::TotpFactor;
use crate::store::users::User;
use crate::store::AnyConnection;

/// Users read per query while looking for administrators.
const PAGE: i64 = 500;

/// Reads what the checks look at; writes nothing.
pub fn observe(
    conn: &mut AnyConnection,
    settings: &Settings,
    now: i64,
) -> anyhow::Result<Observed> {
    let clients = Client::list(conn)?;
    let keys = KeyInfo::list(&SigningKeyRow::all(conn)?, now);
    let mut admins = Vec::new();
    let mut offset = 0;
    loop {
        let users = User::list(conn, None, PAGE, offset)?;
        for u in &users {
            if u.is_active() && u.roles.iter().any(|r| r == ADMIN_ROLE) {
                let has_totp = TotpFactor::find(conn, &u.id)?.is_some_and(|f| f.is_active());
                admins.push(Admin {
                    username: u.username.clone(),
                    has_totp,
                });
            }
        }
        if (users.len() as i64) < PAGE {
            break;
        }
        offset += PAGE;
    }
    Ok(Observed {
        now,
        clients,
        admins,
        keys,
        master_key: master_key_source(settings),
    })
}

/// `GATEHOUSE_MASTER_KEY` when set, else `keys.dir/master.key` with its permission bits.
pub fn master_key_source(settings: &Settings) -> MasterKeySource {
    if std::env::var("GATEHOUSE_MASTER_KEY").is_ok_and(|v| !v.trim().is_empty()) {
        return MasterKeySource::Environment;
    }
    let path = settings.keys.dir.join("master.key");
    match std::fs::metadata(&path) {
        Ok(meta) => MasterKeySource::File {
            mode: file_mode(&meta),
            path,
        },
        Err(_) => MasterKeySource::Missing { path },
    }
}

#[cfg(unix)]
fn file_mode(meta: &std::fs::Metadata) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    Some(meta.permissions().mode())
}

#[cfg(not(unix))]
fn file_mode(_: &std::fs::Metadata) -> Option<u32> {
    None
}
