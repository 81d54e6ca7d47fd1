//! The 256-bit master key: encrypts signing keys (and later TOTP secrets) at rest.
//!
//! It comes from `GATEHOUSE_MASTER_KEY` (base64url, base64 or hex of at least 32 bytes) or, on a
//! single node, from `keys/master.key`, generated with mode 0600 on first start. It is never logged.

use std::fmt;
use std::io::Write;
use std::path::Path;

use anyhow::Context;
use aws_lc_rs::digest;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use josekit::jwe::{Dir, JweHeader};

use crate::secret::{hex, random_bytes};

/// The master key. `Debug` prints only its id.
#[derive(Clone)]
pub struct MasterKey {
    bytes: [u8; 32],
    id: String,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey({})", self.id)
    }
}

impl MasterKey {
    /// Builds the key from raw bytes; the id (a hash prefix) names it in JWE headers.
    pub fn from_bytes(bytes: [u8; 32]) -> MasterKey {
        let digest = digest::digest(&digest::SHA256, &bytes);
        MasterKey {
            bytes,
            id: format!("mk-{}", &hex(digest.as_ref())[..16]),
        }
    }

    /// A fresh random key.
    pub fn generate() -> MasterKey {
        MasterKey::from_bytes(random_bytes::<32>())
    }

    /// Parses the environment or file form: base64url, base64 or hex, at least 256 bits.
    /// A longer value is hashed down to 256 bits.
    pub fn parse(text: &str) -> anyhow::Result<MasterKey> {
        let text = text.trim();
        // 64 hex digits are also valid base64url: read hex first so both spellings agree.
        let raw = decode_hex(text)
            .or_else(|| URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).ok())
            .or_else(|| STANDARD.decode(text).ok())
            .filter(|b| b.len() >= 32)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "the master key must be at least 256 bits, written as base64url, base64 or hex \
                     (generate one with: openssl rand -base64 32)"
                )
            })?;
        if raw.iter().all(|b| *b == raw[0]) {
            anyhow::bail!(
                "the master key is one byte repeated: use a random one \
                 (generate one with: openssl rand -base64 32)"
            );
        }
        let mut bytes = [0u8; 32];
        if raw.len() == 32 {
            bytes.copy_from_slice(&raw);
        } else {
            bytes.copy_from_slice(digest::digest(&digest::SHA256, &raw).as_ref());
        }
        Ok(MasterKey::from_bytes(bytes))
    }

    /// `GATEHOUSE_MASTER_KEY` when set, else `dir/master.key`, created (0600) when missing.
    pub fn load_or_create(env_value: Option<String>, dir: &Path) -> anyhow::Result<MasterKey> {
        match MasterKey::load(env_value, dir)? {
            Some(loaded) => Ok(loaded.key),
            None => MasterKey::create(dir),
        }
    }

    /// `GATEHOUSE_MASTER_KEY` when set, else `dir/master.key` when it exists; `None` when
    /// neither is there. A key file that others than its owner may read is noted in `warning`.
    pub fn load(env_value: Option<String>, dir: &Path) -> anyhow::Result<Option<Loaded>> {
        if let Some(value) = env_value.filter(|v| !v.trim().is_empty()) {
            let key = MasterKey::parse(&value).context("GATEHOUSE_MASTER_KEY")?;
            return Ok(Some(Loaded {
                key,
                source: "GATEHOUSE_MASTER_KEY".into(),
                warning: None,
            }));
        }
        let path = dir.join("master.key");
        if !path.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let key = MasterKey::parse(&text).with_context(|| format!("{}", path.display()))?;
        Ok(Some(Loaded {
            key,
            source: path.display().to_string(),
            warning: readable_by_others(&path).then(|| {
                format!(
                    "{} can be read by other users than its owner: chmod 600 it",
                    path.display()
                )
            }),
        }))
    }

    /// Generates a key into `dir/master.key` (the folder made owner-only when it is new, the
    /// file 0600); fails rather than replace an existing file.
    pub fn create(dir: &Path) -> anyhow::Result<MasterKey> {
        if !dir.exists() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                    .with_context(|| format!("restricting {}", dir.display()))?;
            }
        }
        let path = dir.join("master.key");
        let key = MasterKey::generate();
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        writeln!(file, "{}", URL_SAFE_NO_PAD.encode(key.bytes))
            .with_context(|| format!("writing {}", path.display()))?;
        tracing::info!(path = %path.display(), key_id = %key.id, "generated a new master key");
        Ok(key)
    }

    /// The id of the master key a JWE of [`MasterKey::seal`] names (its `kid`), read without
    /// the key.
    pub fn sealed_under(jwe: &str) -> Option<String> {
        let header = jwe.split('.').next()?;
        let json = URL_SAFE_NO_PAD.decode(header).ok()?;
        let value: serde_json::Value = serde_json::from_slice(&json).ok()?;
        value.get("kid")?.as_str().map(str::to_owned)
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Derives a purpose-bound subkey (HMAC-SHA256 of the purpose under the master key).
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        use aws_lc_rs::hmac;
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.bytes);
        let tag = hmac::sign(&key, purpose.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// Encrypts a secret as a compact JWE (`dir` + `A256GCM`, `kid` = this key's id).
    pub fn seal(&self, plaintext: &[u8]) -> anyhow::Result<String> {
        let mut header = JweHeader::new();
        header.set_content_encryption("A256GCM");
        header.set_key_id(self.id.clone());
        let encrypter = Dir
            .encrypter_from_bytes(self.bytes)
            .map_err(|e| anyhow::anyhow!("building the JWE encrypter: {e}"))?;
        josekit::jwe::serialize_compact(plaintext, &header, &encrypter)
            .map_err(|e| anyhow::anyhow!("encrypting a secret: {e}"))
    }

    /// Decrypts a JWE written by [`MasterKey::seal`].
    pub fn open(&self, jwe: &str) -> anyhow::Result<Vec<u8>> {
        let decrypter = Dir
            .decrypter_from_bytes(self.bytes)
            .map_err(|e| anyhow::anyhow!("building the JWE decrypter: {e}"))?;
        let (plain, header) = josekit::jwe::deserialize_compact(jwe, &decrypter).map_err(|_| {
            anyhow::anyhow!(
                "a secret in the database cannot be decrypted with master key {}: \
                 was it encrypted under another master key?",
                self.id
            )
        })?;
        if header.key_id() != Some(self.id.as_str()) {
            anyhow::bail!(
                "a secret names master key {:?}, not {}",
                header.key_id(),
                self.id
            );
        }
        Ok(plain)
    }
}

/// A master key as loaded, with where it came from.
#[derive(Debug)]
pub struct Loaded {
    pub key: MasterKey,
    /// `GATEHOUSE_MASTER_KEY` or the file's path.
    pub source: String,
    /// Set when the key file is readable by others than its owner.
    pub warning: Option<String>,
}

/// Whether group or others may read the file (always false where modes do not exist).
fn readable_by_others(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o044 != 0)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        false
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_under_the_same_master_key() {
        let a = MasterKey::generate();
        let b = MasterKey::generate();
        let sealed = a.seal(b"private key bytes").unwrap();
        assert!(!sealed.contains("private"));
        assert_eq!(a.open(&sealed).unwrap(), b"private key bytes");
        assert!(b.open(&sealed).is_err());
    }

    #[test]
    fn master_key_must_have_256_bits() {
        assert!(MasterKey::parse("c2hvcnQ").is_err());
        let raw: Vec<u8> = (1..=32).collect();
        let hex_key = hex(&raw);
        let b64 = URL_SAFE_NO_PAD.encode(&raw);
        let std64 = STANDARD.encode(&raw);
        let ids: Vec<String> = [hex_key, b64, std64]
            .iter()
            .map(|t| MasterKey::parse(t).unwrap().id().to_owned())
            .collect();
        assert_eq!(ids[0], ids[1], "hex and base64url spell the same key");
        assert_eq!(ids[1], ids[2]);
    }

    #[test]
    fn master_key_of_one_repeated_byte_is_refused() {
        for text in ["07".repeat(32), URL_SAFE_NO_PAD.encode([0u8; 32])] {
            let err = MasterKey::parse(&text).unwrap_err().to_string();
            assert!(err.contains("repeated"), "{err}");
        }
    }

    #[test]
    fn master_key_file_readable_by_others_is_noted() {
        let dir = tempfile::tempdir().unwrap();
        let key = MasterKey::create(dir.path()).unwrap();
        let loaded = MasterKey::load(None, dir.path()).unwrap().unwrap();
        assert_eq!(loaded.key.id(), key.id());
        assert!(loaded.warning.is_none(), "created 0600");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let path = dir.path().join("master.key");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            let loaded = MasterKey::load(None, dir.path()).unwrap().unwrap();
            assert!(loaded.warning.unwrap().contains("chmod 600"));
        }
        assert!(MasterKey::load(None, &dir.path().join("none"))
            .unwrap()
            .is_none());
    }

    #[test]
    fn sealed_under_names_the_master_key() {
        let key = MasterKey::generate();
        let sealed = key.seal(b"x").unwrap();
        assert_eq!(MasterKey::sealed_under(&sealed).as_deref(), Some(key.id()));
        assert_eq!(MasterKey::sealed_under("garbage"), None);
    }

    #[test]
    fn master_key_file_is_created_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let k1 = MasterKey::load_or_create(None, dir.path()).unwrap();
        let k2 = MasterKey::load_or_create(None, dir.path()).unwrap();
        assert_eq!(k1.id(), k2.id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("master.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
