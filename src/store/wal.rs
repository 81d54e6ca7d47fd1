//! SQLite's write-ahead log, kept bounded (checklist 58).
//!
//! SQLite's automatic checkpoints copy the log into the database file after each commit, but
//! they start the log over only at a moment when no reader is using it. Under a steady stream of
//! overlapping reads (a flood of requests, each reading its client and session) that moment never
//! comes, and the `-wal` file grows by every write for as long as the load lasts. A `TRUNCATE`
//! checkpoint makes that moment: it holds new writers back, lets the readers still in the log
//! finish (new readers read the database file), starts the log over and truncates the file.

use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::Integer;

use super::{serialised, AnyConnection, SQLITE_BUSY_TIMEOUT_MS};

/// How long the checkpoint waits for the writer in progress and for the readers of the log:
/// writers queue behind it meanwhile, so it gives up (and tries again later) rather than hold
/// them for the full `busy_timeout`.
const CHECKPOINT_WAIT_MS: u32 = 500;

/// Pause between two attempts.
const RETRY_PAUSE: Duration = Duration::from_millis(2);

/// The answer of `PRAGMA wal_checkpoint(...)` (here and in the writer's checkpointer).
#[derive(QueryableByName)]
pub(super) struct CheckpointRow {
    /// 1 when the checkpoint could not finish (SQLITE_BUSY).
    #[diesel(sql_type = Integer)]
    pub busy: i32,
    /// The frames in the log (-1 when the database is not in WAL mode).
    #[diesel(sql_type = Integer)]
    pub log: i32,
    /// The frames of the log copied into the database (-1 when not in WAL mode).
    #[diesel(sql_type = Integer)]
    pub checkpointed: i32,
}

/// What [`truncate`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checkpoint {
    /// The log was copied into the database and truncated.
    Truncated,
    /// Writers or readers held on past the wait; the log is as it was, at most copied.
    Busy,
    /// PostgreSQL: there is no such log to keep.
    NotSqlite,
}

/// Checkpoints SQLite's write-ahead log into the database and truncates it, trying for about
/// [`CHECKPOINT_WAIT_MS`]. Each attempt holds the process's writer lock (`store::serialised`):
/// no writer of this process commits meanwhile, so the checkpoint need not wait its turn in
/// SQLite's busy handler; only the readers still in the log are waited for.
pub fn truncate(conn: &mut AnyConnection) -> QueryResult<Checkpoint> {
    if !matches!(conn, AnyConnection::Sqlite(_)) {
        return Ok(Checkpoint::NotSqlite);
    }
    conn.batch_execute(&format!("PRAGMA busy_timeout = {CHECKPOINT_WAIT_MS}"))?;
    let deadline = Instant::now() + Duration::from_millis(CHECKPOINT_WAIT_MS.into());
    let done = loop {
        // `busy` is 1 when SQLite answered SQLITE_BUSY: at once when another connection (another
        // process) is checkpointing, after the busy handler when readers held on.
        let attempt = serialised(conn, |conn| {
            diesel::sql_query("PRAGMA wal_checkpoint(TRUNCATE)").get_result::<CheckpointRow>(conn)
        });
        match attempt {
            Ok(CheckpointRow { busy: 0, .. }) => break Ok(Checkpoint::Truncated),
            Ok(_) if Instant::now() < deadline => std::thread::sleep(RETRY_PAUSE),
            Ok(_) => break Ok(Checkpoint::Busy),
            Err(e) => break Err(e),
        }
    };
    conn.batch_execute(&format!("PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}"))?;
    done
}
