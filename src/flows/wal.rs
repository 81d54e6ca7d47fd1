//! Keeps SQLite's write-ahead log under `database.sqlite_wal_limit_mb` (checklist 58): a
//! background task looks at the size of the `-wal` file every [`CHECK_EVERY`] and, past the
//! limit, checkpoints and truncates it (`store::wal`). Nothing to do on PostgreSQL.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::state::AppState;
use crate::store::wal::{self, Checkpoint};
use crate::store::{sqlite_path, Backend};

/// How often the task looks at the file's size: a `stat`, no database work.
pub const CHECK_EVERY: Duration = Duration::from_millis(250);

/// The `-wal` file of a SQLite database URL.
pub fn wal_path(database_url: &str) -> PathBuf {
    PathBuf::from(format!("{}-wal", sqlite_path(database_url)))
}

fn len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Checkpoints and truncates the log when its file is larger than `limit` bytes; what it did,
/// or `None` when the file was within the limit.
pub fn check(state: &AppState, path: &Path, limit: u64) -> anyhow::Result<Option<Checkpoint>> {
    let before = len(path);
    if before <= limit {
        return Ok(None);
    }
    let mut conn = state.pool.get()?;
    let started = std::time::Instant::now();
    let done = wal::truncate(&mut conn)?;
    let took_ms = started.elapsed().as_millis();
    match done {
        Checkpoint::Truncated => tracing::info!(
            wal_bytes = before,
            took_ms,
            "write-ahead log past its limit: checkpointed and truncated"
        ),
        Checkpoint::Busy => tracing::warn!(
            wal_bytes = before,
            "write-ahead log past its limit, and the database too busy to truncate it: trying again"
        ),
        Checkpoint::NotSqlite => {}
    }
    Ok(Some(done))
}

/// Starts the task on a SQLite database with a limit. It holds the state weakly and ends once
/// the server has dropped it, or with the runtime.
pub fn spawn_guard(state: &Arc<AppState>) {
    let database = &state.settings.database;
    if Backend::of(&database.url) != Backend::Sqlite || database.sqlite_wal_limit_mb == 0 {
        return;
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::warn!("no async runtime: the write-ahead log will not be kept small");
        return;
    };
    let path = wal_path(&database.url);
    let limit = database.sqlite_wal_limit_mb.saturating_mul(1024 * 1024);
    let state: Weak<AppState> = Arc::downgrade(state);
    runtime.spawn(async move {
        loop {
            tokio::time::sleep(CHECK_EVERY).await;
            if len(&path) <= limit {
                continue;
            }
            let Some(state) = state.upgrade() else {
                return;
            };
            let path = path.clone();
            match tokio::task::spawn_blocking(move || check(&state, &path, limit)).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::error!(
                    error = format!("{e:#}"),
                    "checkpointing the write-ahead log failed"
                ),
                Err(e) => tracing::error!(error = %e, "the write-ahead log task failed"),
            }
        }
    });
}
