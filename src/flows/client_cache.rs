//! Clients that authenticated at the token endpoint a moment ago, remembered for
//! `clients.cache_secs` so that client_credentials needs no database hop, and the code exchange
//! and refresh of a public client (an SPA) need no read of the client in their write (DESIGN.md
//! budgets "one indexed read or a bounded cache").
//!
//! Only successes are remembered, and only a presentation that matches a remembered client is
//! answered from here: any other (unknown client, wrong or rotated secret, a secret sent for a
//! public client) goes to the database as before, so a failure costs what it always cost
//! (checklist 25) and a new secret works at once. An entry is only ever made for a registered
//! client that passed its authentication (its secret, or its id for a public client), so
//! requests naming unknown clients cannot grow the cache: it holds at most the registered
//! clients. Deleting or editing a client takes effect on every instance within
//! `clients.cache_secs`.

use std::collections::HashMap;
use std::sync::RwLock;

use crate::oauth::client_auth::{presented_by, ClientCredentials};
use crate::oauth::model::Client;

/// The cache. Time is the service clock's unix seconds.
#[derive(Debug, Default)]
pub struct ClientCache {
    ttl_secs: i64,
    entries: RwLock<HashMap<String, (i64, Client)>>,
}

impl ClientCache {
    pub fn new(ttl_secs: i64) -> ClientCache {
        ClientCache {
            ttl_secs,
            entries: RwLock::new(HashMap::new()),
        }
    }

    /// The remembered client these credentials authenticate, if it was remembered less than
    /// `ttl_secs` before `now`.
    pub fn authenticate(&self, creds: &ClientCredentials, now: i64) -> Option<Client> {
        if self.ttl_secs <= 0 {
            return None;
        }
        let entries = self.entries.read().ok()?;
        let (at, client) = entries.get(&creds.client_id)?;
        (now < at + self.ttl_secs && presented_by(client, creds, now)).then(|| client.clone())
    }

    /// Forgets a client this instance changed (deleted, edited, or gave a new secret), so the
    /// change holds here at once; other instances follow within `ttl_secs`.
    pub fn forget(&self, client_id: &str) {
        if let Ok(mut entries) = self.entries.write() {
            entries.remove(client_id);
        }
    }

    /// Remembers a client that has just authenticated (with its secret when it has one).
    pub fn remember(&self, client: &Client, now: i64) {
        if self.ttl_secs <= 0 {
            return;
        }
        if let Ok(mut entries) = self.entries.write() {
            // Entries of clients no longer seen are dropped as new ones come.
            let ttl = self.ttl_secs;
            entries.retain(|_, (at, _)| now < *at + ttl);
            entries.insert(client.id.to_string(), (now, client.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::client_auth::AuthMethod;
    use crate::oauth::model::GrantType;
    use crate::secret::{PlainToken, TokenHash};

    const NOW: i64 = 1_800_000_000;

    fn machine() -> Client {
        Client {
            id: "cl_machine".into(),
            name: "machine".into(),
            secret_hash: Some(TokenHash::of("s3cret").0),
            redirect_uris: vec![],
            grant_types: vec![GrantType::ClientCredentials],
            scopes: vec![],
            audiences: vec!["https://api.example".into()],
            allowed_origins: vec![],
            created_at: 0,
            require_mfa: false,
            previous_secret: None,
            skip_consent: false,
            post_logout_redirect_uris: Vec::new(),
        }
    }

    fn creds(id: &str, secret: &str) -> ClientCredentials {
        ClientCredentials {
            client_id: id.into(),
            secret: Some(PlainToken::from_presented(secret)),
            method: AuthMethod::Basic,
        }
    }

    #[test]
    fn remembered_client_authenticates_until_the_bound() {
        let cache = ClientCache::new(5);
        assert_eq!(
            cache.authenticate(&creds("cl_machine", "s3cret"), NOW),
            None
        );
        cache.remember(&machine(), NOW);
        assert_eq!(
            cache.authenticate(&creds("cl_machine", "s3cret"), NOW + 4),
            Some(machine())
        );
        assert_eq!(
            cache.authenticate(&creds("cl_machine", "s3cret"), NOW + 5),
            None,
            "expired: the database decides again"
        );
    }

    #[test]
    fn client_cache_never_answers_a_wrong_secret() {
        let cache = ClientCache::new(5);
        cache.remember(&machine(), NOW);
        assert_eq!(cache.authenticate(&creds("cl_machine", "wrong"), NOW), None);
        assert_eq!(cache.authenticate(&creds("cl_other", "s3cret"), NOW), None);
    }

    #[test]
    fn public_client_is_remembered_by_its_id_and_never_with_a_secret() {
        let mut public = machine();
        public.secret_hash = None;
        let cache = ClientCache::new(5);
        cache.remember(&public, NOW);
        let by_id = ClientCredentials {
            client_id: "cl_machine".into(),
            secret: None,
            method: AuthMethod::None,
        };
        assert_eq!(cache.authenticate(&by_id, NOW + 1), Some(public));
        assert_eq!(
            cache.authenticate(&creds("cl_machine", "anything"), NOW + 1),
            None,
            "a secret sent for a public client goes to the database"
        );
        assert_eq!(cache.authenticate(&by_id, NOW + 5), None);
    }

    #[test]
    fn zero_bound_caches_nothing() {
        let off = ClientCache::new(0);
        off.remember(&machine(), NOW);
        assert!(off.entries.read().unwrap().is_empty());
        assert_eq!(off.authenticate(&creds("cl_machine", "s3cret"), NOW), None);
    }
}
