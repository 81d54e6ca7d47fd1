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

use std::collections::HashMap;
use std::fs::File;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

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
        Writer::start_with(manager, RESTART_FRAMES)
    }

    /// [`Writer::start`] with the log's restart at `restart_frames` frames (tests use a small
    /// log).
    fn start_with(
        manager: &ConnectionManager,
        restart_frames: i32,
    ) -> Result<Writer, ConnectError> {
        let conn = writer_connection(manager)?;
        let mut checkpoints = manager.connect()?;
        let file = database_file(&mut checkpoints).and_then(|path| flushing_handle(&path));
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
            Box::new(move || {
                checkpoint(&mut checkpoints, file.as_deref(), restart_frames, &kicked);
            }),
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

/// A connection for the writer. It never checkpoints: the checkpointer does, on a connection of
/// its own.
///
/// Its temporary storage is memory (`temp_store = MEMORY`), for the jobs' savepoints: each
/// savepoint keeps a copy of every page its job changes (the sub-journal). By default a
/// sub-journal past 64 KiB moves to a temporary file, which stays its place until the
/// transaction ends, so every later job of the batch would write its copies to the file too, and
/// each spill creates and deletes a file. In memory the copies are dropped as each job ends: a
/// job's copies are at most the pages it changes, and jobs are short.
fn writer_connection(manager: &ConnectionManager) -> Result<AnyConnection, ConnectError> {
    let mut conn = manager.connect()?;
    conn.batch_execute("PRAGMA wal_autocheckpoint = 0; PRAGMA temp_store = MEMORY")?;
    Ok(conn)
}

/// Copies the write-ahead log into the database after the writer's commits, at most every
/// [`CHECKPOINT_PAUSE`], off the writer's thread: a `PASSIVE` checkpoint runs beside the writer's
/// transactions (it takes no write lock), so the writer never stops for the copy or its `fsync`.
///
/// Such a checkpoint never catches up with a writer that commits all the time, and the log starts
/// again from its beginning only after one that did, so under steady load the `-wal` file would
/// only grow (until `flows::wal` truncates it, which stops every writer meanwhile). So once the
/// log holds `restart_frames` or more, the checkpointer makes it start again ([`restart`]). It
/// ends with the writer.
fn checkpoint(
    conn: &mut AnyConnection,
    file: Option<&File>,
    restart_frames: i32,
    kicked: &std::sync::mpsc::Receiver<()>,
) {
    while kicked.recv().is_ok() {
        let done = passive(conn).and_then(|row| {
            if row.log >= restart_frames {
                restart(conn, file, row.log)?;
            }
            Ok(())
        });
        if let Err(e) = done {
            tracing::warn!(error = %e, "checkpointing the write-ahead log failed: trying again");
        }
        std::thread::sleep(CHECKPOINT_PAUSE);
    }
}

/// Makes the log start again: catches up with the writer without its turn, then copies the last
/// frames while holding it ([`serialised`]), so that checkpoint is complete and the writer's next
/// transaction starts the log from its beginning.
///
/// Each `PASSIVE` round copies what was committed during the round before, so the backlog
/// shrinks until a round finds at most [`CAUGHT_UP_FRAMES`] new frames (or [`CATCH_UP_ROUNDS`]
/// have run); the writers then wait only for that short copy and its two `fsync`s, not for the
/// whole log's. When the writer commits about as fast as a round copies, the backlog does not
/// shrink and every round only lets the log grow: so once a round finds more than half as many
/// new frames as the round before it copied, the checkpointer takes the writers' turn at once,
/// and the log holds at most about two rounds' frames before it starts again.
///
/// A `PASSIVE` round that does not reach the log's end leaves the pages it copied unflushed,
/// and the complete checkpoint would flush them all under the turn (on a grown database,
/// thousands of pages: up to 20 ms), so each round's pages are flushed after it through `file`
/// (see [`flushing_handle`]). `log` is the log's length at the checkpoint that asked for the
/// restart.
fn restart(conn: &mut AnyConnection, file: Option<&File>, mut log: i32) -> diesel::QueryResult<()> {
    // What the round before copied: the checkpoint that asked for the restart copied up to `log`.
    let mut copied = log;
    for _ in 0..CATCH_UP_ROUNDS {
        let row = passive(conn)?;
        if let Some(Err(e)) = file.map(File::sync_data) {
            tracing::warn!(error = %e, "flushing the database file before the log's restart failed");
        }
        let new = row.log - log;
        log = row.log;
        if !keeps_catching_up(new, copied, row.checkpointed == row.log) {
            break;
        }
        copied = new;
    }
    serialised(conn, passive).map(|_| ())
}

/// Whether another `PASSIVE` round is worth making before the checkpointer takes the writers'
/// turn: the round that just ran found `new` frames committed while the round before copied
/// `copied`, and copied the whole log (`complete`) or not. Not once the backlog is short
/// ([`CAUGHT_UP_FRAMES`]) and copied, nor when it did not at least halve.
fn keeps_catching_up(new: i32, copied: i32, complete: bool) -> bool {
    let caught_up = new <= CAUGHT_UP_FRAMES && complete;
    let shrinking = new.saturating_mul(2) <= copied;
    !caught_up && shrinking
}

/// The file of the connection's main database (`None` for one in memory).
fn database_file(conn: &mut AnyConnection) -> Option<PathBuf> {
    use diesel::RunQueryDsl as _;
    #[derive(diesel::QueryableByName)]
    struct Main {
        #[diesel(sql_type = diesel::sql_types::Text)]
        file: String,
    }
    let main = diesel::sql_query("SELECT file FROM pragma_database_list WHERE name = 'main'")
        .get_result::<Main>(conn)
        .ok()?;
    (!main.file.is_empty()).then(|| PathBuf::from(main.file))
}

/// A descriptor of the database file for [`restart`]'s flushes: one per file for the whole life
/// of the process, never closed. Closing any descriptor of a file drops every POSIX advisory lock
/// the process holds on it, SQLite's included (<https://sqlite.org/howtocorrupt.html>, 2.2), and
/// another process could then take the database from under the server's connections. So the
/// descriptor stays in a map that is never dropped, and writers of the same file share it.
/// `None` when the file cannot be opened (the restart then works without the early flushes).
fn flushing_handle(path: &Path) -> Option<Arc<File>> {
    static FILES: OnceLock<Mutex<HashMap<PathBuf, Arc<File>>>> = OnceLock::new();
    let mut files = FILES.get_or_init(Mutex::default).lock().ok()?;
    if let Some(file) = files.get(path) {
        return Some(Arc::clone(file));
    }
    match File::open(path) {
        Ok(file) => {
            let file = Arc::new(file);
            files.insert(path.to_owned(), Arc::clone(&file));
            Some(file)
        }
        Err(e) => {
            tracing::warn!(error = %e, "the database file could not be opened for flushes");
            None
        }
    }
}

/// The most `PASSIVE` rounds before the checkpointer takes the writers' turn for a restart.
const CATCH_UP_ROUNDS: usize = 8;

/// New frames few enough to copy while holding the writers' turn (about half a millisecond of
/// copying; the `fsync`s cost more).
const CAUGHT_UP_FRAMES: i32 = 128;

/// The least time between two of the checkpointer's checkpoints.
const CHECKPOINT_PAUSE: std::time::Duration = std::time::Duration::from_millis(50);

/// How many frames (pages) the log may hold before the checkpointer makes it start again: about
/// 16 MiB with SQLite's 4 KiB pages. Each restart holds the writers for the last frames' copy and
/// two `fsync`s (a few milliseconds under load), so a larger log means rarer pauses.
const RESTART_FRAMES: i32 = 4000;

/// A `PASSIVE` checkpoint: how many frames the log held, and how many of them are copied.
fn passive(conn: &mut AnyConnection) -> diesel::QueryResult<super::wal::CheckpointRow> {
    use diesel::RunQueryDsl as _;
    diesel::sql_query("PRAGMA wal_checkpoint(PASSIVE)")
        .get_result::<super::wal::CheckpointRow>(conn)
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
            match writer_connection(manager) {
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

    use super::{keeps_catching_up, Writer, WriterError, BATCH, CAUGHT_UP_FRAMES};
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

    /// The writer's savepoints (one per job) keep their page copies in memory, never in a
    /// temporary file that the rest of the batch would then write to as well.
    #[tokio::test]
    async fn the_writers_savepoints_never_spill_to_a_file() {
        #[derive(QueryableByName)]
        struct TempStore {
            #[diesel(sql_type = diesel::sql_types::Integer)]
            temp_store: i32,
        }
        let (_dir, manager) = database();
        let writer = Writer::start(&manager).unwrap();
        let setting = writer
            .run(|conn| diesel::sql_query("PRAGMA temp_store").get_result::<TempStore>(conn))
            .await
            .unwrap()
            .unwrap();
        // 2 is MEMORY (0, the default, and 1 allow files).
        assert_eq!(setting.temp_store, 2);
    }

    /// The restart's catch-up rounds go on only while they gain on the writer: a round that
    /// finds more than half as many new frames as the round before copied takes the turn at
    /// once, so a writer as fast as the copy cannot make the log grow round after round.
    #[test]
    fn a_checkpointer_that_does_not_gain_on_the_writer_takes_the_turn_at_once() {
        // The backlog halves: another round.
        assert!(keeps_catching_up(1000, 4000, true));
        assert!(keeps_catching_up(2000, 4000, true));
        // It does not: the turn now.
        assert!(!keeps_catching_up(2001, 4000, true));
        assert!(!keeps_catching_up(5000, 4000, true));
        // Caught up: the turn for the last short copy.
        assert!(!keeps_catching_up(CAUGHT_UP_FRAMES, 4000, true));
        // Short but not all copied (a reader held the rest back): another round.
        assert!(keeps_catching_up(CAUGHT_UP_FRAMES, 4000, false));
    }

    /// Under writes that never stop, the checkpointer still makes the log start again: the
    /// `-wal` file stays far smaller than everything written through it (a `PASSIVE` checkpoint
    /// alone never completes under such a load, so the log would only grow).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_log_starts_again_under_writes_that_never_stop() {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        use std::sync::Arc;
        const ROWS: u64 = 64;
        let (dir, manager) = database();
        let writer = Writer::start_with(&manager, 64).unwrap();
        let wal = dir.path().join("w.db-wal");
        manager
            .connect()
            .unwrap()
            .batch_execute(
                "CREATE TABLE blobs (id INTEGER PRIMARY KEY, n INTEGER NOT NULL, b BLOB NOT NULL);
                 WITH RECURSIVE k(id) AS (SELECT 1 UNION ALL SELECT id + 1 FROM k WHERE id < 64)
                 INSERT INTO blobs (id, n, b) SELECT id, 0, randomblob(65536) FROM k;",
            )
            .unwrap();
        // Each job rewrites one of the rows, a 64 KiB blob (sixteen pages or more), as a server's
        // writes rewrite its hot pages: the log gets every commit's pages, while the database
        // keeps the same few thousand. More tasks than a batch holds keep the writer's queue from
        // ever running dry, and each job holds the transaction a moment, so the writer begins
        // its next transaction as soon as it commits: a `PASSIVE` checkpoint completes while a
        // transaction is open, and its commit is already beyond it. Without a restart the log
        // holds every page written.
        let jobs = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = tokio::task::JoinSet::new();
        for task in 0..BATCH as u64 + 64 {
            let (writer, jobs, stop) = (writer.clone(), jobs.clone(), stop.clone());
            tasks.spawn(async move {
                let row = task % ROWS + 1;
                while !stop.load(Ordering::Relaxed) {
                    let job = move |conn: &mut AnyConnection| {
                        let done = diesel::sql_query(format!(
                            "UPDATE blobs SET n = n + 1, b = randomblob(65536) WHERE id = {row}"
                        ))
                        .execute(conn);
                        std::thread::sleep(std::time::Duration::from_micros(100));
                        done
                    };
                    assert_eq!(writer.run(job).await.unwrap().unwrap(), 1);
                    jobs.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        let mut restarted = false;
        let mut written = 0;
        while written < 80_000 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            written = jobs.load(Ordering::Relaxed) * 16;
            let wal_pages = std::fs::metadata(&wal).unwrap().len() / 4096;
            if written >= 8_000 && wal_pages * 4 < written {
                restarted = true;
                break;
            }
        }
        stop.store(true, Ordering::Relaxed);
        while let Some(done) = tasks.join_next().await {
            done.unwrap();
        }
        assert!(
            restarted,
            "the -wal file grew with every write ({written} pages written)"
        );
        let jobs = jobs.load(Ordering::Relaxed);
        let rows: Vec<Row> = diesel::sql_query("SELECT sum(n) AS x FROM blobs")
            .load(&mut manager.connect().unwrap())
            .unwrap();
        assert_eq!(u64::try_from(rows[0].x).unwrap(), jobs, "no write is lost");
    }

    /// The descriptor the checkpointer flushes the database file through is opened once per file
    /// and outlives the writer: closing it would drop SQLite's locks on the file.
    #[tokio::test]
    async fn the_database_file_is_opened_once_for_flushes_and_never_closed() {
        let (dir, manager) = database();
        let path = super::database_file(&mut manager.connect().unwrap()).unwrap();
        assert_eq!(
            path.canonicalize().unwrap(),
            dir.path().join("w.db").canonicalize().unwrap()
        );
        let first = super::flushing_handle(&path).unwrap();
        let writer = Writer::start(&manager).unwrap();
        writer.run(|conn| insert(conn, 1)).await.unwrap().unwrap();
        drop(writer);
        let again = super::flushing_handle(&path).unwrap();
        assert!(std::sync::Arc::ptr_eq(&first, &again));
        // The map holds it besides the two handles here: nothing closes it.
        assert!(std::sync::Arc::strong_count(&again) >= 3);
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
