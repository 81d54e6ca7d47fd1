//! Password hashing: argon2id, verified in the blocking pool, never more hashes at once than cores.
//! An unknown user costs the same as a wrong password: the input is checked against a dummy hash.

use std::sync::Arc;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

use crate::config::PasswordSettings;
use crate::secret::random_bytes;

/// Longest password accepted (bytes); longer ones are refused, never truncated.
pub const MAX_PASSWORD_LEN: usize = 1024;
/// Shortest password `user create` accepts.
pub const MIN_PASSWORD_LEN: usize = 8;

/// The hasher with its parameters, concurrency limit and dummy hash.
#[derive(Clone)]
pub struct Passwords {
    params: Params,
    permits: Arc<Semaphore>,
    dummy_hash: Arc<String>,
}

impl Passwords {
    pub fn new(settings: &PasswordSettings) -> anyhow::Result<Passwords> {
        let params = Params::new(
            settings.memory_kib,
            settings.iterations,
            settings.parallelism,
            None,
        )
        .map_err(|e| anyhow::anyhow!("invalid argon2 settings: {e}"))?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut p = Passwords {
            params,
            permits: Arc::new(Semaphore::new(cores)),
            dummy_hash: Arc::new(String::new()),
        };
        p.dummy_hash = Arc::new(p.hash(&crate::secret::hex(&random_bytes::<16>()))?);
        Ok(p)
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    /// Hashes a new password (PHC string with a random salt).
    pub fn hash(&self, password: &str) -> anyhow::Result<String> {
        self.argon2()
            .hash_password_with_salt(password.as_bytes(), &random_bytes::<16>())
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))
    }

    /// Checks a password against a stored hash, or against the dummy hash when there is none, so
    /// that both cost one argon2 computation. Synchronous: call it from the blocking pool.
    pub fn verify_blocking(&self, password: &str, stored: Option<&str>) -> bool {
        let hash = stored.unwrap_or(&self.dummy_hash);
        let Ok(parsed) = PasswordHash::new(hash) else {
            return false;
        };
        let ok = password.len() <= MAX_PASSWORD_LEN
            && self
                .argon2()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok();
        ok && stored.is_some()
    }

    /// [`Passwords::verify_blocking`] in the blocking pool, at most one hash per core at a time.
    pub async fn verify(&self, password: String, stored: Option<String>) -> anyhow::Result<bool> {
        let _permit = self.permits.acquire().await?;
        let this = self.clone();
        let ok = actix_web::web::block(move || this.verify_blocking(&password, stored.as_deref()))
            .await?;
        Ok(ok)
    }
}

/// Checks a new password's length: at least 8 characters, at most 1024 bytes (ASVS 6.2.9).
pub fn check_new(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(format!(
            "the password must have at least {MIN_PASSWORD_LEN} characters"
        ));
    }
    if password.len() > MAX_PASSWORD_LEN {
        return Err(format!(
            "the password must have at most {MAX_PASSWORD_LEN} bytes"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> Passwords {
        Passwords::new(&PasswordSettings {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        })
        .unwrap()
    }

    #[test]
    fn password_hashes_are_argon2id_salted() {
        let p = cheap();
        let a = p.hash("correct horse battery staple").unwrap();
        let b = p.hash("correct horse battery staple").unwrap();
        assert!(a.starts_with("$argon2id$"));
        assert_ne!(a, b);
        assert!(p.verify_blocking("correct horse battery staple", Some(&a)));
        assert!(!p.verify_blocking("wrong", Some(&a)));
        assert!(!p.verify_blocking("anything", None));
    }

    #[test]
    fn long_passwords_are_not_truncated() {
        let p = cheap();
        let long = "x".repeat(200);
        let h = p.hash(&long).unwrap();
        assert!(!p.verify_blocking(&"x".repeat(199), Some(&h)));
        assert!(p.verify_blocking(&long, Some(&h)));
    }
}
