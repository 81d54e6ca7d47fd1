//! The `gatehouse` command line (DESIGN.md "Command line") and the migrations, on SQLite and,
//! when `GATEHOUSE_TEST_POSTGRES_URL` is set, on a fresh PostgreSQL database.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{free_port, ok_json, sha256_hex, KillOnDrop, PgDatabase, PASSWORD};

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_gatehouse");
pub(crate) const GOOD_PASSWORD: &str = PASSWORD;

/// A database for one CLI test: a SQLite file in a temp dir, or a fresh PostgreSQL database
/// dropped at the end.
pub(crate) struct TestDb {
    pub(crate) label: &'static str,
    pub(crate) url: String,
    pub(crate) dir: tempfile::TempDir,
    _pg: Option<PgDatabase>,
}

impl TestDb {
    pub(crate) fn keys_dir(&self) -> PathBuf {
        self.dir.path().join("keys")
    }
}

/// SQLite always; PostgreSQL too when GATEHOUSE_TEST_POSTGRES_URL is set.
pub(crate) fn backends() -> Vec<TestDb> {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("g.db").display());
    // The server made it (administrative commands never create a database).
    gatehouse::store::create_sqlite_file(&url).expect("database file");
    let sqlite = TestDb {
        label: "sqlite",
        url,
        dir,
        _pg: None,
    };
    let postgres = PgDatabase::create("gatehouse_cli").map(|pg| TestDb {
        label: "postgres",
        url: pg.url.clone(),
        dir: tempfile::tempdir().expect("temp dir"),
        _pg: Some(pg),
    });
    if postgres.is_none() {
        eprintln!("GATEHOUSE_TEST_POSTGRES_URL not set: PostgreSQL variant skipped");
    }
    [Some(sqlite), postgres].into_iter().flatten().collect()
}

/// A `gatehouse` command with a clean environment: no inherited GATEHOUSE_* settings.
pub(crate) fn command(cwd: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("GATEHOUSE_") || k == "RUST_BACKTRACE" || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    cmd.current_dir(cwd)
        .env("GATEHOUSE_PASSWORDS__MEMORY_KIB", "256")
        .env("GATEHOUSE_PASSWORDS__ITERATIONS", "1");
    cmd
}

/// Runs `gatehouse ARGS` against the test database, with `stdin` as standard input.
pub(crate) fn run(db: &TestDb, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = command(db.dir.path());
    cmd.env("GATEHOUSE_DATABASE_URL", &db.url)
        .env("GATEHOUSE_KEYS_DIR", db.keys_dir())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    let mut child = cmd.spawn().expect("spawn gatehouse");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin pipe");
        pipe.write_all(input.as_bytes()).expect("write stdin");
    }
    child.wait_with_output().expect("wait for gatehouse")
}

pub(crate) fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub(crate) fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts success and returns stdout.
pub(crate) fn ok(o: &Output, what: &str) -> String {
    assert!(
        o.status.success(),
        "{what}: exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        stdout(o),
        stderr(o)
    );
    stdout(o)
}

/// Asserts a readable failure: non-zero exit, one line on stderr starting with "gatehouse:",
/// no panic. Returns that line.
pub(crate) fn fails_readably(o: &Output, what: &str) -> String {
    let err = stderr(o);
    assert!(
        !o.status.success(),
        "{what}: should fail\nstdout: {}\nstderr: {err}",
        stdout(o)
    );
    assert!(!err.contains("panicked"), "{what}: panic: {err}");
    assert!(!err.contains("stack backtrace"), "{what}: backtrace: {err}");
    let trimmed = err.trim();
    assert!(trimmed.starts_with("gatehouse:"), "{what}: stderr {err:?}");
    assert_eq!(
        trimmed.lines().count(),
        1,
        "{what}: stderr is not one line: {err:?}"
    );
    assert!(
        trimmed.len() > "gatehouse: ".len() + 5,
        "{what}: no reason given: {err:?}"
    );
    trimmed.to_owned()
}

pub(crate) fn json_out(o: &Output, what: &str) -> Value {
    let out = ok(o, what);
    serde_json::from_str(out.trim())
        .unwrap_or_else(|e| panic!("{what}: stdout is not JSON ({e}): {out}"))
}

pub(crate) const CLIENT_ARGS: [&str; 10] = [
    "--redirect-uri",
    "http://127.0.0.1:5173/cb",
    "--scope",
    "api:read",
    "--audience",
    "https://api.example.com",
    "--allowed-origin",
    "http://127.0.0.1:5173",
    "--grant-type",
    "authorization_code",
];

pub(crate) fn create_client(db: &TestDb, name: &str, extra: &[&str]) -> Output {
    let mut args = vec!["client", "create", "--name", name];
    args.extend_from_slice(&CLIENT_ARGS);
    args.extend_from_slice(extra);
    run(db, &args, None)
}

pub(crate) fn list_clients(db: &TestDb) -> Vec<Value> {
    let list = json_out(
        &run(db, &["client", "list", "--json"], None),
        "client list --json",
    );
    list.as_array().expect("client list is an array").clone()
}

// ---------------------------------------------------------------------------------------------

#[test]
fn cli_migrate_client_user_keys() {
    for db in backends() {
        let b = db.label;

        // migrate: applies, then reports up to date.
        let first = ok(&run(&db, &["migrate"], None), "migrate");
        assert!(first.contains("applied"), "[{b}] first migrate: {first}");
        let second = ok(&run(&db, &["migrate"], None), "migrate again");
        assert!(
            !second.contains("applied"),
            "[{b}] second migrate applied again: {second}"
        );

        // keys list before any server start.
        let keys = json_out(
            &run(&db, &["keys", "list", "--json"], None),
            "keys list --json",
        );
        assert_eq!(keys, serde_json::json!([]), "[{b}] keys before serve");

        // Public client: id only.
        let public = json_out(
            &create_client(&db, "X", &["--json"]),
            "client create (public)",
        );
        let public_id = public["client_id"].as_str().expect("client_id").to_owned();
        assert!(!public_id.is_empty());
        assert!(
            public.get("client_secret").is_none(),
            "[{b}] public client got a secret: {public}"
        );
        assert_eq!(public.as_object().unwrap().len(), 1, "[{b}] {public}");

        // Confidential client: id and a 43-character secret.
        let conf = json_out(
            &create_client(&db, "Backend", &["--confidential", "--json"]),
            "client create --confidential",
        );
        let conf_id = conf["client_id"].as_str().expect("client_id").to_owned();
        let secret = conf["client_secret"]
            .as_str()
            .expect("client_secret")
            .to_owned();
        assert_eq!(secret.len(), 43, "[{b}] secret {secret:?}");
        assert!(
            secret
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'),
            "[{b}] secret is not base64url: {secret:?}"
        );
        assert_ne!(conf_id, public_id);

        // list: both, never a secret or its hash.
        let raw = ok(
            &run(&db, &["client", "list", "--json"], None),
            "client list --json",
        );
        assert!(!raw.contains(&secret), "[{b}] list shows the secret");
        assert!(
            !raw.contains(&sha256_hex(&secret)),
            "[{b}] list shows the secret's hash"
        );
        let list: Vec<Value> = serde_json::from_str::<Value>(raw.trim())
            .expect("list json")
            .as_array()
            .expect("array")
            .clone();
        assert_eq!(list.len(), 2, "[{b}] {raw}");
        let ids: Vec<&str> = list
            .iter()
            .map(|c| c["id"].as_str().or(c["client_id"].as_str()).expect("id"))
            .collect();
        assert!(
            ids.contains(&public_id.as_str()) && ids.contains(&conf_id.as_str()),
            "[{b}] {raw}"
        );
        for c in &list {
            for key in c.as_object().unwrap().keys() {
                assert!(
                    !key.contains("secret"),
                    "[{b}] list has a {key} member: {c}"
                );
            }
        }
        let text = ok(&run(&db, &["client", "list"], None), "client list");
        assert!(
            text.contains(&public_id) && text.contains(&conf_id),
            "[{b}] {text}"
        );
        assert!(
            !text.contains(&secret) && !text.contains(&sha256_hex(&secret)),
            "[{b}] {text}"
        );

        // delete, then delete again.
        ok(
            &run(&db, &["client", "delete", &public_id], None),
            "client delete",
        );
        let list = list_clients(&db);
        assert_eq!(list.len(), 1, "[{b}] after delete: {list:?}");
        assert!(!serde_json::to_string(&list).unwrap().contains(&public_id));
        let line = fails_readably(
            &run(&db, &["client", "delete", &public_id], None),
            "delete again",
        );
        assert!(
            line.contains(&public_id),
            "[{b}] message should name the client: {line}"
        );

        // users: password on stdin.
        let user = json_out(
            &run(
                &db,
                &[
                    "user",
                    "create",
                    "--username",
                    "alice",
                    "--role",
                    "admin",
                    "--json",
                ],
                Some(&format!("{GOOD_PASSWORD}\n")),
            ),
            "user create",
        );
        assert_eq!(user["username"], "alice", "[{b}] {user}");
        assert!(
            user["user_id"].as_str().is_some_and(|id| !id.is_empty()),
            "[{b}] {user}"
        );
        assert_eq!(user["roles"], serde_json::json!(["admin"]), "[{b}] {user}");
        assert!(
            !user.to_string().contains(GOOD_PASSWORD),
            "[{b}] password echoed"
        );
        let line = fails_readably(
            &run(
                &db,
                &["user", "create", "--username", "alice", "--json"],
                Some(&format!("{GOOD_PASSWORD}\n")),
            ),
            "duplicate user",
        );
        assert!(line.contains("alice"), "[{b}] {line}");
        let line = fails_readably(
            &run(
                &db,
                &["user", "create", "--username", "bob"],
                Some("short\n"),
            ),
            "short password",
        );
        assert!(
            line.contains('8'),
            "[{b}] message should give the minimum: {line}"
        );
        assert!(
            !line.contains("short\n") && !line.contains("\"short\""),
            "[{b}] password echoed: {line}"
        );
        // The refused attempt created nothing: bob can still be created.
        ok(
            &run(
                &db,
                &["user", "create", "--username", "bob"],
                Some(&format!("{GOOD_PASSWORD}\n")),
            ),
            "user create bob",
        );

        // keys list still empty: the CLI does not create keys, the server does.
        let keys = json_out(
            &run(&db, &["keys", "list", "--json"], None),
            "keys list --json",
        );
        assert_eq!(keys, serde_json::json!([]), "[{b}] keys");
    }
}

#[test]
fn cli_rejects_bad_input_readably() {
    for db in backends() {
        let b = db.label;
        let cases: Vec<(&str, Vec<&str>)> = vec![
            (
                "http redirect URI on a public host",
                vec![
                    "--redirect-uri",
                    "http://evil.example/cb",
                    "--audience",
                    "https://api.example.com",
                ],
            ),
            (
                "redirect URI with a fragment",
                vec![
                    "--redirect-uri",
                    "https://app.example/cb#frag",
                    "--audience",
                    "https://api.example.com",
                ],
            ),
            (
                "redirect URI with a wildcard",
                vec![
                    "--redirect-uri",
                    "https://*.example.com/cb",
                    "--audience",
                    "https://api.example.com",
                ],
            ),
            (
                "unknown grant type",
                vec![
                    "--redirect-uri",
                    "http://127.0.0.1:5173/cb",
                    "--audience",
                    "https://api.example.com",
                    "--grant-type",
                    "implicit",
                ],
            ),
            (
                "missing --audience",
                vec!["--redirect-uri", "http://127.0.0.1:5173/cb"],
            ),
        ];
        for (what, extra) in cases {
            let mut args = vec!["client", "create", "--name", "Bad", "--json"];
            args.extend(extra);
            fails_readably(&run(&db, &args, None), &format!("[{b}] {what}"));
        }
        for args in [
            vec!["--config", "/nonexistent.toml", "client", "list"],
            vec!["--config", "/nonexistent.toml", "migrate"],
        ] {
            let line = fails_readably(&run(&db, &args, None), &format!("[{b}] bad config path"));
            assert!(
                line.contains("/nonexistent.toml"),
                "[{b}] should name the file: {line}"
            );
        }
        // Nothing was registered by the refused commands.
        assert!(
            list_clients(&db).is_empty(),
            "[{b}] a refused client was stored"
        );
    }
}

#[test]
fn cli_help_describes_gatehouse() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = command(dir.path())
        .arg("--help")
        .output()
        .expect("run --help");
    let text = ok(&out, "--help");
    assert!(text.contains("Gatehouse"), "{text}");
    for sub in ["serve", "migrate", "client", "user", "keys"] {
        assert!(text.contains(sub), "--help does not list {sub}: {text}");
    }
    let out = command(dir.path())
        .args(["client", "create", "--help"])
        .output()
        .expect("run client create --help");
    let text = ok(&out, "client create --help");
    for flag in [
        "--name",
        "--redirect-uri",
        "--confidential",
        "--grant-type",
        "--scope",
        "--audience",
        "--allowed-origin",
        "--json",
    ] {
        assert!(
            text.contains(flag),
            "client create --help does not document {flag}: {text}"
        );
    }
    let out = command(dir.path())
        .args(["user", "create", "--help"])
        .output()
        .expect("run user create --help");
    let text = ok(&out, "user create --help");
    assert!(
        text.contains("--username") && text.contains("--role"),
        "{text}"
    );
    // An unknown subcommand is an error, not a server start.
    let out = command(dir.path())
        .arg("no-such-command")
        .stdin(Stdio::null())
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(!stderr(&out).contains("panicked"));
}

#[test]
fn migrations_run_up_and_down() {
    use gatehouse::store::keys::SigningKeyRow;
    use gatehouse::store::ConnectionManager;
    for db in backends() {
        let b = db.label;
        let mut conn = ConnectionManager::new(db.url.clone())
            .connect()
            .expect("connect");
        let applied = gatehouse::store::migrate(&mut conn).expect("migrate up");
        assert!(
            !applied.is_empty(),
            "[{b}] no migration applied on an empty database"
        );
        SigningKeyRow::all(&mut conn).expect("tables exist after migrate");
        // Some data, so that the down migrations run over foreign keys.
        gatehouse::registry::create_client(
            &mut conn,
            &gatehouse::registry::NewClient {
                name: "SPA".into(),
                redirect_uris: vec!["http://127.0.0.1:5173/cb".into()],
                audiences: vec!["https://api.example.com".into()],
                ..Default::default()
            },
            &gatehouse::registry::By::operator(gatehouse::state::now()),
        )
        .expect("client");
        gatehouse::store::revert_all(&mut conn).expect("revert all");
        assert!(
            SigningKeyRow::all(&mut conn).is_err(),
            "[{b}] signing_keys still exists after revert_all"
        );
        assert!(
            gatehouse::oauth::model::Client::list(&mut conn).is_err(),
            "[{b}] clients still exists after revert_all"
        );
        let again = gatehouse::store::migrate(&mut conn).expect("migrate up again");
        assert_eq!(again, applied, "[{b}] second up applied a different set");
        assert!(
            gatehouse::oauth::model::Client::list(&mut conn)
                .expect("clients")
                .is_empty(),
            "[{b}] data survived the down migration"
        );
        assert!(
            gatehouse::store::migrate(&mut conn)
                .expect("migrate noop")
                .is_empty(),
            "[{b}] migrations are not idempotent"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_starts_on_fresh_directory() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let log_path = dir.path().join("server.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    // The defaults: sqlite://gatehouse.db and keys/ relative to the working directory.
    let child = command(dir.path())
        .env("GATEHOUSE_BIND", format!("127.0.0.1:{port}"))
        .env("GATEHOUSE_ISSUER", &issuer)
        .env("GATEHOUSE_SERVER__WORKERS", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn gatehouse serve");
    let mut server = KillOnDrop(child);
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();

    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = server.0.try_wait().expect("try_wait") {
            panic!("server exited with {status}:\n{}", log());
        }
        if let Ok(resp) = http.get(format!("{issuer}/healthz")).send().await {
            if resp.status().as_u16() == 200 {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no /healthz within 10 s:\n{}",
            log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let master = dir.path().join("keys").join("master.key");
    assert!(
        master.exists(),
        "keys/master.key was not created:\n{}",
        log()
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&master)
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "master.key mode {:o}", mode & 0o777);
    }
    assert!(
        dir.path().join("gatehouse.db").exists(),
        "no SQLite database in the working directory"
    );

    let get = |path: &str| http.get(format!("{issuer}{path}")).send();
    let jwks = ok_json(get("/.well-known/jwks.json").await.expect("GET jwks")).await;
    let keys = jwks["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 1, "{jwks}");
    let metadata = get("/.well-known/oauth-authorization-server")
        .await
        .expect("GET metadata");
    let metadata = ok_json(metadata).await;
    assert_eq!(metadata["issuer"], Value::String(issuer.clone()));
    let ready = get("/readyz").await.expect("GET readyz");
    assert_eq!(ready.status().as_u16(), 200);

    // The CLI sees the key the server created, as the one that signs.
    let out = command(dir.path())
        .args(["keys", "list", "--json"])
        .stdin(Stdio::null())
        .output()
        .expect("keys list");
    let listed = json_out(&out, "keys list --json");
    let listed = listed.as_array().expect("array");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["kid"], keys[0]["kid"]);
    assert_eq!(listed[0]["state"], "signing");
    // The key file never leaks into the log.
    let key_text = std::fs::read_to_string(&master).expect("read master.key");
    assert!(!log().contains(key_text.trim()), "master key logged");
    // A log file gets no terminal colour codes.
    assert!(!log().contains('\u{1b}'), "ANSI escape codes in a log file");
    drop(server);
}

#[test]
fn cli_keys_rotate_publishes_a_pending_key() {
    use gatehouse::keys::{KeySet, MasterKey};
    for db in backends() {
        let b = db.label;
        // No key yet: nothing to rotate, and no master key is made up for it.
        let out = run(&db, &["keys", "rotate"], None);
        let err = fails_readably(&out, "keys rotate without a master key");
        assert!(err.contains("master key"), "[{b}] {err}");
        assert!(!db.keys_dir().join("master.key").exists(), "[{b}]");

        // What the server does on first start: a master key file and a signing key.
        let master = MasterKey::load_or_create(None, &db.keys_dir()).expect("master key");
        let mut conn = gatehouse::store::ConnectionManager::new(db.url.clone())
            .connect()
            .expect("connect");
        gatehouse::store::migrate(&mut conn).expect("migrate");
        let now = gatehouse::state::now();
        KeySet::load_or_init(&mut conn, &master, "ES256", now).expect("first key");
        let before = json_out(&run(&db, &["keys", "list", "--json"], None), "keys list");
        let first = before[0]["kid"].as_str().expect("kid").to_owned();
        assert_eq!(before[0]["state"], "signing", "[{b}] {before}");

        // Under another master key the new key would be unreadable to the server: refused.
        let out = command(db.dir.path())
            .env("GATEHOUSE_DATABASE_URL", &db.url)
            .env("GATEHOUSE_KEYS_DIR", db.keys_dir())
            .env("GATEHOUSE_MASTER_KEY", "0123456789abcdef".repeat(4))
            .args(["keys", "rotate"])
            .stdin(Stdio::null())
            .output()
            .expect("keys rotate");
        let err = fails_readably(&out, "keys rotate under another master key");
        assert!(err.contains("does not open"), "[{b}] {err}");

        let new = json_out(
            &run(&db, &["keys", "rotate", "--json"], None),
            "keys rotate",
        );
        assert_eq!(new["state"], "published", "[{b}] {new}");
        assert_eq!(new["alg"], "ES256", "[{b}] {new}");
        let activate_at = new["activate_at"].as_i64().expect("activate_at");
        assert!(activate_at >= now + 600, "[{b}] signs too soon: {new}");

        let listed = json_out(&run(&db, &["keys", "list", "--json"], None), "keys list");
        let listed = listed.as_array().expect("array");
        assert_eq!(listed.len(), 2, "[{b}] {listed:?}");
        assert_eq!(listed[0]["kid"], first.as_str());
        assert_eq!(listed[0]["state"], "signing", "[{b}] {listed:?}");
        assert_eq!(listed[0]["retire_at"], activate_at, "[{b}] {listed:?}");
        assert_eq!(
            listed[0]["expires_at"],
            activate_at + 900 + 60,
            "[{b}] {listed:?}"
        );
        assert_eq!(listed[1]["kid"], new["kid"]);
        assert_eq!(listed[1]["state"], "published", "[{b}] {listed:?}");
        let text = ok(&run(&db, &["keys", "list"], None), "keys list");
        assert!(
            text.contains("published") && text.contains("signing"),
            "{text}"
        );

        // A second rotation while one is pending is refused, readably, and adds nothing.
        let out = run(&db, &["keys", "rotate"], None);
        let err = fails_readably(&out, "second keys rotate");
        assert!(err.contains("already waiting"), "[{b}] {err}");
        let listed = json_out(&run(&db, &["keys", "list", "--json"], None), "keys list");
        assert_eq!(listed.as_array().map(Vec::len), Some(2), "[{b}] {listed}");

        // The rotation is in the audit log, once, by the operator.
        let rotations = json_out(
            &run(
                &db,
                &["audit", "tail", "--json", "--event", "key_rotated"],
                None,
            ),
            "audit tail --event key_rotated",
        );
        let rotations = rotations.as_array().expect("array");
        assert_eq!(rotations.len(), 1, "[{b}] {rotations:?}");
        assert_eq!(rotations[0]["actor"], "cli", "[{b}] {rotations:?}");
        let detail = rotations[0]["detail"].as_str().unwrap_or("");
        assert!(
            detail.contains(new["kid"].as_str().expect("kid")),
            "[{b}] {detail}"
        );
    }
}

#[test]
fn cli_audit_tail_prints_recent_events() {
    for db in backends() {
        let b = db.label;
        let client = json_out(&create_client(&db, "X", &["--json"]), "client create");
        let client_id = client["client_id"].as_str().expect("client_id").to_owned();
        ok(
            &run(
                &db,
                &["user", "create", "--username", "alice"],
                Some(GOOD_PASSWORD),
            ),
            "user create",
        );
        ok(
            &run(&db, &["user", "disable", "--username", "alice"], None),
            "user disable",
        );
        ok(
            &run(&db, &["client", "delete", &client_id], None),
            "client delete",
        );

        // Newest last, every field as stored, never the password.
        let raw = ok(
            &run(&db, &["audit", "tail", "--json"], None),
            "audit tail --json",
        );
        assert!(!raw.contains(GOOD_PASSWORD), "[{b}] {raw}");
        let events: Vec<Value> = serde_json::from_str::<Value>(raw.trim())
            .expect("audit tail json")
            .as_array()
            .expect("array")
            .clone();
        let names: Vec<&str> = events
            .iter()
            .map(|e| e["event"].as_str().expect("event"))
            .collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(
            sorted,
            [
                "client_created",
                "client_deleted",
                "user_created",
                "user_disabled"
            ],
            "[{b}] {raw}"
        );
        assert!(
            events
                .windows(2)
                .all(|w| w[0]["at"].as_i64() <= w[1]["at"].as_i64()),
            "[{b}] not oldest first: {raw}"
        );
        for e in &events {
            assert_eq!(e["actor"], "cli", "[{b}] {e}");
            assert_eq!(e["outcome"], "success", "[{b}] {e}");
        }

        // Filters: by user name, by time, by count.
        let alice = json_out(
            &run(&db, &["audit", "tail", "--json", "--user", "alice"], None),
            "audit tail --user",
        );
        let alice: Vec<&str> = alice
            .as_array()
            .expect("array")
            .iter()
            .map(|e| e["event"].as_str().expect("event"))
            .collect();
        assert_eq!(alice.len(), 2, "[{b}] {alice:?}");
        assert!(alice.contains(&"user_created") && alice.contains(&"user_disabled"));
        let recent = json_out(
            &run(&db, &["audit", "tail", "--json", "--since", "1h"], None),
            "audit tail --since 1h",
        );
        assert_eq!(recent.as_array().map(Vec::len), Some(4), "[{b}] {recent}");
        let future = json_out(
            &run(
                &db,
                &["audit", "tail", "--json", "--since", "4000000000"],
                None,
            ),
            "audit tail --since (future)",
        );
        assert_eq!(future, serde_json::json!([]), "[{b}]");
        let last = json_out(
            &run(&db, &["audit", "tail", "--json", "--limit", "1"], None),
            "audit tail --limit 1",
        );
        assert_eq!(last.as_array().map(Vec::len), Some(1), "[{b}] {last}");

        // Human output: the database, then one line per event.
        let text = ok(&run(&db, &["audit", "tail"], None), "audit tail");
        assert!(text.starts_with("database: "), "[{b}] {text}");
        assert_eq!(text.lines().count(), 1 + 4, "[{b}] {text}");
        assert!(
            text.contains("client_created") && text.contains(&client_id),
            "[{b}] {text}"
        );

        // Bad input is one readable line.
        for args in [
            &["audit", "tail", "--since", "yesterday"][..],
            &["audit", "tail", "--user", "nobody"],
            &["audit", "tail", "--event", "nope"],
            &["audit", "tail", "--limit", "0"],
        ] {
            fails_readably(&run(&db, args, None), &args.join(" "));
        }
    }
}

/// A master key file for commands that seal secrets (as `serve` would have created).
fn write_master_key(db: &TestDb) {
    std::fs::create_dir_all(db.keys_dir()).expect("keys dir");
    std::fs::write(
        db.keys_dir().join("master.key"),
        "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80\n",
    )
    .expect("master key");
}

#[test]
fn cli_user_totp_enroll_and_reset() {
    for db in backends() {
        let b = db.label;
        ok(
            &run(
                &db,
                &["user", "create", "--username", "alice"],
                Some(GOOD_PASSWORD),
            ),
            "user create",
        );
        // No master key yet: a readable refusal, nothing enrolled.
        let line = fails_readably(
            &run(
                &db,
                &["user", "totp-enroll", "--username", "alice", "--json"],
                None,
            ),
            "totp-enroll without a master key",
        );
        assert!(line.contains("master key"), "[{b}] {line}");
        write_master_key(&db);

        let out = json_out(
            &run(
                &db,
                &["user", "totp-enroll", "--username", "alice", "--json"],
                None,
            ),
            "totp-enroll",
        );
        let secret = out["secret"].as_str().expect("secret");
        assert_eq!(secret.len(), 32, "[{b}] 160 bits in base32: {out}");
        let url = out["otpauth_url"].as_str().expect("otpauth_url");
        assert!(
            url.starts_with("otpauth://totp/Gatehouse:alice?"),
            "[{b}] {url}"
        );
        assert!(
            url.contains("issuer=Gatehouse") && url.contains(secret),
            "[{b}] {url}"
        );
        let codes = out["recovery_codes"].as_array().expect("recovery_codes");
        assert_eq!(codes.len(), 10, "[{b}] {out}");

        // Enrolling twice is refused, naming the way out.
        let line = fails_readably(
            &run(&db, &["user", "totp-enroll", "--username", "alice"], None),
            "totp-enroll twice",
        );
        assert!(line.contains("totp-reset"), "[{b}] {line}");
        let line = fails_readably(
            &run(&db, &["user", "totp-enroll", "--username", "nobody"], None),
            "totp-enroll unknown user",
        );
        assert!(line.contains("nobody"), "[{b}] {line}");

        let out = ok(
            &run(&db, &["user", "totp-reset", "--username", "alice"], None),
            "totp-reset",
        );
        assert!(out.contains("removed"), "[{b}] {out}");
        let out = ok(
            &run(&db, &["user", "totp-enroll", "--username", "alice"], None),
            "totp-enroll after reset",
        );
        assert!(out.contains("recovery codes"), "[{b}] {out}");

        // The audit log has each step; the secret is in none of it.
        let raw = ok(&run(&db, &["audit", "tail", "--json"], None), "audit tail");
        assert!(!raw.contains(secret), "[{b}] secret in the audit log");
        for event in ["mfa_enrolled", "mfa_reset"] {
            assert!(raw.contains(event), "[{b}] {event} missing: {raw}");
        }
    }
}

/// Diesel keys a migration by the part of its folder name before the first `_`: two folders with
/// one version would run only one of them. Both backends have the same list.
#[test]
fn migration_versions_are_unique_and_the_same_on_both_backends() {
    let versions = |backend: &str| -> Vec<String> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(backend);
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .expect("migrations folder")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let sqlite = versions("sqlite");
    assert_eq!(
        sqlite,
        versions("postgres"),
        "same migrations on both backends"
    );
    let mut seen = std::collections::BTreeSet::new();
    for name in &sqlite {
        let version = name.split('_').next().expect("version");
        assert!(
            seen.insert(version.to_owned()),
            "two migrations share version {version}: {sqlite:?}"
        );
    }
}

#[test]
fn cli_user_list_enable_delete() {
    for db in backends() {
        let b = db.label;
        for name in ["alice", "bob"] {
            ok(
                &run(
                    &db,
                    &["user", "create", "--username", name],
                    Some(GOOD_PASSWORD),
                ),
                "user create",
            );
        }
        ok(
            &run(&db, &["user", "disable", "--username", "bob"], None),
            "disable",
        );
        let list = json_out(&run(&db, &["user", "list", "--json"], None), "user list");
        let list = list.as_array().expect("array");
        assert_eq!(list.len(), 2, "[{b}] {list:?}");
        assert_eq!(list[1]["username"], "bob");
        assert_eq!(list[1]["disabled"], true);
        let out = ok(
            &run(&db, &["user", "list", "--search", "ob"], None),
            "user list --search",
        );
        assert!(out.contains("bob") && !out.contains("alice"), "[{b}] {out}");
        assert!(out.contains("disabled"), "[{b}] {out}");
        ok(
            &run(&db, &["user", "enable", "--username", "bob"], None),
            "enable",
        );
        let list = json_out(&run(&db, &["user", "list", "--json"], None), "user list");
        assert_eq!(list[1]["disabled"], false, "[{b}]");
        let out = ok(
            &run(&db, &["user", "delete", "--username", "bob"], None),
            "delete",
        );
        assert!(out.contains("deleted bob"), "[{b}] {out}");
        let list = json_out(&run(&db, &["user", "list", "--json"], None), "user list");
        assert_eq!(list.as_array().expect("array").len(), 1, "[{b}]");
        let line = fails_readably(
            &run(&db, &["user", "delete", "--username", "bob"], None),
            "delete twice",
        );
        assert!(line.contains("bob"), "[{b}] {line}");
        let line = fails_readably(
            &run(&db, &["user", "list", "--limit", "0"], None),
            "limit 0",
        );
        assert!(line.contains("page size"), "[{b}] {line}");
    }
}

#[test]
fn cli_client_update_checks_like_a_registration() {
    for db in backends() {
        let b = db.label;
        let created = json_out(
            &create_client(&db, "Old name", &["--json"]),
            "client create",
        );
        let id = created["client_id"].as_str().expect("client_id").to_owned();
        let out = json_out(
            &run(
                &db,
                &[
                    "client",
                    "update",
                    &id,
                    "--name",
                    "New name",
                    "--redirect-uri",
                    "http://127.0.0.1:5173/callback",
                    "--scope",
                    "api:write",
                    "--require-mfa",
                    "true",
                    "--json",
                ],
                None,
            ),
            "client update",
        );
        assert_eq!(out["name"], "New name", "[{b}] {out}");
        assert_eq!(
            out["redirect_uris"],
            serde_json::json!(["http://127.0.0.1:5173/callback"])
        );
        assert_eq!(out["scopes"], serde_json::json!(["api:write"]));
        assert_eq!(out["require_mfa"], true);
        assert_eq!(
            out["audiences"],
            serde_json::json!(["https://api.example.com"]),
            "kept"
        );
        let listed = list_clients(&db);
        assert_eq!(listed[0]["name"], "New name", "[{b}]");

        // Refused like a registration, and nothing changes.
        for (args, says) in [
            (
                vec!["--redirect-uri", "https://app.example/cb#frag"],
                "fragment",
            ),
            (vec!["--redirect-uri", "http://app.example/cb"], "https"),
            (vec!["--grant-type", "client_credentials"], "confidential"),
            (vec![], "nothing to change"),
        ] {
            let mut all = vec!["client", "update", id.as_str()];
            all.extend(args);
            let line = fails_readably(&run(&db, &all, None), "bad update");
            assert!(line.contains(says), "[{b}] {line}");
        }
        let line = fails_readably(
            &run(&db, &["client", "update", "cl_nope", "--name", "x"], None),
            "unknown client",
        );
        assert!(line.contains("cl_nope"), "[{b}] {line}");
        assert_eq!(
            list_clients(&db)[0]["redirect_uris"],
            serde_json::json!(["http://127.0.0.1:5173/callback"])
        );
        let audit = ok(
            &run(&db, &["audit", "tail", "--event", "client_updated"], None),
            "audit",
        );
        assert!(
            audit.contains("changed client_name, redirect_uris, scope, require_mfa"),
            "[{b}] {audit}"
        );
    }
}

#[test]
fn cli_client_skip_consent_and_post_logout_redirect_uris() {
    for db in backends() {
        let b = db.label;
        let created = json_out(
            &create_client(
                &db,
                "Portal",
                &[
                    "--skip-consent",
                    "--post-logout-redirect-uri",
                    "https://portal.example/bye",
                    "--post-logout-redirect-uri",
                    "http://127.0.0.1:5173/bye",
                    "--json",
                ],
            ),
            "client create",
        );
        let id = created["client_id"].as_str().expect("client_id").to_owned();
        let listed = list_clients(&db);
        assert_eq!(listed[0]["skip_consent"], true, "[{b}] {listed:?}");
        assert_eq!(
            listed[0]["post_logout_redirect_uris"],
            serde_json::json!(["https://portal.example/bye", "http://127.0.0.1:5173/bye"]),
            "[{b}]"
        );
        let table = ok(&run(&db, &["client", "list"], None), "client list");
        assert!(table.contains("POST_LOGOUT_URIS"), "[{b}] {table}");
        assert!(table.contains("skipped"), "[{b}] {table}");

        // Turned off, and the list replaced.
        let out = json_out(
            &run(
                &db,
                &[
                    "client",
                    "update",
                    &id,
                    "--skip-consent",
                    "false",
                    "--post-logout-redirect-uri",
                    "https://portal.example/signed-out",
                    "--json",
                ],
                None,
            ),
            "client update",
        );
        assert_eq!(out["skip_consent"], false, "[{b}] {out}");
        assert_eq!(
            out["post_logout_redirect_uris"],
            serde_json::json!(["https://portal.example/signed-out"])
        );

        // Checked like redirect URIs; the fault names the setting; nothing changes.
        for bad in ["http://portal.example/bye", "https://portal.example/bye#x"] {
            let line = fails_readably(
                &run(
                    &db,
                    &["client", "update", &id, "--post-logout-redirect-uri", bad],
                    None,
                ),
                "bad post-logout URI",
            );
            assert!(line.contains("post-logout redirect URI"), "[{b}] {line}");
        }
        let line = fails_readably(
            &create_client(
                &db,
                "Bad",
                &["--post-logout-redirect-uri", "javascript:alert(1)"],
            ),
            "bad post-logout URI at creation",
        );
        assert!(line.contains("post-logout redirect URI"), "[{b}] {line}");

        // And cleared.
        let out = json_out(
            &run(
                &db,
                &[
                    "client",
                    "update",
                    &id,
                    "--no-post-logout-redirect-uris",
                    "--json",
                ],
                None,
            ),
            "client update",
        );
        assert_eq!(out["post_logout_redirect_uris"], serde_json::json!([]));
        assert_eq!(
            list_clients(&db).len(),
            1,
            "[{b}] the bad one was not created"
        );
    }
}

#[test]
fn cli_client_rotate_secret_shows_the_new_secret_once() {
    for db in backends() {
        let b = db.label;
        let created = json_out(
            &run(
                &db,
                &[
                    "client",
                    "create",
                    "--name",
                    "Backend",
                    "--confidential",
                    "--grant-type",
                    "client_credentials",
                    "--audience",
                    "https://api.example.com",
                    "--json",
                ],
                None,
            ),
            "client create",
        );
        let id = created["client_id"].as_str().expect("client_id").to_owned();
        let old = created["client_secret"]
            .as_str()
            .expect("secret")
            .to_owned();
        let out = json_out(
            &run(&db, &["client", "rotate-secret", &id, "--json"], None),
            "rotate-secret",
        );
        let new = out["client_secret"].as_str().expect("new secret");
        assert_ne!(new, old, "[{b}]");
        let until = out["previous_secret_expires_at"]
            .as_i64()
            .expect("grace end");
        let created_at = list_clients(&db)[0]["created_at"]
            .as_i64()
            .expect("created_at");
        assert!(
            (until - created_at - 86_400).abs() < 60,
            "[{b}] default grace 24 h: {out}"
        );
        let out = ok(
            &run(
                &db,
                &["client", "rotate-secret", &id, "--grace-secs", "0"],
                None,
            ),
            "rotate-secret without grace",
        );
        assert!(out.contains("no longer works"), "[{b}] {out}");
        let spa = json_out(&create_client(&db, "SPA", &["--json"]), "spa");
        let line = fails_readably(
            &run(
                &db,
                &[
                    "client",
                    "rotate-secret",
                    spa["client_id"].as_str().expect("id"),
                ],
                None,
            ),
            "public client",
        );
        assert!(line.contains("public client"), "[{b}] {line}");
        let raw = ok(&run(&db, &["audit", "tail", "--json"], None), "audit");
        assert!(
            !raw.contains(new) && !raw.contains(&old),
            "[{b}] a secret in the audit log"
        );
    }
}

/// `gatehouse registration-token create` prints the token once, stores only its hash, and
/// `list`/`revoke` manage it; bad arguments fail readably.
#[test]
fn registration_token_create_prints_token_once_and_stores_only_its_hash() {
    for db in backends() {
        let b = db.label;
        let before = gatehouse::state::now();
        let out = ok(
            &run(
                &db,
                &[
                    "registration-token",
                    "create",
                    "--expires-in",
                    "2h",
                    "--max-uses",
                    "3",
                    "--json",
                ],
                None,
            ),
            "registration-token create",
        );
        let created: Value = serde_json::from_str(out.trim()).expect("JSON");
        let token = created["token"].as_str().expect("token").to_owned();
        let id = created["id"].as_str().expect("id").to_owned();
        assert_eq!(created["max_uses"], 3, "[{b}]");
        let expires_at = created["expires_at"].as_i64().expect("expires_at");
        assert!(
            (before + 7_200..=before + 7_300).contains(&expires_at),
            "[{b}] {expires_at}"
        );

        let listed = ok(
            &run(&db, &["registration-token", "list", "--json"], None),
            "list",
        );
        assert!(listed.contains(&id), "[{b}] {listed}");
        assert!(!listed.contains(&token), "[{b}] the token is listed");
        assert!(
            !listed.contains(&sha256_hex(&token)),
            "[{b}] its hash is listed"
        );
        let audit = ok(&run(&db, &["audit", "tail", "--json"], None), "audit");
        assert!(
            audit.contains("registration_token_created"),
            "[{b}] {audit}"
        );
        assert!(
            !audit.contains(&token),
            "[{b}] the token is in the audit log"
        );

        ok(
            &run(&db, &["registration-token", "revoke", &id], None),
            "revoke",
        );
        let listed = ok(&run(&db, &["registration-token", "list"], None), "list");
        assert!(
            listed.contains("no initial access tokens"),
            "[{b}] {listed}"
        );
        let again = fails_readably(
            &run(&db, &["registration-token", "revoke", &id], None),
            "revoke twice",
        );
        assert!(again.contains(&id), "[{b}] {again}");
        for args in [
            &["registration-token", "create", "--expires-in", "soon"][..],
            &["registration-token", "create", "--expires-in", "10s"][..],
            &["registration-token", "create", "--max-uses", "0"][..],
        ] {
            let line = fails_readably(&run(&db, args, None), &args.join(" "));
            assert!(
                line.contains("expire") || line.contains("registers between"),
                "[{b}] {line}"
            );
        }
    }
}

#[test]
fn admin_commands_never_create_a_database_and_name_the_one_they_use() {
    let dir = tempfile::tempdir().expect("temp dir");
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    // Run from another folder with the default, relative database: refused, nothing created.
    for args in [
        vec!["client", "list"],
        vec!["client", "list", "--json"],
        vec!["user", "list"],
        vec!["keys", "list"],
        vec!["audit", "tail"],
    ] {
        let out = command(&elsewhere)
            .env("GATEHOUSE_KEYS_DIR", dir.path().join("keys"))
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .expect("run");
        let err = fails_readably(&out, &args.join(" "));
        let expected = elsewhere.join("gatehouse.db");
        assert!(
            err.contains(&expected.display().to_string()) && err.contains("gatehouse migrate"),
            "{args:?}: {err}"
        );
        assert!(
            !expected.exists(),
            "{args:?} created {}",
            expected.display()
        );
    }
    assert!(!dir.path().join("keys").exists(), "no master key either");

    // migrate creates it, owner-only, and says where; then human output names it.
    let url = format!("sqlite://{}", elsewhere.join("g.db").display());
    let run_here = |args: &[&str]| {
        command(&elsewhere)
            .env("GATEHOUSE_DATABASE_URL", &url)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run")
    };
    let migrated = ok(&run_here(&["migrate"]), "migrate");
    assert!(migrated.contains("(created)"), "{migrated}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(elsewhere.join("g.db"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "database file mode {mode:o}");
    }
    let listed = ok(&run_here(&["client", "list"]), "client list");
    assert!(
        listed.starts_with(&format!(
            "database: sqlite://{}",
            elsewhere.join("g.db").display()
        )),
        "{listed}"
    );
    let json = ok(
        &run_here(&["client", "list", "--json"]),
        "client list --json",
    );
    assert!(!json.contains("database:"), "not in JSON: {json}");
    serde_json::from_str::<serde_json::Value>(&json).expect("JSON only");
}

#[test]
fn serve_refuses_a_bad_database_in_one_line_and_leaves_no_master_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    for url in [
        "sqlite://".to_owned(),
        "mysql://root@127.0.0.1/gatehouse".to_owned(),
        format!("sqlite://{}", dir.path().join("missing/dir/g.db").display()),
        "postgres://postgres@127.0.0.1:1/nothing".to_owned(),
    ] {
        let started = std::time::Instant::now();
        let out = command(dir.path())
            .env("GATEHOUSE_DATABASE_URL", &url)
            .env("GATEHOUSE_KEYS_DIR", dir.path().join("keys"))
            .env("GATEHOUSE_BIND", "127.0.0.1:0")
            .args(["serve"])
            .stdin(Stdio::null())
            .output()
            .expect("serve");
        assert!(!out.status.success(), "{url}");
        let err = stderr(&out);
        let last = err.trim().lines().last().unwrap_or_default().to_owned();
        assert!(last.starts_with("gatehouse:"), "{url}: {err}");
        assert!(
            err.lines().count() <= 3,
            "{url}: a few lines, not a flood: {err}"
        );
        assert!(!err.contains("panicked"), "{url}: {err}");
        // Generous for a loaded machine: the point is seconds, not the pool's long timeout.
        assert!(
            started.elapsed() < std::time::Duration::from_secs(8),
            "{url}"
        );
        assert!(
            !dir.path().join("keys").exists(),
            "{url}: a master key was left behind"
        );
    }
}

#[test]
fn serve_will_not_make_a_new_master_key_for_a_database_with_keys() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("g.db").display());
    gatehouse::store::create_sqlite_file(&url).unwrap();
    let master = gatehouse::keys::MasterKey::generate();
    let mut conn = gatehouse::store::ConnectionManager::new(url.clone())
        .connect()
        .expect("connect");
    gatehouse::store::migrate(&mut conn).expect("migrate");
    gatehouse::keys::KeySet::load_or_init(&mut conn, &master, "ES256", gatehouse::state::now())
        .expect("first key");
    drop(conn);
    let out = command(dir.path())
        .env("GATEHOUSE_DATABASE_URL", &url)
        .env("GATEHOUSE_KEYS_DIR", dir.path().join("keys"))
        .env("GATEHOUSE_BIND", "127.0.0.1:0")
        .args(["serve"])
        .stdin(Stdio::null())
        .output()
        .expect("serve");
    let err = fails_readably(&out, "serve without the database's master key");
    assert!(err.contains(master.id()), "names the key it needs: {err}");
    assert!(!dir.path().join("keys").join("master.key").exists());

    // The wrong key is refused the same way.
    let out = command(dir.path())
        .env("GATEHOUSE_DATABASE_URL", &url)
        .env("GATEHOUSE_MASTER_KEY", "0123456789abcdef".repeat(4))
        .env("GATEHOUSE_BIND", "127.0.0.1:0")
        .args(["serve"])
        .stdin(Stdio::null())
        .output()
        .expect("serve");
    let err = fails_readably(&out, "serve with another master key");
    assert!(err.contains(master.id()), "{err}");
}

#[test]
fn config_show_prints_values_with_their_sources_and_no_secret() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = command(dir.path())
        .env("GATEHOUSE_BIND", "127.0.0.1:9000")
        .env(
            "GATEHOUSE_DATABASE_URL",
            "postgres://gh:hunter2@db.example/gatehouse",
        )
        .args(["config", "show"])
        .stdin(Stdio::null())
        .output()
        .expect("config show");
    let text = ok(&out, "config show");
    assert!(!text.contains("hunter2"), "{text}");
    let line = |key: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{key} ")))
            .unwrap_or_else(|| panic!("{key} in {text}"))
            .to_owned()
    };
    assert!(line("server.issuer").contains("\"http://127.0.0.1:9000\"  (server.bind)"));
    assert!(line("server.bind").ends_with("(env GATEHOUSE_BIND)"));
    assert!(line("jwks.max_age_secs").ends_with("(default)"));
    let json = ok(
        &command(dir.path())
            .args(["config", "show", "--json"])
            .stdin(Stdio::null())
            .output()
            .expect("config show --json"),
        "config show --json",
    );
    let all: Value = serde_json::from_str(&json).expect("JSON");
    assert!(all
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["key"] == "tokens.access_token_ttl_secs" && e["source"] == "default"));
    assert!(
        !dir.path().join("gatehouse.db").exists(),
        "reads no database"
    );

    // A typo'd setting stops every command, naming the setting it resembles.
    let out = command(dir.path())
        .env("GATEHOUSE_TOKENS__ACCES_TOKEN_TTL_SECS", "60")
        .args(["config", "show"])
        .stdin(Stdio::null())
        .output()
        .expect("config show");
    let err = fails_readably(&out, "typo'd setting");
    assert!(err.contains("tokens.access_token_ttl_secs"), "{err}");
}

#[test]
fn version_shows_the_version_and_the_commit() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = command(dir.path())
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .expect("run --version");
    let text = ok(&out, "--version");
    let expected = format!(
        "gatehouse {} (commit {})",
        env!("CARGO_PKG_VERSION"),
        gatehouse::version::COMMIT
    );
    assert_eq!(text.trim(), expected);
    let commit = gatehouse::version::COMMIT;
    assert!(
        commit == "unknown" || commit.chars().all(|c| c.is_ascii_hexdigit()),
        "{commit}"
    );
}

/// `serve` with `[metrics] bind`: metrics on their own port only; RUST_LOG chooses the log
/// filter when GATEHOUSE_LOG is unset; the startup line names the version and commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_metrics_bind_serves_metrics_on_their_own_listener() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let metrics_port = free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let log_path = dir.path().join("server.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let child = command(dir.path())
        .env("GATEHOUSE_BIND", format!("127.0.0.1:{port}"))
        .env("GATEHOUSE_ISSUER", &issuer)
        .env("GATEHOUSE_SERVER__WORKERS", "1")
        .env(
            "GATEHOUSE_METRICS__BIND",
            format!("127.0.0.1:{metrics_port}"),
        )
        // No access lines: only warnings, and Gatehouse's own info lines.
        .env("RUST_LOG", "warn,gatehouse=info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn gatehouse serve");
    let mut server = KillOnDrop(child);
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let http = reqwest::Client::new();
    let metrics_url = format!("http://127.0.0.1:{metrics_port}/metrics");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = server.0.try_wait().expect("try_wait") {
            panic!("server exited with {status}:\n{}", log());
        }
        if let Ok(resp) = http.get(&metrics_url).send().await {
            if resp.status().as_u16() == 200 {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no /metrics within 10 s:\n{}",
            log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let health = http
        .get(format!("{issuer}/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status().as_u16(), 200);
    let public = http
        .get(format!("{issuer}/metrics"))
        .send()
        .await
        .expect("GET");
    assert_eq!(
        public.status().as_u16(),
        404,
        "metrics on the public listener"
    );
    let text = http
        .get(&metrics_url)
        .send()
        .await
        .expect("scrape")
        .text()
        .await
        .expect("body");
    let healthz =
        "gatehouse_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 1";
    assert!(text.contains(healthz), "{text}");
    assert!(text.contains("gatehouse_build_info{"), "{text}");
    let log = log();
    let started = log
        .lines()
        .find(|l| l.contains("Gatehouse is listening"))
        .unwrap_or_else(|| panic!("no startup line:\n{log}"));
    assert!(started.contains(env!("CARGO_PKG_VERSION")), "{started}");
    assert!(started.contains(gatehouse::version::COMMIT), "{started}");
    assert!(
        !log.contains("access:"),
        "RUST_LOG=warn,gatehouse=info still logged access lines:\n{log}"
    );
    drop(server);
}

#[test]
fn cli_user_create_with_profile_and_update_it() {
    for db in backends() {
        let b = db.label;
        let created = json_out(
            &run(
                &db,
                &[
                    "user",
                    "create",
                    "--username",
                    "alice",
                    "--name",
                    " Alice Liddell ",
                    "--email",
                    "alice@example.com",
                    "--email-verified",
                    "--json",
                ],
                Some(GOOD_PASSWORD),
            ),
            "user create with a profile",
        );
        assert_eq!(created["name"], "Alice Liddell", "[{b}] trimmed");
        assert_eq!(created["email"], "alice@example.com", "[{b}]");
        assert_eq!(created["email_verified"], true, "[{b}]");

        // A new address is unverified unless said otherwise; the name stays.
        let update = |args: &[&str]| {
            let mut all = vec!["user", "update", "--username", "alice", "--json"];
            all.extend_from_slice(args);
            run(&db, &all, None)
        };
        let moved = json_out(&update(&["--email", "alice@new.example"]), "new address");
        assert_eq!(moved["email"], "alice@new.example", "[{b}]");
        assert_eq!(moved["email_verified"], false, "[{b}]");
        assert_eq!(moved["name"], "Alice Liddell", "[{b}]");
        let verified = json_out(&update(&["--email-verified", "true"]), "verified");
        assert_eq!(verified["email_verified"], true, "[{b}]");
        let cleared = json_out(&update(&["--clear-name", "--clear-email"]), "cleared");
        assert_eq!(cleared["name"], Value::Null, "[{b}]");
        assert_eq!(cleared["email"], Value::Null, "[{b}]");
        assert_eq!(
            cleared["email_verified"], false,
            "[{b}] cleared with the address"
        );

        // `user list` shows the profile, in JSON and in the table.
        json_out(
            &update(&["--name", "Alice", "--email", "a@example.com"]),
            "again",
        );
        let list = json_out(&run(&db, &["user", "list", "--json"], None), "user list");
        assert_eq!(list[0]["name"], "Alice", "[{b}]");
        assert_eq!(list[0]["email"], "a@example.com", "[{b}]");
        let table = ok(&run(&db, &["user", "list"], None), "user list");
        assert!(
            table.contains("NAME") && table.contains("EMAIL"),
            "[{b}] {table}"
        );
        assert!(table.contains("a@example.com"), "[{b}] {table}");
        let audited = ok(&run(&db, &["audit", "tail", "--json"], None), "audit");
        assert!(audited.contains("profile_changed"), "[{b}] {audited}");
    }
}

#[test]
fn cli_user_profile_refusals_are_one_readable_line() {
    for db in backends() {
        let b = db.label;
        for (args, says) in [
            (vec!["--email", "not-an-address"], "e-mail address"),
            (vec!["--email", "a@b@c"], "e-mail address"),
            (vec!["--email-verified"], "verified"),
        ] {
            let mut all = vec!["user", "create", "--username", "bob"];
            all.extend_from_slice(&args);
            let line = fails_readably(&run(&db, &all, Some(GOOD_PASSWORD)), "create");
            assert!(line.contains(says), "[{b}] {args:?}: {line}");
        }
        let long_name = "n".repeat(201);
        let line = fails_readably(
            &run(
                &db,
                &["user", "create", "--username", "bob", "--name", &long_name],
                Some(GOOD_PASSWORD),
            ),
            "long name",
        );
        assert!(line.contains("name"), "[{b}] {line}");
        let list = json_out(&run(&db, &["user", "list", "--json"], None), "user list");
        assert_eq!(
            list.as_array().expect("array").len(),
            0,
            "[{b}] nothing created"
        );

        ok(
            &run(
                &db,
                &["user", "create", "--username", "bob"],
                Some(GOOD_PASSWORD),
            ),
            "user create",
        );
        for (args, says) in [
            (vec!["--name", "Bob", "--clear-name"], "not both"),
            (
                vec!["--email", "b@example.com", "--clear-email"],
                "not both",
            ),
            (vec!["--email-verified", "yes"], "true or false"),
            (vec!["--email-verified", "true"], "verified"),
            (vec!["--email", "bob @example.com"], "spaces"),
            (vec![], "nothing to change"),
        ] {
            let mut all = vec!["user", "update", "--username", "bob"];
            all.extend_from_slice(&args);
            let line = fails_readably(&run(&db, &all, None), "update");
            assert!(line.contains(says), "[{b}] {args:?}: {line}");
        }
        let line = fails_readably(
            &run(
                &db,
                &["user", "update", "--username", "nobody", "--name", "N"],
                None,
            ),
            "unknown user",
        );
        assert!(line.contains("nobody"), "[{b}] {line}");
    }
}
