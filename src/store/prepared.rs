//! Statements of fixed text, kept prepared by each connection.
//!
//! Diesel prepares every `UPDATE` and every `sql_query` anew on each call (it cannot know that
//! their text does not change), and a statement sent through [`AnyConnection`] has its SQL text
//! rebuilt each time. The token endpoint's hot writes (consume a code, rotate a refresh token,
//! insert its successor) run once per request, on the SQLite writer's one connection or on a
//! PostgreSQL backend, so there the parse and plan would be paid again and again. Written here as
//! fixed text with `?` for each bound value, and run on the backend's own connection, they are
//! parsed once per connection and found in its statement cache after that (keyed by their text).
//!
//! [`on_backend!`](crate::on_backend) runs a DSL statement on the backend's own connection the
//! same way, for the hot reads.

use diesel::backend::Backend;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{BigInt, HasSqlType, Nullable, Text};
use diesel::{QueryResult, RunQueryDsl};

use super::AnyConnection;

/// A value bound to one `?` of a [`Prepared`] statement.
#[derive(Debug, Clone, Copy)]
pub enum Value<'a> {
    Int(i64),
    NullableInt(Option<i64>),
    Text(&'a str),
    NullableText(Option<&'a str>),
}

/// A statement of fixed text and its values, one per `?` in order.
#[derive(Debug, Clone, Copy)]
pub struct Prepared<'a> {
    sql: &'static str,
    values: &'a [Value<'a>],
}

impl<DB> QueryFragment<DB> for Prepared<'_>
where
    DB: Backend + HasSqlType<BigInt> + HasSqlType<Text>,
    i64: ToSql<BigInt, DB>,
    str: ToSql<Text, DB>,
    for<'s> Option<&'s str>: ToSql<Nullable<Text>, DB>,
    Option<i64>: ToSql<Nullable<BigInt>, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        let mut parts = self.sql.split('?');
        out.push_sql(parts.next().unwrap_or_default());
        let mut values = self.values.iter();
        for part in parts {
            match values.next() {
                Some(Value::Int(v)) => out.push_bind_param::<BigInt, _>(v)?,
                Some(Value::NullableInt(v)) => out.push_bind_param::<Nullable<BigInt>, _>(v)?,
                Some(Value::Text(v)) => out.push_bind_param::<Text, _>(*v)?,
                Some(Value::NullableText(v)) => out.push_bind_param::<Nullable<Text>, _>(v)?,
                None => return Err(mismatch(self.sql)),
            }
            out.push_sql(part);
        }
        if values.next().is_some() {
            return Err(mismatch(self.sql));
        }
        Ok(())
    }
}

fn mismatch(sql: &str) -> diesel::result::Error {
    diesel::result::Error::QueryBuilderError(
        format!("a prepared statement's values do not match its placeholders: {sql}").into(),
    )
}

/// The statement cache keys this by its text (no static query id), so each text is prepared
/// once per connection.
impl QueryId for Prepared<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<C> RunQueryDsl<C> for Prepared<'_> {}

/// Runs a statement of fixed text (`?` for each of `values`) on the backend's own connection;
/// the number of rows it changed.
pub fn execute(
    conn: &mut AnyConnection,
    sql: &'static str,
    values: &[Value<'_>],
) -> QueryResult<usize> {
    let statement = Prepared { sql, values };
    match conn {
        AnyConnection::Sqlite(c) => statement.execute(c),
        #[cfg(feature = "postgres")]
        AnyConnection::Postgresql(c) => statement.execute(c),
    }
}

/// Runs `$body` with `$c` bound to the backend's own connection inside an [`AnyConnection`]
/// (once per backend, so the body must compile for each): Diesel then finds the statement in
/// that connection's cache without building its text again.
#[macro_export]
macro_rules! on_backend {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::store::AnyConnection::Sqlite($c) => $body,
            #[cfg(feature = "postgres")]
            $crate::store::AnyConnection::Postgresql($c) => $body,
        }
    };
}

#[cfg(test)]
mod tests {
    use super::{execute, Value};
    use crate::store::AnyConnection;
    use diesel::connection::SimpleConnection as _;
    use diesel::Connection as _;

    fn memory() -> AnyConnection {
        let mut conn =
            AnyConnection::Sqlite(diesel::SqliteConnection::establish(":memory:").unwrap());
        conn.batch_execute("CREATE TABLE t (k TEXT PRIMARY KEY, n BIGINT, o TEXT)")
            .unwrap();
        conn
    }

    #[test]
    fn prepared_statement_binds_each_value_in_order() {
        let mut conn = memory();
        let insert = "INSERT INTO t (k, n, o) VALUES (?, ?, ?)";
        let n = execute(
            &mut conn,
            insert,
            &[Value::Text("a"), Value::Int(7), Value::NullableText(None)],
        );
        assert_eq!(n.unwrap(), 1);
        let n = execute(
            &mut conn,
            insert,
            &[
                Value::Text("b"),
                Value::Int(8),
                Value::NullableText(Some("x")),
            ],
        );
        assert_eq!(n.unwrap(), 1);
        let update = "UPDATE t SET n = ? WHERE k = ? AND o IS NULL";
        assert_eq!(
            execute(&mut conn, update, &[Value::Int(9), Value::Text("a")]).unwrap(),
            1
        );
        assert_eq!(
            execute(&mut conn, update, &[Value::Int(9), Value::Text("b")]).unwrap(),
            0
        );
    }

    #[test]
    fn prepared_statement_is_parsed_once_per_connection() {
        use diesel::connection::InstrumentationEvent;
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        let mut conn = memory();
        let parsed = Arc::new(AtomicUsize::new(0));
        let counter = parsed.clone();
        diesel::Connection::set_instrumentation(
            &mut conn,
            move |event: InstrumentationEvent<'_>| {
                if matches!(event, InstrumentationEvent::CacheQuery { .. }) {
                    counter.fetch_add(1, Ordering::SeqCst);
                }
            },
        );
        let update = "UPDATE t SET n = ? WHERE k = ? AND o IS NULL";
        for i in 0..5 {
            execute(&mut conn, update, &[Value::Int(i), Value::Text("a")]).unwrap();
        }
        assert_eq!(parsed.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn prepared_statement_with_too_few_or_too_many_values_is_an_error() {
        let mut conn = memory();
        let update = "UPDATE t SET n = ? WHERE k = ?";
        assert!(execute(&mut conn, update, &[Value::Int(1)]).is_err());
        assert!(execute(
            &mut conn,
            update,
            &[Value::Int(1), Value::Text("a"), Value::Text("b")]
        )
        .is_err());
    }
}
