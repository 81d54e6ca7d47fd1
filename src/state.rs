//! Shared application state, built once at start and passed as `web::Data`.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::Settings;
use crate::document::Document;
use crate::error::AppError;
use crate::flows::client_cache::ClientCache;
use crate::keys::{KeySet, Keys, MasterKey};
use crate::oauth::metadata::Metadata;
use crate::passwords::Passwords;
use crate::store::{self, AnyConnection, Pool};

pub struct AppState {
    pub settings: Settings,
    pub pool: Pool,
    /// One slot per pooled connection: a request waits for its connection here, without a
    /// thread, and enters the blocking pool only once a connection is free. Waiting inside the
    /// blocking pool instead held a thread per waiting request (and that thread's allocator
    /// cache): at 64 concurrent `/authorize` requests the process grew by about a hundred threads.
    db_slots: Arc<tokio::sync::Semaphore>,
    /// SQLite only: the one connection the token endpoint's writes go through, with group commit
    /// (`store::writer`). `None` on PostgreSQL.
    pub writer: Option<store::writer::Writer>,
    pub keys: Keys,
    pub master: MasterKey,
    /// Key of the CSRF tokens' HMAC, derived from the master key.
    pub csrf_key: [u8; 32],
    /// Key of the audit log's address hash, derived from the master key.
    pub audit_key: [u8; 32],
    /// Key of the device cookies' HMAC (checklist 59), derived from the master key.
    pub device_key: [u8; 32],
    /// Key of the HMAC that derives a refresh token's successor from it.
    pub refresh_successor_key: [u8; 32],
    /// Key of the HMAC that derives an ID token's `sid` from its session.
    pub sid_key: [u8; 32],
    /// `Cache-Control` of the metadata and JWKS documents.
    pub documents_cache_control: String,
    pub passwords: Passwords,
    /// The metadata document, serialised once.
    pub metadata: Document,
    /// The service layer's clock.
    pub clock: Clock,
    /// Confidential clients that authenticated a moment ago (client_credentials' fast path).
    pub clients: ClientCache,
    /// The origins clients registered, for CORS before a client authenticates (`clients.cache_secs`).
    pub origins: crate::flows::origins::Origins,
    /// This server's metrics (served only on the `[metrics]` listener).
    pub metrics: crate::metrics::Metrics,
}

/// The service layer's clock: the wall clock, plus an offset that only tests move forward (to
/// let codes, tokens and sessions expire without rewriting rows). Clones share the offset.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset: Arc<AtomicI64>,
}

impl Clock {
    /// Unix seconds.
    pub fn now(&self) -> i64 {
        now() + self.offset.load(Ordering::Relaxed)
    }

    /// Moves this clock (and every clone of it) forward.
    pub fn advance(&self, secs: i64) {
        self.offset.fetch_add(secs, Ordering::Relaxed);
    }
}

/// The wall clock, in unix seconds. Only the service layer calls it (through [`Clock`] when it
/// serves requests); the core takes `now`.
#[expect(
    clippy::disallowed_methods,
    reason = "the one place that reads the clock"
)]
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// `now` (unix seconds, as [`Clock::now`] read it) in milliseconds, with the wall clock's
/// milliseconds within the second: the order of ids made within one second
/// (`secret::new_ordered_id`), never an input to a decision.
#[expect(
    clippy::disallowed_methods,
    reason = "only the sub-second order of ids, beside the one read of the clock"
)]
pub fn in_millis(now: i64) -> i64 {
    let within = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::from(d.subsec_millis()));
    now.saturating_mul(1000).saturating_add(within)
}

impl AppState {
    /// Connects, migrates, loads (or creates) the signing key: everything `serve` needs.
    pub fn init(settings: Settings, master: MasterKey) -> anyhow::Result<AppState> {
        let pool = store::pool(&settings.database.url, settings.database.pool_size)?;
        let mut conn = pool.get()?;
        let keyset = store::with_startup_lock(&mut conn, |conn| {
            store::migrate(conn)?;
            if settings.demo_enabled() {
                crate::registry::ensure_demo_client(conn, &settings.server.issuer, now())?;
            }
            KeySet::load_or_init(conn, &master, &settings.keys.algorithm, now())
        })?;
        drop(conn);
        let writer = match store::Backend::of(&settings.database.url) {
            store::Backend::Sqlite => Some(store::writer::Writer::start(
                &store::ConnectionManager::new(&settings.database.url),
            )?),
            store::Backend::Postgres => None,
        };
        let mut metadata = Metadata::new(&settings.server.issuer, &settings.keys.algorithm);
        if crate::flows::registration::enabled(&settings) {
            metadata = metadata.with_registration();
        }
        let metadata = Document::new(serde_json::to_vec(&metadata)?);
        let metrics = crate::metrics::Metrics::new();
        Ok(AppState {
            passwords: Passwords::new(&settings.passwords)?.counted_in(metrics.clone()),
            metrics,
            csrf_key: master.derive("gatehouse csrf v1"),
            audit_key: master.derive("gatehouse audit address v1"),
            device_key: master.derive("gatehouse device cookie v1"),
            refresh_successor_key: master.derive("gatehouse refresh successor v1"),
            sid_key: master.derive("gatehouse oidc sid v1"),
            documents_cache_control: format!("public, max-age={}", settings.jwks.max_age_secs),
            keys: Keys::new(keyset),
            master,
            metadata,
            clock: Clock::default(),
            clients: ClientCache::new(settings.clients.cache_secs),
            origins: crate::flows::origins::Origins::new(settings.clients.cache_secs),
            db_slots: Arc::new(tokio::sync::Semaphore::new(
                settings.database.pool_size.max(1) as usize,
            )),
            pool,
            writer,
            settings,
        })
    }

    /// A client address as the audit log keeps it (never the address itself).
    pub fn anonymise(&self, ip: Option<std::net::IpAddr>) -> Option<crate::audit::Address> {
        ip.map(|ip| crate::audit::anonymise(&self.audit_key, ip))
    }

    /// The keyed hash of the host behind a client address (`audit::host_hash`), for bounds per
    /// address kept in the database.
    pub fn host_hash(&self, ip: std::net::IpAddr) -> String {
        crate::audit::host_hash(&self.audit_key, ip)
    }

    pub fn issuer(&self) -> &str {
        &self.settings.server.issuer
    }

    /// Runs database work in the blocking pool with a pooled connection, once one of the
    /// connections' slots is free (waiting up to `store::POOL_WAIT`, as the pool itself would).
    pub async fn db<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut AnyConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<AppError> + Send + 'static,
    {
        let pool = self.pool.clone();
        let metrics = self.metrics.clone();
        let asked = std::time::Instant::now();
        let slot = tokio::time::timeout(store::POOL_WAIT, self.db_slots.clone().acquire_owned())
            .await
            .ok()
            .and_then(Result::ok)
            .ok_or_else(|| {
                E::from(AppError::new(anyhow::anyhow!(
                    "no database connection was free within {} s",
                    store::POOL_WAIT.as_secs()
                )))
            })?;
        actix_web::web::block(move || {
            let _slot = slot;
            let conn = pool.get();
            metrics.pool_waited(asked.elapsed().as_secs_f64());
            let mut conn = conn.map_err(|e| E::from(AppError::from(e)))?;
            f(&mut conn)
        })
        .await
        .map_err(|e| E::from(AppError::from(e)))?
    }

    /// Runs short database work that writes: on SQLite in the writer (`store::writer`), which
    /// answers once the work's transaction has committed; on PostgreSQL like [`AppState::db`].
    /// `f` must never wait on anything but the database (no password hashing, no signing).
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut AnyConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<AppError> + Send + 'static,
    {
        match &self.writer {
            Some(writer) => writer.run(f).await.map_err(|e| E::from(AppError::new(e)))?,
            None => self.db(f).await,
        }
    }
}
