//! What the tests read from Gatehouse's storage and registry directly, and the clock they move.
//! Every reach into `gatehouse::store` or `gatehouse::registry` from the integration tests goes
//! through here. Expiry is never faked by rewriting rows: the test moves the server's clock
//! (`AppState::clock`) past the stored expiry instead.

use diesel::prelude::*;
use gatehouse::flows::prune::Pruned;
use gatehouse::oauth::model::{Client, StoredRefresh};
use gatehouse::passwords::Passwords;
use gatehouse::registry::{self, NewClient, RegistryError};
use gatehouse::store::audit::{self, AuditRow};
use gatehouse::store::codes::AuthCode;
use gatehouse::store::keys::SigningKeyRow;
use gatehouse::store::schema::{auth_codes, clients, grants, interactions, refresh_tokens};
use gatehouse::store::{refresh, AnyConnection, Backend, ConnectionManager};

use super::{sha256_hex, stored_key, TestApp, TestClient, PASSWORD};

impl TestApp {
    /// The time the server reads (seconds since the epoch).
    pub fn now(&self) -> i64 {
        self.state.clock.now()
    }

    /// Lets `secs` seconds pass for the server.
    pub fn advance_clock(&self, secs: i64) {
        self.state.clock.advance(secs);
    }

    /// A direct database connection (what the CLI uses).
    pub fn conn(&self) -> AnyConnection {
        ConnectionManager::new(self.database_url.clone())
            .connect()
            .expect("connect")
    }

    pub fn backend(&self) -> Backend {
        Backend::of(&self.database_url)
    }

    fn passwords(&self) -> Passwords {
        Passwords::new(&self.settings.passwords).expect("passwords")
    }

    // --- the registry, as `gatehouse client …` and `gatehouse user …` use it

    /// Registers a client as `gatehouse client create` does, or says why not.
    pub fn try_register(&self, req: &NewClient) -> Result<TestClient, RegistryError> {
        let r = registry::create_client(
            &mut self.conn(),
            req,
            &gatehouse::registry::By::operator(self.now()),
        )?;
        Ok(TestClient {
            id: r.client.id.to_string(),
            secret: r.secret.map(|s| s.expose().to_owned()),
        })
    }

    /// Creates a user with [`PASSWORD`] as `gatehouse user create` does, or says why not.
    pub fn try_user(&self, username: &str) -> Result<String, RegistryError> {
        registry::create_user(
            &mut self.conn(),
            &self.passwords(),
            username,
            PASSWORD,
            &[],
            &Default::default(),
            &registry::By::operator(self.now()),
        )
        .map(|u| u.id)
    }

    /// Creates a user with [`PASSWORD`] as `gatehouse user create` does; returns its id.
    pub fn user(&self, username: &str, roles: &[&str]) -> String {
        let roles = super::strings(roles);
        let passwords = self.passwords();
        registry::create_user(
            &mut self.conn(),
            &passwords,
            username,
            PASSWORD,
            &roles,
            &Default::default(),
            &registry::By::operator(self.now()),
        )
        .expect("create user")
        .id
    }

    /// Gives a user a profile, as `gatehouse user update` does.
    pub fn set_profile(&self, username: &str, name: &str, email: &str, verified: bool) {
        let changes = registry::ProfileChanges {
            name: Some(Some(name.to_owned())),
            email: Some(Some(email.to_owned())),
            email_verified: Some(verified),
        };
        registry::set_profile(
            &mut self.conn(),
            username,
            &changes,
            &registry::By::operator(self.now()),
        )
        .expect("set profile");
    }

    /// `gatehouse user passwd`.
    pub fn set_password(&self, username: &str, password: &str) {
        let passwords = self.passwords();
        registry::set_password(
            &mut self.conn(),
            &passwords,
            username,
            password,
            &gatehouse::registry::By::operator(self.now()),
        )
        .expect("set password");
    }

    /// `gatehouse user disable`.
    pub fn disable_user(&self, username: &str) -> Result<(), RegistryError> {
        registry::disable_user(
            &mut self.conn(),
            username,
            &gatehouse::registry::By::operator(self.now()),
        )
        .map(drop)
    }

    /// `gatehouse user roles`.
    pub fn set_roles(&self, username: &str, roles: &[&str]) -> Result<(), RegistryError> {
        registry::set_roles(
            &mut self.conn(),
            username,
            &super::strings(roles),
            &registry::By::operator(self.now()),
        )
        .map(drop)
    }

    /// `gatehouse client delete`.
    pub fn delete_client(&self, client: &TestClient) {
        assert!(registry::delete_client(
            &mut self.conn(),
            &client.id,
            &gatehouse::registry::By::operator(self.now())
        )
        .expect("delete client"));
    }

    // --- the audit log

    /// Every audit event, oldest first (as `gatehouse audit tail` reads them).
    pub fn audit_events(&self) -> Vec<AuditRow> {
        let all = audit::Filter {
            limit: 100_000,
            ..Default::default()
        };
        audit::recent(&mut self.conn(), &all).expect("audit events")
    }

    /// The audit events named `event`, oldest first.
    pub fn audit_events_named(&self, event: &str) -> Vec<AuditRow> {
        self.audit_events()
            .into_iter()
            .filter(|e| e.event == event)
            .collect()
    }

    /// Writes `n` sign-out events at `at`, as the services do (a backlog for the purge).
    pub fn seed_audit_events(&self, n: usize, at: i64) {
        use gatehouse::audit::{Actor, AuditEvent, Entry, Outcome};
        use gatehouse::store::audit::record;
        let mut conn = self.conn();
        for _ in 0..n {
            let entry = Entry::new(AuditEvent::SignOut, Outcome::Success, Actor::System, at);
            record(&mut conn, &entry).expect("seed audit event");
        }
    }

    /// One round of the background task's audit purge, at the server's now.
    pub fn purge_audit(&self) -> usize {
        gatehouse::flows::audit::purge_expired(&self.state, self.now()).expect("purge")
    }

    /// Every value of every row of every table, each row as one text: `(table, row)`.
    pub fn every_stored_text(&self) -> Vec<(String, String)> {
        #[derive(QueryableByName)]
        struct Name {
            #[diesel(sql_type = diesel::sql_types::Text)]
            name: String,
        }
        #[derive(QueryableByName)]
        struct Row {
            #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
            row: Option<String>,
        }
        let mut conn = self.conn();
        let sqlite = self.backend() == Backend::Sqlite;
        let tables_sql = if sqlite {
            "SELECT name FROM sqlite_master WHERE type = 'table'".to_owned()
        } else {
            "SELECT table_name::text AS name FROM information_schema.tables \
             WHERE table_schema = 'public'"
                .to_owned()
        };
        let tables: Vec<Name> = diesel::sql_query(tables_sql)
            .load(&mut conn)
            .expect("tables");
        assert!(
            tables.iter().any(|t| t.name == "audit_events"),
            "no audit table"
        );
        let mut out = Vec::new();
        for table in tables.into_iter().map(|t| t.name) {
            let columns_sql = if sqlite {
                format!("SELECT name FROM pragma_table_info('{table}')")
            } else {
                format!(
                    "SELECT column_name::text AS name FROM information_schema.columns \
                     WHERE table_schema = 'public' AND table_name = '{table}'"
                )
            };
            let columns: Vec<Name> = diesel::sql_query(columns_sql)
                .load(&mut conn)
                .expect("columns");
            let row = columns
                .iter()
                .map(|c| format!("COALESCE(CAST(\"{}\" AS TEXT), '')", c.name))
                .collect::<Vec<_>>()
                .join(" || '|' || ");
            let rows: Vec<Row> = diesel::sql_query(format!("SELECT {row} AS row FROM \"{table}\""))
                .load(&mut conn)
                .expect("rows");
            out.extend(
                rows.into_iter()
                    .map(|r| (table.clone(), r.row.unwrap_or_default())),
            );
        }
        out
    }

    /// Rewrites a client's grant types (a JSON array), as an admin editing the row would.
    pub fn set_grant_types(&self, client: &TestClient, grant_types_json: &str) {
        diesel::update(clients::table.find(&client.id))
            .set(clients::grant_types.eq(grant_types_json))
            .execute(&mut self.conn())
            .expect("set grant types");
    }

    // --- codes

    /// (created_at, expires_at) of a stored code.
    pub fn code_times(&self, code: &str) -> (i64, i64) {
        auth_codes::table
            .find(stored_key(code))
            .select((auth_codes::created_at, auth_codes::expires_at))
            .first(&mut self.conn())
            .expect("stored code")
    }

    /// Lets time pass until a code has expired.
    pub fn expire_code(&self, code: &str) {
        let stored = AuthCode::find(&mut self.conn(), &stored_key(code))
            .expect("read code")
            .expect("stored code");
        self.advance_clock(stored.expires_at - self.now());
    }

    /// Every stored code challenge.
    pub fn code_challenges(&self) -> Vec<String> {
        auth_codes::table
            .select(auth_codes::code_challenge)
            .load(&mut self.conn())
            .expect("challenges")
    }

    /// How many authorization requests wait at the login or consent page.
    pub fn pending_interactions(&self) -> i64 {
        interactions::table
            .count()
            .get_result(&mut self.conn())
            .expect("count")
    }

    /// Every column of every stored code, as text.
    pub fn code_rows(&self) -> Vec<Vec<String>> {
        auth_codes::table
            .select((
                auth_codes::code_hash,
                auth_codes::grant_id,
                auth_codes::client_id,
                auth_codes::user_id,
                auth_codes::redirect_uri,
                auth_codes::scope,
                auth_codes::audience,
                auth_codes::code_challenge,
            ))
            .load::<(
                String,
                String,
                String,
                String,
                String,
                String,
                String,
                String,
            )>(&mut self.conn())
            .expect("auth_codes")
            .into_iter()
            .map(|(a, b, c, d, e, f, g, h)| vec![a, b, c, d, e, f, g, h])
            .collect()
    }

    // --- refresh tokens and their families

    /// Every column of every stored refresh token, as text.
    pub fn refresh_rows(&self) -> Vec<Vec<String>> {
        refresh_tokens::table
            .select((
                refresh_tokens::token_hash,
                refresh_tokens::grant_id,
                refresh_tokens::client_id,
                refresh_tokens::user_id,
                refresh_tokens::scope,
                refresh_tokens::audience,
            ))
            .load::<(String, String, String, Option<String>, String, String)>(&mut self.conn())
            .expect("refresh_tokens")
            .into_iter()
            .map(|(a, b, c, d, e, f)| vec![a, b, c, d.unwrap_or_default(), e, f])
            .collect()
    }

    /// The stored hash of a client's secret.
    pub fn client_secret_hash(&self, client: &TestClient) -> Option<String> {
        Client::find(&mut self.conn(), &client.id)
            .expect("read client")
            .expect("registered client")
            .secret_hash
    }

    /// How many refresh tokens have been rotated.
    pub fn rotated_refresh_tokens(&self) -> i64 {
        refresh_tokens::table
            .filter(refresh_tokens::rotated_at.is_not_null())
            .count()
            .get_result(&mut self.conn())
            .expect("count")
    }

    /// A refresh token as the server reads it (found by its stored key).
    pub fn stored_refresh(&self, refresh_token: &str) -> Option<StoredRefresh> {
        refresh::find(&mut self.conn(), &stored_key(refresh_token)).expect("read refresh token")
    }

    /// Stores refresh token `from` under the key of `to` instead: `to` then stands for it, as a
    /// token issued in another form (by an earlier Gatehouse) would.
    pub fn rekey_refresh_token(&self, from: &str, to: &str) {
        let n = diesel::update(refresh_tokens::table.find(stored_key(from)))
            .set(refresh_tokens::token_hash.eq(stored_key(to)))
            .execute(&mut self.conn())
            .expect("rekey refresh token");
        assert_eq!(n, 1, "one stored refresh token rekeyed");
    }

    /// When a refresh token expires.
    pub fn refresh_expiry(&self, refresh_token: &str) -> i64 {
        self.stored_refresh(refresh_token)
            .expect("stored refresh token")
            .expires_at
    }

    /// Lets time pass until one refresh token reached its idle expiry `secs_ago` seconds ago;
    /// returns how many stored tokens the value names (refresh tokens are found by their SHA-256).
    pub fn expire_refresh_token(&self, refresh_token: &str, secs_ago: i64) -> usize {
        let Some(stored) = self.stored_refresh(refresh_token) else {
            return 0;
        };
        self.advance_clock(stored.expires_at - self.now() + secs_ago);
        1
    }

    /// Lets `secs` seconds pass since the last rotations.
    pub fn age_rotations(&self, secs: i64) {
        self.advance_clock(secs);
    }

    /// (created_at, expires_at) of a user's first grant (refresh-token family).
    pub fn grant_times(&self, user_id: &str) -> (i64, i64) {
        grants::table
            .filter(grants::user_id.eq(user_id))
            .select((grants::created_at, grants::expires_at))
            .first(&mut self.conn())
            .expect("grant")
    }

    /// Lets time pass until every grant made so far has reached its absolute end.
    pub fn expire_grants(&self) {
        self.advance_clock(self.settings.tokens.refresh_token_ttl_secs);
    }

    // --- signing keys

    pub fn signing_keys(&self) -> Vec<SigningKeyRow> {
        SigningKeyRow::all(&mut self.conn()).expect("signing keys")
    }

    /// Lets `secs` seconds pass for the signing keys: every stored key time moves back by `secs`.
    pub fn age_signing_keys(&self, secs: i64) {
        diesel::sql_query(format!(
            "UPDATE signing_keys SET created_at = created_at - {secs}, \
             activate_at = activate_at - {secs}, retire_at = retire_at - {secs}, \
             expires_at = expires_at - {secs}"
        ))
        .execute(&mut self.conn())
        .expect("shift key times");
    }

    // --- bounded storage (checklist 58)

    /// One round of the background task's prune of expired rows, at the server's now.
    pub fn prune(&self) -> Pruned {
        gatehouse::flows::prune::prune_expired(&self.state, self.now()).expect("prune")
    }

    /// How many rows `table` holds.
    pub fn rows(&self, table: &str) -> i64 {
        self.rows_where(table, "1 = 1")
    }

    /// How many rows of `table` match the SQL condition `cond` (test code, no outside input).
    pub fn rows_where(&self, table: &str, cond: &str) -> i64 {
        #[derive(QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        diesel::sql_query(format!(
            "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM {table} WHERE {cond}"
        ))
        .get_result::<Count>(&mut self.conn())
        .expect("count")
        .n
    }

    /// Stores `n` cookieless sessions, each with one pending request of `client`, as `/authorize`
    /// does; they expire after `session.interaction_ttl_secs`.
    pub fn seed_pending(&self, client: &TestClient, n: usize) {
        use gatehouse::store::interactions::Interaction;
        use gatehouse::store::sessions::Session;
        let now = self.now();
        let expires_at = now + self.settings.session.interaction_ttl_secs;
        let mut conn = self.conn();
        for i in 0..n {
            let session = Session::anonymous(
                sha256_hex(&format!("seeded session {i}")),
                now,
                expires_at - now,
            );
            session.insert(&mut conn).expect("seed session");
            Interaction {
                id_hash: sha256_hex(&format!("seeded interaction {i}")),
                session_hash: session.id_hash,
                client_id: client.id.clone(),
                redirect_uri: super::REDIRECT.to_owned(),
                scope: "api:read".to_owned(),
                state: None,
                code_challenge: super::pkce().challenge,
                audience: super::AUDIENCE.to_owned(),
                created_at: now,
                expires_at,
                nonce: None,
                max_age: None,
                prompt: String::new(),
                login_hint: None,
            }
            .insert(&mut conn)
            .expect("seed interaction");
        }
    }

    /// Stores `n` grants of `client` and `user_id` that end `ttl` seconds from now, each with one
    /// refresh token; returns their ids.
    pub fn seed_grants(
        &self,
        client: &TestClient,
        user_id: &str,
        n: usize,
        ttl: i64,
    ) -> Vec<String> {
        use gatehouse::oauth::model::{NewGrant, NewRefresh};
        use gatehouse::store::grants as stored_grants;
        let now = self.now();
        let mut conn = self.conn();
        (0..n)
            .map(|_| {
                let id = gatehouse::secret::new_id("seeded");
                stored_grants::insert(
                    &mut conn,
                    &NewGrant {
                        id: id.clone().into(),
                        client_id: client.id.clone().into(),
                        user_id: Some(user_id.to_owned().into()),
                        session_hash: None,
                        created_at: now,
                        expires_at: now + ttl,
                        amr: vec!["pwd".into()],
                        auth_time: Some(now),
                        nonce: None,
                    },
                )
                .expect("seed grant");
                refresh::insert(
                    &mut conn,
                    &NewRefresh {
                        token_hash: sha256_hex(&id),
                        grant_id: id.clone().into(),
                        client_id: client.id.clone().into(),
                        user_id: Some(user_id.to_owned().into()),
                        scope: "api:read".to_owned(),
                        audience: super::AUDIENCE.to_owned(),
                        created_at: now,
                        expires_at: now + ttl,
                    },
                )
                .expect("seed refresh token");
                id
            })
            .collect()
    }

    /// Revokes a grant now, as logout or reuse detection does.
    pub fn revoke_grant(&self, id: &str) {
        gatehouse::store::grants::revoke(&mut self.conn(), id, self.now()).expect("revoke grant");
    }
}
