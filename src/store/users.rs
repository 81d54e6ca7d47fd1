//! The user table.

use diesel::prelude::*;

use super::schema::users;
use super::{decode_list, encode_list, AnyConnection};
use crate::oauth::model::Account;
pub use crate::oauth::model::Profile;
use crate::on_backend;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = users)]
struct UserRow {
    id: String,
    username: String,
    password_hash: String,
    roles: String,
    disabled_at: Option<i64>,
    created_at: i64,
    name: Option<String>,
    email: Option<String>,
    email_verified: bool,
}

/// A user account. `password_hash` is an argon2id PHC string.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub username: String,
    pub password_hash: String,
    pub roles: Vec<String>,
    pub disabled_at: Option<i64>,
    pub created_at: i64,
    /// The OpenID Connect profile: the full name (`name`, scope `profile`), the address and
    /// whether it was verified (`email`, `email_verified`, scope `email`).
    pub profile: Profile,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("roles", &self.roles)
            .finish_non_exhaustive()
    }
}

impl User {
    pub fn insert(&self, conn: &mut AnyConnection) -> QueryResult<()> {
        diesel::insert_into(users::table)
            .values(UserRow {
                id: self.id.clone(),
                username: self.username.clone(),
                password_hash: self.password_hash.clone(),
                roles: encode_list(&self.roles),
                disabled_at: self.disabled_at,
                created_at: self.created_at,
                name: self.profile.name.clone(),
                email: self.profile.email.clone(),
                email_verified: self.profile.email_verified,
            })
            .execute(conn)
            .map(|_| ())
    }

    pub fn find(conn: &mut AnyConnection, id: &str) -> QueryResult<Option<User>> {
        on_backend!(conn, |c| users::table
            .find(id)
            .select(UserRow::as_select())
            .get_result(c)
            .optional())
        .map(|r| r.map(User::from))
    }

    /// The user with this login name in any letter case (`ALICE` finds `alice`): login names
    /// are unique whatever their case (the `users_username_lower` index). Case folding is the
    /// database's `LOWER`: ASCII letters on SQLite, every letter on PostgreSQL.
    pub fn find_by_username(conn: &mut AnyConnection, username: &str) -> QueryResult<Option<User>> {
        users::table
            .filter(
                diesel::dsl::sql::<diesel::sql_types::Bool>("LOWER(username) = LOWER(")
                    .bind::<diesel::sql_types::Text, _>(username)
                    .sql(")"),
            )
            .select(UserRow::as_select())
            .get_result(conn)
            .optional()
            .map(|r| r.map(User::from))
    }

    /// Users by login name, `limit` from `offset`, those whose name contains `search` (any case
    /// on PostgreSQL, ASCII case on SQLite) when given.
    pub fn list(
        conn: &mut AnyConnection,
        search: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> QueryResult<Vec<User>> {
        let mut query = users::table
            .order(users::username.asc())
            .limit(limit)
            .offset(offset)
            .select(UserRow::as_select())
            .into_boxed();
        if let Some(search) = search.filter(|s| !s.is_empty()) {
            query = query.filter(
                diesel::dsl::sql::<diesel::sql_types::Bool>("LOWER(username) LIKE LOWER(")
                    .bind::<diesel::sql_types::Text, _>(super::contains_pattern(search))
                    .sql(") ESCAPE '\\'"),
            );
        }
        query
            .load(conn)
            .map(|rows| rows.into_iter().map(User::from).collect())
    }

    /// Enables a disabled user again.
    pub fn set_enabled(conn: &mut AnyConnection, id: &str) -> QueryResult<()> {
        diesel::update(users::table.find(id))
            .set(users::disabled_at.eq(None::<i64>))
            .execute(conn)
            .map(|_| ())
    }

    /// Deletes a user; sessions, grants (with their codes and refresh tokens), factors and
    /// failure counts go with it (foreign keys).
    pub fn delete(conn: &mut AnyConnection, id: &str) -> QueryResult<bool> {
        diesel::delete(users::table.find(id))
            .execute(conn)
            .map(|n| n == 1)
    }

    /// Marks the user disabled from `now` on.
    pub fn set_disabled(conn: &mut AnyConnection, id: &str, now: i64) -> QueryResult<()> {
        diesel::update(users::table.find(id))
            .set(users::disabled_at.eq(Some(now)))
            .execute(conn)
            .map(|_| ())
    }

    /// Replaces the roles.
    pub fn set_roles(conn: &mut AnyConnection, id: &str, roles: &[String]) -> QueryResult<()> {
        diesel::update(users::table.find(id))
            .set(users::roles.eq(encode_list(roles)))
            .execute(conn)
            .map(|_| ())
    }

    /// Replaces the profile claims.
    pub fn set_profile(conn: &mut AnyConnection, id: &str, profile: &Profile) -> QueryResult<()> {
        diesel::update(users::table.find(id))
            .set((
                users::name.eq(&profile.name),
                users::email.eq(&profile.email),
                users::email_verified.eq(profile.email_verified),
            ))
            .execute(conn)
            .map(|_| ())
    }

    /// Replaces the password hash.
    pub fn set_password_hash(conn: &mut AnyConnection, id: &str, hash: &str) -> QueryResult<()> {
        diesel::update(users::table.find(id))
            .set(users::password_hash.eq(hash))
            .execute(conn)
            .map(|_| ())
    }

    pub fn is_active(&self) -> bool {
        self.disabled_at.is_none()
    }

    /// The user as the protocol core sees it.
    pub fn account(&self) -> Account {
        Account {
            id: self.id.clone().into(),
            roles: self.roles.clone(),
            active: self.is_active(),
            username: self.username.clone(),
            profile: self.profile.clone(),
        }
    }
}

/// The columns of `users` a join reads for [`account`].
pub type AccountColumns = (
    users::username,
    users::roles,
    users::disabled_at,
    users::name,
    users::email,
    users::email_verified,
);

/// [`AccountColumns`], in order.
pub const ACCOUNT_COLUMNS: AccountColumns = (
    users::username,
    users::roles,
    users::disabled_at,
    users::name,
    users::email,
    users::email_verified,
);

/// What a join read of [`ACCOUNT_COLUMNS`].
pub type AccountRow = (
    String,
    String,
    Option<i64>,
    Option<String>,
    Option<String>,
    bool,
);

/// The core's view of a user from the columns a join read.
pub fn account(id: &str, row: AccountRow) -> Account {
    let (username, roles, disabled_at, name, email, email_verified) = row;
    Account {
        id: id.into(),
        roles: decode_list(&roles),
        active: disabled_at.is_none(),
        username,
        profile: Profile {
            name,
            email,
            email_verified,
        },
    }
}

impl From<UserRow> for User {
    fn from(r: UserRow) -> Self {
        User {
            id: r.id,
            username: r.username,
            password_hash: r.password_hash,
            roles: decode_list(&r.roles),
            disabled_at: r.disabled_at,
            created_at: r.created_at,
            profile: Profile {
                name: r.name,
                email: r.email,
                email_verified: r.email_verified,
            },
        }
    }
}
