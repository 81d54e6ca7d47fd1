//! The connection pool: a connection back from a request a moment ago is handed out again
//! without a `SELECT 1`, yet one the server closed is never handed out twice, and one idle past
//! `store::RECENTLY_USED` is checked first (PostgreSQL only: the server can close connections).

use diesel::prelude::*;
use diesel::sql_types::Integer;
use gatehouse::store::{self, AnyConnection};

use crate::helpers::PgDatabase;

#[derive(QueryableByName)]
struct Backend {
    #[diesel(sql_type = Integer)]
    pid: i32,
}

fn backend_pid(conn: &mut AnyConnection) -> QueryResult<i32> {
    diesel::sql_query("SELECT pg_backend_pid() AS pid")
        .get_result::<Backend>(conn)
        .map(|b| b.pid)
}

/// Closes a connection from the server's side, as a restart or an administrator would.
fn terminate(db: &PgDatabase, pid: i32) {
    let mut admin = diesel::pg::PgConnection::establish(&db.url).expect("connect");
    diesel::sql_query(format!("SELECT pg_terminate_backend({pid})"))
        .execute(&mut admin)
        .expect("terminate");
    std::thread::sleep(std::time::Duration::from_millis(100));
}

/// A pool of one connection whose server has just closed it, with that connection's server pid;
/// `None` without PostgreSQL.
fn pool_whose_connection_was_closed(prefix: &str) -> Option<(PgDatabase, store::Pool, i32)> {
    let db = PgDatabase::create(prefix)?;
    let pool = store::pool(&db.url, 1).expect("pool");
    let pid = backend_pid(&mut pool.get().expect("connection")).expect("pid");
    terminate(&db, pid);
    Some((db, pool, pid))
}

#[test]
fn pool_never_hands_out_a_connection_the_server_closed_twice() {
    let Some((_db, pool, first)) = pool_whose_connection_was_closed("pool_closed") else {
        return;
    };
    // Back from a request a moment ago, the closed connection may be handed out unchecked: its
    // statement fails...
    let _ = backend_pid(&mut pool.get().expect("connection"));
    // ...and the next request gets a working connection, a new one.
    let second = backend_pid(&mut pool.get().expect("connection")).expect("a working connection");
    assert_ne!(first, second);
}

#[test]
fn pool_checks_a_connection_idle_past_the_bound_before_handing_it_out() {
    let Some((_db, pool, first)) = pool_whose_connection_was_closed("pool_idle") else {
        return;
    };
    std::thread::sleep(store::RECENTLY_USED);
    // Idle past the bound: checked, found closed, replaced; no request sees the failure.
    let second = backend_pid(&mut pool.get().expect("connection")).expect("a working connection");
    assert_ne!(first, second);
}
