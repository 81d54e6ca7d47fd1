//! The browser origins clients registered (`allowed_origins`), for CORS where no client has
//! authenticated yet: preflights, and the metadata and JWKS documents. Remembered for
//! `clients.cache_secs` (0: read each time), so a client registered, edited or deleted elsewhere
//! is seen within that bound; the token and revocation answers themselves check the
//! authenticated client's own list.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use crate::error::AppError;
use crate::oauth::model::Client;
use crate::state::AppState;

/// The set of registered origins and when it was read.
#[derive(Debug)]
pub struct Origins {
    ttl_secs: i64,
    loaded: RwLock<Option<(i64, Arc<HashSet<String>>)>>,
}

impl Origins {
    pub fn new(ttl_secs: i64) -> Origins {
        Origins {
            ttl_secs,
            loaded: RwLock::new(None),
        }
    }

    fn fresh(&self, now: i64) -> Option<Arc<HashSet<String>>> {
        let loaded = self.loaded.read().ok()?;
        let (at, set) = loaded.as_ref()?;
        (now - at < self.ttl_secs).then(|| set.clone())
    }

    fn store(&self, now: i64, set: Arc<HashSet<String>>) {
        if let Ok(mut loaded) = self.loaded.write() {
            *loaded = Some((now, set));
        }
    }
}

/// True when some client registered `origin`.
pub async fn is_registered(state: &AppState, origin: &str) -> Result<bool, AppError> {
    let now = state.clock.now();
    if let Some(set) = state.origins.fresh(now) {
        return Ok(set.contains(origin));
    }
    let set = state
        .db(|conn| Client::all_origins(conn).map_err(AppError::from))
        .await?;
    let set = Arc::new(set);
    state.origins.store(now, set.clone());
    Ok(set.contains(origin))
}
