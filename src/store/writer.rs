//! The SQLite writer: one connection on a thread of its own, fed by a queue, committing the
//! writes that arrive together in one transaction (group commit).
//!
//! The token endpoint's writes (a code exchange, a refresh rotation) are small and many. Sent here
//! as jobs, they run one after the other on the writer's connection: the writer takes what the
//! queue holds (up to [`BATCH`] jobs), opens one `BEGIN IMMEDIATE` transaction, runs each job in a
//! savepoint of its own (a job that fails or panics undoes only its own writes), commits, and only
//! then answers the jobs. So:
//!
//! - no answer is given before the writes it reports are committed: a crash (or a failed commit)
//!   loses only writes whose requests have not been answered, and those requests fail;
//! - one commit, one write-ahead-log append, serves every request of the batch, and no request's
//!   thread waits for a lock: it waits for its answer;
//! - the writer takes its turn among the process's other SQLite writers ([`super::serialised`])
//!   once per batch, so it never waits in SQLite's busy handler, and nothing else waits there
//!   for it. Reads that are not part of a write stay on the pool's connections.
//!
//! - the copy of the write-ahead log into the database (a checkpoint, with its `fsync`) is made
//!   by a thread of its own after the writer's commits ([`checkpoint`]), never by the writer.
//!
//! Jobs must be short and never wait on anything but this connection: no password hashing, no
//! signing, no network. On PostgreSQL there is no writer (row locks let writers run side by side).

use std::panic::{catch_unwind, AssertUnwindSafe};

use diesel::connection::{AnsiTransactionManager, SimpleConnection as _, TransactionManager};
use tokio::sync::{mpsc, oneshot};

use super::{serialised, AnyConnection, ConnectError, ConnectionManager};

/// The most jobs one transaction commits.
pub const BATCH: usize = 256;

/// Jobs waiting for the writer; a full queue makes senders wait (asynchronously) for room.
const QUEUE: usize = 4096;

/// Why a job got no answer of its own.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriterError {
    #[error("the SQLite writer has stopped")]
    Stopped,
    #[error("the SQLite writer's transaction failed: {0}")]
    Transaction(String),
    /// The job was not run to its end: the batch could not begin, or the job panicked (the
    /// writer logged which).
    #[error("the SQLite writer gave no answer")]
    NoAnswer,
}

/// After the batch's commit: delivers the job's result, or the commit's failure.
type Reply = Box<dyn FnOnce(Result<(), WriterError>) + Send>;
/// A job runs and says whether it succeeded (a failed job's savepoint is rolled back).
type Job = Box<dyn FnOnce(&mut AnyConnection) -> (bool, Reply) + Send>;

/// The handle of the writer thread; the thread ends when every handle is dropped.
#[derive(Debug, Clone)]
pub struct Writer {
    queue: mpsc::Sender<Job>,
}

impl Writer {
    /// Opens the writer's connection and starts its thread.
    pub fn start(manager: &ConnectionManager) -> Result<Writer, ConnectError> {
        let mut conn = manager.connect()?;
        // The writer never checkpoints: the checkpointer does, on a connection of its own.
        conn.batch_execute("PRAGMA wal_autocheckpoint = 0")?;
        let mut checkpoints = manager.connect()?;
        let (queue, jobs) = mpsc::channel(QUEUE);
        let (kick, kicked) = std::sync::mpsc::sync_channel(1);
        let manager = manager.clone();
        let spawn = |name: &str, work: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name.into())
                .spawn(work)
                .map_err(|e| {
                    ConnectError::Connection(diesel::ConnectionError::BadConnection(format!(
                        "starting the SQLite writer: {e}"
                    )))
                })
        };
        spawn(
            "sqlite-checkpoint",
            Box::new(move || checkpoint(&mut checkpoints, &kicked)),
        )?;
        spawn(
            "sqlite-writer",
            Box::new(move || run(&manager, conn, jobs, &kick)),
        )?;
        Ok(Writer { queue })
    }

    /// Runs `f` on the writer's connection, inside the writer's transaction, and returns its
    /// result once that transaction has committed. Its writes are undone when it returns an
    /// error or panics. `f` may use [`super::write_tx`]: inside the writer it is a savepoint.
    pub async fn run<T, E, F>(&self, f: F) -> Result<Result<T, E>, WriterError>
    where
        F: FnOnce(&mut AnyConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: Send + 'static,
    {
        let (answer, answered) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let value = f(conn);
            let ok = value.is_ok();
            let reply: Reply = Box::new(move |committed| {
                let _ = answer.send(committed.map(|()| value));
            });
            (ok, reply)
        });
        self.queue
            .send(job)
            .await
            .map_err(|_| WriterError::Stopped)?;
        // A job that was not run to its end dropped its sender without answering.
        answered.await.unwrap_or(Err(WriterError::NoAnswer))
    }
}

/// Copies the write-ahead log into the database after the writer's commits, at most every
/// [`CHECKPOINT_PAUSE`], off the writer's thread: a `PASSIVE` checkpoint runs beside the writer's
/// transactions (it takes no write lock), so the writer never stops for the copy or its `fsync`.
///
/// Such a checkpoint never catches up with a writer that commits all the time, and the log starts
/// again from its beginning only after one that did, so under steady load the `-wal` file would
/// only grow (until `flows::wal` truncates it, which stops every writer meanwhile). So once the
/// log holds [`RESTART_FRAMES`] or more, the checkpointer copies the few frames committed since
/// while it holds the writers' turn ([`serialised`]): that checkpoint is complete, and the
/// writer's next transaction starts the log again. It ends with the writer.
fn checkpoint(conn: &mut AnyConnection, kicked: &std::sync::mpsc::Receiver<()>) {
    while kicked.recv().is_ok() {
        let done = passive(conn).and_then(|frames| {
            if frames >= RESTART_FRAMES {
                serialised(conn, passive)?;
            }
            Ok(())
        });
        if let Err(e) = done {
            tracing::warn!(error = %e, "checkpointing the write-ahead log failed: trying again");
        }
        std::thread::sleep(CHECKPOINT_PAUSE);
    }
}

/// The least time between two of the checkpointer's checkpoints.
const CHECKPOINT_PAUSE: std::time::Duration = std::time::Duration::from_millis(50);

/// How many frames (pages) the log may hold before the checkpointer makes it start again: about
/// 16 MiB with SQLite's 4 KiB pages. Each restart holds the writers for the last frames' copy and
/// two `fsync`s (a few milliseconds), so a larger log means rarer pauses (measured: the code
/// exchange's p99 at 16 connections went from 9 to 7 ms when this went from 1,000 to 4,000).
const RESTART_FRAMES: i32 = 4000;

/// A `PASSIVE` checkpoint; how many frames the log held.
fn passive(conn: &mut AnyConnection) -> diesel::QueryResult<i32> {
    use diesel::RunQueryDsl as _;
    diesel::sql_query("PRAGMA wal_checkpoint(PASSIVE)")
        .get_result::<super::wal::CheckpointRow>(conn)
        .map(|row| row.log)
}

fn run(
    manager: &ConnectionManager,
    mut conn: AnyConnection,
    mut jobs: mpsc::Receiver<Job>,
    kick: &std::sync::mpsc::SyncSender<()>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    while let Some(job) = jobs.blocking_recv() {
        batch.push(job);
        while batch.len() < BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let begun = serialised(&mut conn, |conn| run_batch(conn, &mut batch));
        // A checkpoint already asked for covers this commit too.
        let _ = kick.try_send(());
        if !begun {
            // The connection may be broken: the next batch gets a new one if it can be opened.
            match manager.connect().and_then(|mut fresh| {
                fresh.batch_execute("PRAGMA wal_autocheckpoint = 0")?;
                Ok(fresh)
            }) {
                Ok(fresh) => conn = fresh,
                Err(e) => tracing::error!(error = %e, "the SQLite writer could not reconnect"),
            }
        }
    }
}

/// One transaction: every job in its own savepoint, then the commit, then the answers. False
/// when the transaction could not begin (the batch's jobs are dropped unrun, so their requests
/// fail).
fn run_batch(conn: &mut AnyConnection, batch: &mut Vec<Job>) -> bool {
    let Some(c) = sqlite(conn) else {
        tracing::error!("the SQLite writer holds a connection that is not SQLite");
        batch.clear();
        return false;
    };
    if let Err(e) = AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE") {
        tracing::error!(error = %e, "the SQLite writer could not begin a transaction");
        batch.clear();
        return false;
    }
    let mut replies: Vec<Reply> = Vec::with_capacity(batch.len());
    for job in batch.drain(..) {
        if let Some(reply) = run_job(conn, job) {
            replies.push(reply);
        }
    }
    let Some(c) = sqlite(conn) else {
        return false;
    };
    let committed = AnsiTransactionManager::commit_transaction(c).map_err(|e| {
        tracing::error!(error = %e, "the SQLite writer's commit failed: its batch is undone");
        let _ = AnsiTransactionManager::rollback_transaction(c);
        WriterError::Transaction(e.to_string())
    });
    for reply in replies {
        reply(committed.clone());
    }
    true
}

/// Runs one job in a savepoint; `None` when it panicked (its writes are undone, and its request
/// is answered by the dropped sender).
fn run_job(conn: &mut AnyConnection, job: Job) -> Option<Reply> {
    let c = sqlite(conn)?;
    if let Err(e) = AnsiTransactionManager::begin_transaction(c) {
        tracing::error!(error = %e, "the SQLite writer could not open a savepoint");
        return None;
    }
    let own = depth(c);
    let outcome = catch_unwind(AssertUnwindSafe(|| job(conn)));
    let c = sqlite(conn)?;
    match outcome {
        Ok((true, reply)) => match AnsiTransactionManager::commit_transaction(c) {
            Ok(()) => Some(reply),
            Err(e) => {
                tracing::error!(error = %e, "the SQLite writer could not release a savepoint");
                let _ = AnsiTransactionManager::rollback_transaction(c);
                None
            }
        },
        Ok((false, reply)) => match AnsiTransactionManager::rollback_transaction(c) {
            Ok(()) => Some(reply),
            Err(e) => {
                tracing::error!(error = %e, "the SQLite writer could not roll back a savepoint");
                None
            }
        },
        Err(_) => {
            tracing::error!("a job of the SQLite writer panicked: its writes are undone");
            // Undo whatever the job left open (its own savepoints), then its own savepoint.
            while depth(c) > own {
                if AnsiTransactionManager::rollback_transaction(c).is_err() {
                    break;
                }
            }
            let _ = AnsiTransactionManager::rollback_transaction(c);
            None
        }
    }
}

/// The SQLite connection inside; `None` for any other (the writer is only started on SQLite).
fn sqlite(conn: &mut AnyConnection) -> Option<&mut diesel::sqlite::SqliteConnection> {
    match conn {
        AnyConnection::Sqlite(c) => Some(c),
        #[cfg(feature = "postgres")]
        AnyConnection::Postgresql(_) => None,
    }
}

/// How many transactions and savepoints are open on the connection.
fn depth(c: &mut diesel::sqlite::SqliteConnection) -> u32 {
    AnsiTransactionManager::transaction_manager_status_mut(c)
        .transaction_depth()
        .ok()
        .flatten()
        .map_or(0, std::num::NonZeroU32::get)
}

#[cfg(test)]
mod tests {
    use diesel::connection::SimpleConnection as _;
    use diesel::prelude::*;

    use super::{Writer, WriterError};
    use crate::store::{write_tx, AnyConnection, ConnectionManager};

    fn database() -> (tempfile::TempDir, ConnectionManager) {
        let dir = tempfile::tempdir().unwrap();
        let manager = ConnectionManager::new(format!("sqlite://{}/w.db", dir.path().display()));
        manager
            .connect()
            .unwrap()
            .batch_execute("CREATE TABLE t (x INTEGER NOT NULL)")
            .unwrap();
        (dir, manager)
    }

    fn insert(conn: &mut AnyConnection, x: i32) -> QueryResult<usize> {
        diesel::sql_query(format!("INSERT INTO t (x) VALUES ({x})")).execute(conn)
    }

    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        x: i32,
    }

    /// What another connection (a reader) sees.
    fn committed(manager: &ConnectionManager) -> Vec<i32> {
        let mut conn = manager.connect().unwrap();
        let mut rows: Vec<i32> = diesel::sql_query("SELECT x FROM t")
            .load::<Row>(&mut conn)
            .unwrap()
            .into_iter()
            .map(|r| r.x)
            .collect();
        rows.sort_unstable();
        rows
    }

    #[tokio::test]
    async fn a_job_is_answered_once_its_writes_are_committed() {
        let (_dir, manager) = database();
        let writer = Writer::start(&manager).unwrap();
        let n = writer.run(|conn| insert(conn, 1)).await.unwrap().unwrap();
        assert_eq!(n, 1);
        assert_eq!(committed(&manager), vec![1]);
    }

    #[tokio::test]
    async fn jobs_sent_together_commit_together_and_a_failed_one_undoes_only_its_own_writes() {
        let (_dir, manager) = database();
        let writer = Writer::start(&manager).unwrap();
        let jobs: Vec<_> = (0..50)
            .map(|x| {
                let writer = writer.clone();
                tokio::spawn(async move {
                    writer
                        .run(move |conn| {
                            insert(conn, x)?;
                            if x % 10 == 3 {
                                // Fails after writing: its row must not be committed.
                                return Err(diesel::result::Error::RollbackTransaction);
                            }
                            // A transaction inside a job is a savepoint of the writer's.
                            write_tx(conn, |conn| insert(conn, 1000 + x))
                        })
                        .await
                })
            })
            .collect();
        let mut answers = Vec::new();
        for job in jobs {
            answers.push(job.await.unwrap());
        }
        let failed = answers
            .iter()
            .filter(|a| matches!(a, Ok(Err(diesel::result::Error::RollbackTransaction))))
            .count();
        assert_eq!(failed, 5);
        let expected: Vec<i32> = (0..50)
            .filter(|x| x % 10 != 3)
            .chain((0..50).filter(|x| x % 10 != 3).map(|x| 1000 + x))
            .collect();
        assert_eq!(committed(&manager), expected);
    }

    #[tokio::test]
    async fn a_panicking_job_undoes_its_writes_and_the_others_are_answered() {
        let (_dir, manager) = database();
        let writer = Writer::start(&manager).unwrap();
        let ok = |x| {
            let writer = writer.clone();
            async move { writer.run(move |conn| insert(conn, x)).await }
        };
        let panics = {
            let writer = writer.clone();
            async move {
                writer
                    .run(|conn| {
                        insert(conn, 2).unwrap();
                        write_tx(conn, |conn| -> QueryResult<()> {
                            insert(conn, 3)?;
                            panic!("a bug in a job")
                        })
                    })
                    .await
            }
        };
        let (a, p, b) = tokio::join!(ok(1), panics, ok(4));
        assert!(matches!(p, Err(WriterError::NoAnswer)), "{p:?}");
        assert_eq!(a.unwrap().unwrap(), 1);
        assert_eq!(b.unwrap().unwrap(), 1);
        assert_eq!(committed(&manager), vec![1, 4]);
        // The writer goes on serving.
        assert_eq!(ok(5).await.unwrap().unwrap(), 1);
        assert_eq!(committed(&manager), vec![1, 4, 5]);
    }
}
