//! Password hashing: argon2id, verified in the blocking pool.
//!
//! Bounded work (checklist 57): at most `passwords.max_concurrent_hashes` hashes run at once,
//! counted per hash: the hash owns its slot and frees it when it finishes, not when the request
//! that asked for it goes away (a client that resets its connection cannot get another hash
//! running beside its orphaned one). At most `passwords.max_queued_hashes` checks wait for a
//! slot; the next one is refused at once with [`PasswordError::Busy`].
//!
//! An unknown user costs the same as a wrong password: the input is checked against a dummy hash.
//!
//! A check's argon2 working memory (`passwords.memory_kib`) is handed from one check to the next
//! while checks wait for a slot ([`WorkingMemory`]), and freed when none waits: fresh memory
//! costs the kernel a page fault and a zeroed page for each 4 KiB of it, which under a queue of
//! sign-ins was as much work again as the hash itself.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::PasswordHasher as _;
use argon2::{Algorithm, Argon2, Block, Params, Version};
use subtle::ConstantTimeEq as _;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};

use crate::config::PasswordSettings;
use crate::secret::random_bytes;

/// Longest password accepted (bytes); longer ones are refused, never truncated.
pub const MAX_PASSWORD_LEN: usize = 1024;
/// Shortest password accepted; `passwords.min_length` may raise it, never lower it.
pub const MIN_PASSWORD_LEN: usize = 8;

/// Why a password could not be checked.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// Every hash slot is taken and the queue is full: the caller answers "retry later".
    #[error("too many password checks are waiting")]
    Busy,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// The hasher with its parameters, concurrency and queue limits, and dummy hash.
#[derive(Clone)]
pub struct Passwords {
    params: Params,
    /// One permit per hash allowed to run; the blocking task computing the hash owns it.
    permits: Arc<Semaphore>,
    /// Checks waiting for a permit.
    waiting: Arc<AtomicUsize>,
    max_queued: usize,
    running: Arc<Gauge>,
    dummy_hash: Arc<String>,
    min_length: usize,
    /// Where the waits for a slot and the refusals are counted.
    metrics: Option<crate::metrics::Metrics>,
    memory: WorkingMemory,
}

/// argon2's working memory, kept between password checks only while other checks wait for a
/// slot: the check that ends passes its memory to the one that takes its slot. One that ends
/// with no check waiting frees its memory and any kept beside it. Never more is kept than
/// `max_concurrent_hashes` memories of `memory_kib` KiB (of the configured parameters; the
/// memory of a hash with other parameters is not kept), and only while checks come: memory kept
/// for a check that then gave up waiting (its client went away) stays until the next check
/// ends.
#[derive(Clone, Default)]
struct WorkingMemory {
    kept: Arc<Mutex<Vec<Vec<Block>>>>,
    /// Memories handed out new rather than kept (what the tests of the hand-over read).
    #[cfg(test)]
    fresh: Arc<AtomicUsize>,
}

impl WorkingMemory {
    /// Kept memory, or none yet (the check grows it to its hash's parameters).
    fn take(&self) -> Vec<Block> {
        let kept = self.lock().pop();
        #[cfg(test)]
        if kept.is_none() {
            self.fresh.fetch_add(1, Ordering::SeqCst);
        }
        kept.unwrap_or_default()
    }

    /// Keeps `memory` for a waiting check when `keep`, if it has `blocks` blocks; otherwise frees
    /// it and all that is kept.
    fn give_back(&self, memory: Vec<Block>, keep: bool, blocks: usize) {
        if keep && memory.len() == blocks {
            self.lock().push(memory);
        } else {
            let freed = std::mem::take(&mut *self.lock());
            drop((freed, memory));
        }
    }

    /// How many memories are kept now.
    #[cfg(test)]
    fn kept(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Vec<Block>>> {
        // A panic while the lock was held left a list of whole buffers: still usable.
        self.kept.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Hashes running now and the most that ever ran at once (what the tests of checklist 57 read).
#[derive(Default)]
struct Gauge {
    now: AtomicUsize,
    peak: AtomicUsize,
}

impl Gauge {
    fn enter(&self) -> Running<'_> {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        Running(self)
    }
}

/// One running hash, counted until dropped.
struct Running<'a>(&'a Gauge);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A place in the queue for a permit, given back when dropped (granted or abandoned).
struct QueuePlace<'a>(&'a AtomicUsize);

impl<'a> QueuePlace<'a> {
    /// A place if fewer than `max` checks wait, else `None`.
    fn take(waiting: &'a AtomicUsize, max: usize) -> Option<QueuePlace<'a>> {
        waiting
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| QueuePlace(waiting))
    }
}

impl Drop for QueuePlace<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Passwords {
    pub fn new(settings: &PasswordSettings) -> anyhow::Result<Passwords> {
        let params = Params::new(
            settings.memory_kib,
            settings.iterations,
            settings.parallelism,
            None,
        )
        .map_err(|e| anyhow::anyhow!("invalid argon2 settings: {e}"))?;
        let mut p = Passwords {
            params,
            permits: Arc::new(Semaphore::new(settings.concurrent_hashes())),
            waiting: Arc::new(AtomicUsize::new(0)),
            max_queued: settings.max_queued_hashes,
            running: Arc::new(Gauge::default()),
            dummy_hash: Arc::new(String::new()),
            min_length: settings.min_length.max(MIN_PASSWORD_LEN),
            metrics: None,
            memory: WorkingMemory::default(),
        };
        p.dummy_hash = Arc::new(p.hash(&crate::secret::hex(&random_bytes::<16>()))?);
        Ok(p)
    }

    /// Checks a new password against the policy: [`check_new`] with `passwords.min_length`.
    pub fn check_new(&self, password: &str) -> Result<(), String> {
        check_new(password, self.min_length)
    }

    /// Counts the waits for a hash slot and the refusals in `metrics`.
    pub fn counted_in(mut self, metrics: crate::metrics::Metrics) -> Passwords {
        self.metrics = Some(metrics);
        self
    }

    /// Password checks waiting for a hash slot now.
    pub fn queued(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    /// Hashes computing now.
    pub fn running(&self) -> usize {
        self.running.now.load(Ordering::SeqCst)
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    /// Hashes a new password (PHC string with a random salt).
    pub fn hash(&self, password: &str) -> anyhow::Result<String> {
        self.argon2()
            .hash_password_with_salt(password.as_bytes(), &random_bytes::<16>())
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))
    }

    /// Checks a password against a stored hash, or against the dummy hash when there is none, so
    /// that both cost one argon2 computation. Synchronous: call it from the blocking pool.
    pub fn verify_blocking(&self, password: &str, stored: Option<&str>) -> bool {
        let mut memory = Vec::new();
        self.verify_in(password, stored, &mut memory)
    }

    /// [`Passwords::verify_blocking`] with `memory` as argon2's working memory, grown to the
    /// stored hash's parameters when it is smaller. What `memory` held before does not matter:
    /// argon2's first pass writes every block before any block is read.
    fn verify_in(&self, password: &str, stored: Option<&str>, memory: &mut Vec<Block>) -> bool {
        let hash = stored.unwrap_or(&self.dummy_hash);
        let ok = password.len() <= MAX_PASSWORD_LEN
            && PasswordHash::new(hash)
                .is_ok_and(|parsed| matches(password.as_bytes(), &parsed, memory));
        ok && stored.is_some()
    }

    /// [`Passwords::verify_blocking`] in the blocking pool, within the concurrency limit, or
    /// [`PasswordError::Busy`] at once when the queue is full. Known and unknown users take the
    /// same path, so neither the refusal nor the cost tells them apart.
    pub async fn verify(
        &self,
        password: String,
        stored: Option<String>,
    ) -> Result<bool, PasswordError> {
        let permit = self.permit().await?;
        let this = self.clone();
        let ok = actix_web::web::block(move || {
            // The hash owns the permit: if the request is dropped meanwhile, this still runs to
            // the end and only then lets the next hash start. `_running` drops first.
            let _permit = permit;
            let _running = this.running.enter();
            let blocks = this.params.block_count();
            let mut memory = this.memory.take();
            let ok = this.verify_in(&password, stored.as_deref(), &mut memory);
            // Before the slot is freed, so the check that takes it finds the memory.
            let waiting = this.waiting.load(Ordering::SeqCst) > 0;
            this.memory.give_back(memory, waiting, blocks);
            ok
        })
        .await
        .map_err(|e| anyhow::anyhow!("password check task failed: {e}"))?;
        Ok(ok)
    }

    /// A hash slot: at once if one is free, else after waiting in the bounded queue.
    async fn permit(&self) -> Result<OwnedSemaphorePermit, PasswordError> {
        match Arc::clone(&self.permits).try_acquire_owned() {
            Ok(permit) => {
                if let Some(m) = &self.metrics {
                    m.password_waited(0.0);
                }
                return Ok(permit);
            }
            Err(TryAcquireError::NoPermits) => {}
            Err(TryAcquireError::Closed) => {
                return Err(anyhow::anyhow!("the password hash slots are closed").into())
            }
        }
        let Some(_place) = QueuePlace::take(&self.waiting, self.max_queued) else {
            tracing::warn!(
                queued = self.max_queued,
                "password check refused: every hash slot is taken and the queue is full"
            );
            if let Some(m) = &self.metrics {
                m.password_refused();
            }
            return Err(PasswordError::Busy);
        };
        let asked = std::time::Instant::now();
        let permit = Arc::clone(&self.permits).acquire_owned().await;
        if let Some(m) = &self.metrics {
            m.password_waited(asked.elapsed().as_secs_f64());
        }
        permit.map_err(|e| anyhow::anyhow!("waiting for a password hash slot: {e}").into())
    }
}

/// Whether `password` hashes to `hash`'s output under `hash`'s algorithm, version, parameters and
/// salt (what argon2's `verify_password` decides), computed in `memory`; the outputs are compared
/// in constant time.
fn matches(password: &[u8], hash: &PasswordHash, memory: &mut Vec<Block>) -> bool {
    let (Some(salt), Some(expected)) = (&hash.salt, &hash.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(hash.algorithm.as_str()) else {
        return false;
    };
    let version = match hash.version.map(Version::try_from).transpose() {
        Ok(v) => v.unwrap_or_default(),
        Err(_) => return false,
    };
    let Ok(params) = Params::try_from(hash) else {
        return false;
    };
    let blocks = params.block_count();
    if memory.len() < blocks {
        // A hash whose parameters ask for more memory than there is fails the check, as argon2's
        // own allocation did, rather than aborting the process.
        if memory.try_reserve_exact(blocks - memory.len()).is_err() {
            return false;
        }
        memory.resize(blocks, Block::new());
    }
    let mut out = vec![0u8; expected.len()];
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(password, salt.as_ref(), &mut out, &mut memory[..blocks])
        .is_ok()
        && bool::from(out.ct_eq(expected.as_ref()))
}

/// Checks a new password: at least `min_length` characters (never fewer than
/// [`MIN_PASSWORD_LEN`]), at most 1024 bytes (ASVS 6.2.9), and not only whitespace. The one
/// check of every new password: the CLI, the admin API and the console reach it through
/// `registry`.
pub fn check_new(password: &str, min_length: usize) -> Result<(), String> {
    let min = min_length.max(MIN_PASSWORD_LEN);
    if password.chars().count() < min {
        return Err(format!("the password must have at least {min} characters"));
    }
    if password.len() > MAX_PASSWORD_LEN {
        return Err(format!(
            "the password must have at most {MAX_PASSWORD_LEN} bytes"
        ));
    }
    if password.chars().all(char::is_whitespace) {
        return Err("the password must not be only spaces".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(memory_kib: u32, iterations: u32, concurrent: usize, queued: usize) -> Passwords {
        Passwords::new(&PasswordSettings {
            memory_kib,
            iterations,
            parallelism: 1,
            max_concurrent_hashes: concurrent,
            max_queued_hashes: queued,
            min_length: 8,
        })
        .unwrap()
    }

    fn cheap() -> Passwords {
        with(64, 1, 0, 32)
    }

    /// Polls until `done`; the cap is a backstop far beyond any real wait, not a timing check.
    async fn wait_until(what: &str, done: impl Fn() -> bool) {
        for _ in 0..20_000 {
            if done() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        panic!("gave up waiting until {what}");
    }

    fn spawn_verify(
        p: &Passwords,
        password: &str,
        stored: Option<&str>,
    ) -> tokio::task::JoinHandle<Result<bool, PasswordError>> {
        let (p, password, stored) = (p.clone(), password.to_owned(), stored.map(str::to_owned));
        tokio::spawn(async move { p.verify(password, stored).await })
    }

    /// Polls a future once: what a caller gets without waiting.
    fn poll_once<F: std::future::Future>(fut: F) -> std::task::Poll<F::Output> {
        let mut fut = std::pin::pin!(fut);
        fut.as_mut()
            .poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
    }

    const PASSWORD: &str = "correct horse battery staple";

    /// Checks of `passwords` against `stored`, all queued behind the only slot (held, as by a
    /// long hash) before it frees; their answers in order. `p` has one slot.
    async fn queued_behind_one_slot(p: &Passwords, passwords: &[&str], stored: &str) -> Vec<bool> {
        let held = Arc::clone(&p.permits).try_acquire_owned().unwrap();
        let queued: Vec<_> = passwords
            .iter()
            .map(|password| spawn_verify(p, password, Some(stored)))
            .collect();
        wait_until("the checks wait", || {
            p.waiting.load(Ordering::SeqCst) == passwords.len()
        })
        .await;
        drop(held);
        let mut answers = Vec::new();
        for task in queued {
            answers.push(task.await.unwrap().unwrap());
        }
        answers
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bounded_work_hash_permit_outlives_dropped_request() {
        // One slot; hashes of a few milliseconds, long enough that the checks started right after
        // a disconnect would overlap the orphaned hash if its slot were freed early.
        let p = with(8 * 1024, 2, 1, 64);
        let stored = p.hash(PASSWORD).unwrap();
        for _ in 0..3 {
            let abandoned: Vec<_> = (0..4)
                .map(|_| spawn_verify(&p, "wrong password", Some(&stored)))
                .collect();
            wait_until("a hash runs", || p.running.now.load(Ordering::SeqCst) == 1).await;
            // The clients reset their connections: every request future is dropped, one of them
            // while its hash runs.
            for task in &abandoned {
                task.abort();
            }
            for task in abandoned {
                let _ = task.await;
            }
            let next: Vec<_> = (0..4)
                .map(|_| spawn_verify(&p, PASSWORD, Some(&stored)))
                .collect();
            for task in next {
                assert!(task.await.unwrap().unwrap(), "later checks still succeed");
            }
        }
        wait_until("every hash ends", || {
            p.running.now.load(Ordering::SeqCst) == 0
        })
        .await;
        assert_eq!(
            p.running.peak.load(Ordering::SeqCst),
            1,
            "more hashes ran at once than max_concurrent_hashes"
        );
        assert_eq!(p.permits.available_permits(), 1, "the slot comes back");
        assert_eq!(p.waiting.load(Ordering::SeqCst), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bounded_work_full_queue_answers_busy_at_once() {
        let p = with(64, 1, 1, 2);
        let stored = p.hash(PASSWORD).unwrap();
        // The only slot is taken, as by a long hash.
        let held = Arc::clone(&p.permits).try_acquire_owned().unwrap();
        let queued: Vec<_> = (0..2)
            .map(|_| spawn_verify(&p, PASSWORD, Some(&stored)))
            .collect();
        wait_until("two checks wait", || p.waiting.load(Ordering::SeqCst) == 2).await;
        // The next check is refused on its first poll, for a known and an unknown user alike
        // (checklist 50: the refusal says nothing about the account).
        for stored in [Some(stored.clone()), None] {
            match poll_once(p.verify(PASSWORD.into(), stored)) {
                std::task::Poll::Ready(Err(PasswordError::Busy)) => {}
                other => panic!("expected Busy at once, got {other:?}"),
            }
        }
        assert_eq!(
            p.waiting.load(Ordering::SeqCst),
            2,
            "a refusal never queues"
        );
        drop(held);
        for task in queued {
            assert!(
                task.await.unwrap().unwrap(),
                "queued checks run once a slot frees"
            );
        }
        assert_eq!(p.waiting.load(Ordering::SeqCst), 0);
        assert!(p.verify(PASSWORD.into(), Some(stored)).await.unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bounded_work_abandoned_wait_frees_its_queue_place() {
        let p = with(64, 1, 1, 2);
        let held = Arc::clone(&p.permits).try_acquire_owned().unwrap();
        let abandoned: Vec<_> = (0..2).map(|_| spawn_verify(&p, PASSWORD, None)).collect();
        wait_until("two checks wait", || p.waiting.load(Ordering::SeqCst) == 2).await;
        for task in &abandoned {
            task.abort();
        }
        for task in abandoned {
            let _ = task.await;
        }
        // Nothing was hashing for them, so their places are free again.
        assert_eq!(p.waiting.load(Ordering::SeqCst), 0);
        let queued: Vec<_> = (0..2).map(|_| spawn_verify(&p, PASSWORD, None)).collect();
        wait_until("two checks wait", || p.waiting.load(Ordering::SeqCst) == 2).await;
        drop(held);
        for task in queued {
            assert!(!task.await.unwrap().unwrap());
        }
        assert_eq!(p.running.peak.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn password_hashes_are_argon2id_salted() {
        let p = cheap();
        let a = p.hash("correct horse battery staple").unwrap();
        let b = p.hash("correct horse battery staple").unwrap();
        assert!(a.starts_with("$argon2id$"));
        assert_ne!(a, b);
        assert!(p.verify_blocking("correct horse battery staple", Some(&a)));
        assert!(!p.verify_blocking("wrong", Some(&a)));
        assert!(!p.verify_blocking("anything", None));
    }

    #[test]
    fn a_check_in_memory_left_by_another_gives_the_same_answers() {
        let p = cheap();
        let stored = p.hash(PASSWORD).unwrap();
        let other = p.hash("another password entirely").unwrap();
        // Too small at first: grown to the hash's parameters.
        let mut memory = vec![Block::new(); 3];
        assert!(p.verify_in("another password entirely", Some(&other), &mut memory));
        assert_eq!(memory.len(), p.params.block_count());
        // Now full of the other hash's blocks.
        assert!(p.verify_in(PASSWORD, Some(&stored), &mut memory));
        assert!(!p.verify_in("wrong", Some(&stored), &mut memory));
        assert!(!p.verify_in(PASSWORD, None, &mut memory));
        assert!(!p.verify_in(PASSWORD, Some("$argon2id$v=19$m=64"), &mut memory));
        // A hash of other parameters (made before a settings change) still verifies.
        let older = with(128, 2, 0, 32).hash(PASSWORD).unwrap();
        assert!(p.verify_in(PASSWORD, Some(&older), &mut memory));
        assert!(!p.verify_in("wrong", Some(&older), &mut memory));
    }

    #[test]
    fn working_memory_is_kept_for_a_waiting_check_and_freed_when_none_waits() {
        let memory = WorkingMemory::default();
        assert!(memory.take().is_empty(), "nothing kept yet");
        let first = vec![Block::new(); 64];
        let address = first.as_ptr();
        memory.give_back(first, true, 64);
        assert_eq!(memory.kept(), 1);
        let again = memory.take();
        assert_eq!(
            again.as_ptr(),
            address,
            "the waiting check gets the same memory"
        );
        assert_eq!(memory.kept(), 0);
        // Memory of other parameters is not kept.
        memory.give_back(vec![Block::new(); 32], true, 64);
        assert_eq!(memory.kept(), 0);
        // No check waits: this memory and all that was kept are freed.
        memory.give_back(vec![Block::new(); 64], true, 64);
        memory.give_back(again, false, 64);
        assert_eq!(memory.kept(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn queued_checks_hash_in_one_memory_handed_from_each_to_the_next() {
        let p = with(64, 1, 1, 8);
        let stored = p.hash(PASSWORD).unwrap();
        let answers =
            queued_behind_one_slot(&p, &["wrong", PASSWORD, "wrong", PASSWORD], &stored).await;
        assert_eq!(answers, [false, true, false, true]);
        assert_eq!(
            p.memory.fresh.load(Ordering::SeqCst),
            1,
            "one memory for four queued checks"
        );
        assert_eq!(p.memory.kept(), 0, "the last check freed it");
    }

    /// The check computed in pooled memory accepts exactly what argon2's own verifier accepts,
    /// for every algorithm, version, lane count and output length, and the parameters, missing
    /// parts and altered outputs a PHC string may carry.
    #[test]
    fn the_check_in_pooled_memory_agrees_with_argon2s_own_verifier() {
        use argon2::password_hash::PasswordVerifier as _;
        let p = cheap();
        let salt = b"sixteen byte slt";
        let mut hashes = Vec::new();
        for algorithm in [Algorithm::Argon2id, Algorithm::Argon2i, Algorithm::Argon2d] {
            for version in [Version::V0x13, Version::V0x10] {
                for (lanes, output) in [(1, 32), (2, 16), (4, 64)] {
                    let params = argon2::ParamsBuilder::new()
                        .m_cost(64)
                        .t_cost(2)
                        .p_cost(lanes)
                        .output_len(output)
                        .build()
                        .unwrap();
                    let hash = Argon2::new(algorithm, version, params)
                        .hash_password_with_salt(PASSWORD.as_bytes(), salt)
                        .unwrap();
                    hashes.push(hash.to_string());
                }
            }
        }
        let plain = hashes[0].clone();
        let (head, output) = plain.rsplit_once('$').unwrap();
        let (before_salt, _) = head.rsplit_once('$').unwrap();
        let flipped = if output.starts_with('A') { "B" } else { "A" };
        hashes.extend([
            // No version (read as 0x13).
            plain.replace("$v=19", ""),
            // Associated data and a key id.
            plain.replace("p=1", "p=1,keyid=AAECAw,data=BAUGBw"),
            // An altered output, no output, no salt.
            format!("{head}${flipped}{}", &output[1..]),
            head.to_owned(),
            format!("{before_salt}${output}"),
        ]);
        let mut memory = Vec::new();
        for hash in &hashes {
            for password in [PASSWORD, "wrong"] {
                let theirs = PasswordHash::new(hash).is_ok_and(|parsed| {
                    Argon2::default()
                        .verify_password(password.as_bytes(), &parsed)
                        .is_ok()
                });
                let ours = p.verify_in(password, Some(hash), &mut memory);
                assert_eq!(ours, theirs, "{password:?} against {hash}");
            }
        }
        // The right password passes for every hash the crate made.
        for hash in &hashes[..18] {
            assert!(p.verify_in(PASSWORD, Some(hash), &mut memory), "{hash}");
        }
    }

    #[test]
    fn a_hash_asking_for_more_memory_than_there_is_fails_the_check() {
        let p = cheap();
        let stored = p.hash(PASSWORD).unwrap();
        let greedy = stored.replace("m=64", "m=4294967295");
        assert_ne!(greedy, stored);
        let mut memory = Vec::new();
        assert!(!p.verify_in(PASSWORD, Some(&greedy), &mut memory));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_idle_server_keeps_no_working_memory() {
        let p = with(64, 1, 1, 8);
        let stored = p.hash(PASSWORD).unwrap();
        let answers = queued_behind_one_slot(&p, &[PASSWORD; 3], &stored).await;
        assert_eq!(answers, [true; 3]);
        assert_eq!(p.memory.kept(), 0, "the last check freed the memory");
        assert!(!p.verify("wrong".into(), Some(stored)).await.unwrap());
        assert_eq!(p.memory.kept(), 0);
    }

    #[test]
    fn new_passwords_need_the_minimum_length_and_not_only_spaces() {
        assert!(check_new("1234567", 8).is_err());
        assert!(check_new("12345678", 8).is_ok());
        assert!(check_new("        ", 8).is_err());
        assert!(check_new(" \t  \n   ", 8).is_err());
        assert!(check_new("12345678", 12).is_err());
        // The setting raises the minimum, never lowers it.
        assert!(check_new("1234567", 4).is_err());
        assert!(check_new(&"x".repeat(MAX_PASSWORD_LEN + 1), 8).is_err());
        let p = Passwords::new(&PasswordSettings {
            min_length: 12,
            ..settings_for_tests()
        })
        .unwrap();
        assert!(p.check_new("elevenchars").is_err());
        assert!(p.check_new("twelve chars").is_ok());
    }

    fn settings_for_tests() -> PasswordSettings {
        PasswordSettings {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
            max_concurrent_hashes: 0,
            max_queued_hashes: 32,
            min_length: 8,
        }
    }

    #[test]
    fn long_passwords_are_not_truncated() {
        let p = cheap();
        let long = "x".repeat(200);
        let h = p.hash(&long).unwrap();
        assert!(!p.verify_blocking(&"x".repeat(199), Some(&h)));
        assert!(p.verify_blocking(&long, Some(&h)));
    }
}
