//! Shared application state, built once at start and passed as `web::Data`.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::Settings;
use crate::error::AppError;
use crate::keys::bytes_body::Body;
use crate::keys::{KeySet, Keys, MasterKey};
use crate::oauth::metadata::Metadata;
use crate::passwords::Passwords;
use crate::store::{self, AnyConnection, Pool};

pub struct AppState {
    pub settings: Settings,
    pub pool: Pool,
    pub keys: Keys,
    pub master: MasterKey,
    /// Key of the CSRF tokens' HMAC, derived from the master key.
    pub csrf_key: [u8; 32],
    /// Key of the HMAC that derives a refresh token's successor from it.
    pub refresh_successor_key: [u8; 32],
    /// `Cache-Control` of the metadata and JWKS documents.
    pub documents_cache_control: String,
    pub passwords: Passwords,
    /// The metadata document, serialised once.
    pub metadata: Body,
}

/// The wall clock, in unix seconds. Only the service layer calls it; the core takes `now`.
#[expect(
    clippy::disallowed_methods,
    reason = "the one place that reads the clock"
)]
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl AppState {
    /// Connects, migrates, loads (or creates) the signing key: everything `serve` needs.
    pub fn init(settings: Settings, master: MasterKey) -> anyhow::Result<AppState> {
        let pool = store::pool(&settings.database.url, settings.database.pool_size)?;
        let mut conn = pool.get()?;
        let keyset = store::with_startup_lock(&mut conn, |conn| {
            store::migrate(conn)?;
            KeySet::load_or_init(conn, &master, &settings.keys.algorithm, now())
        })?;
        drop(conn);
        let metadata = Body::new(serde_json::to_vec(&Metadata::new(&settings.server.issuer))?);
        Ok(AppState {
            passwords: Passwords::new(&settings.passwords)?,
            csrf_key: master.derive("gatehouse csrf v1"),
            refresh_successor_key: master.derive("gatehouse refresh successor v1"),
            documents_cache_control: format!("public, max-age={}", settings.jwks.max_age_secs),
            keys: Keys::new(keyset),
            master,
            metadata,
            pool,
            settings,
        })
    }

    pub fn issuer(&self) -> &str {
        &self.settings.server.issuer
    }

    /// Runs database work in the blocking pool with a pooled connection.
    pub async fn db<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut AnyConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<AppError> + Send + 'static,
    {
        let pool = self.pool.clone();
        actix_web::web::block(move || {
            let mut conn = pool.get().map_err(|e| E::from(AppError::from(e)))?;
            f(&mut conn)
        })
        .await
        .map_err(|e| E::from(AppError::from(e)))?
    }
}
