//! Remembered consent: what a user allowed a client (scopes and audiences), so that a later
//! request for no more than that skips the consent page.

use diesel::prelude::*;

use super::schema::{clients, consents};
use super::{decode_list, encode_list, AnyConnection};
use crate::oauth::oidc::Consented;
use crate::on_backend;

/// A user's consent to one client, as the account page lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentEntry {
    pub client_id: String,
    pub client_name: String,
    pub consented: Consented,
    pub updated_at: i64,
}

/// What `user_id` allowed `client_id`, if anything.
pub fn find(
    conn: &mut AnyConnection,
    user_id: &str,
    client_id: &str,
) -> QueryResult<Option<Consented>> {
    on_backend!(conn, |c| consents::table
        .find((user_id, client_id))
        .select((consents::scopes, consents::audiences))
        .get_result::<(String, String)>(c)
        .optional())
    .map(|r| r.map(|(scopes, audiences)| consented(&scopes, &audiences)))
}

fn consented(scopes: &str, audiences: &str) -> Consented {
    Consented {
        scopes: scopes
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        audiences: decode_list(audiences),
    }
}

/// Stores what `user_id` now allows `client_id` (insert or replace).
pub fn save(
    conn: &mut AnyConnection,
    user_id: &str,
    client_id: &str,
    consent: &Consented,
    now: i64,
) -> QueryResult<()> {
    let scopes = consent.scopes.join(" ");
    let audiences = encode_list(&consent.audiences);
    let updated = diesel::update(consents::table.find((user_id, client_id)))
        .set((
            consents::scopes.eq(&scopes),
            consents::audiences.eq(&audiences),
            consents::updated_at.eq(now),
        ))
        .execute(conn)?;
    if updated == 0 {
        diesel::insert_into(consents::table)
            .values((
                consents::user_id.eq(user_id),
                consents::client_id.eq(client_id),
                consents::scopes.eq(&scopes),
                consents::audiences.eq(&audiences),
                consents::created_at.eq(now),
                consents::updated_at.eq(now),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// Every consent `user_id` gave, newest first, with the client's name.
pub fn list_for_user(conn: &mut AnyConnection, user_id: &str) -> QueryResult<Vec<ConsentEntry>> {
    consents::table
        .inner_join(clients::table.on(clients::id.eq(consents::client_id)))
        .filter(consents::user_id.eq(user_id))
        .order((consents::updated_at.desc(), consents::client_id.asc()))
        .select((
            consents::client_id,
            clients::name,
            consents::scopes,
            consents::audiences,
            consents::updated_at,
        ))
        .load::<(String, String, String, String, i64)>(conn)
        .map(|rows| {
            rows.into_iter()
                .map(
                    |(client_id, client_name, scopes, audiences, updated_at)| ConsentEntry {
                        client_id,
                        client_name,
                        consented: consented(&scopes, &audiences),
                        updated_at,
                    },
                )
                .collect()
        })
}

/// Forgets what `user_id` allowed `client_id`; true when there was something.
pub fn delete(conn: &mut AnyConnection, user_id: &str, client_id: &str) -> QueryResult<bool> {
    diesel::delete(consents::table.find((user_id, client_id)))
        .execute(conn)
        .map(|n| n == 1)
}
