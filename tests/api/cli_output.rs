//! The command line for a person (dates, aligned tables, grant types in the help, new
//! passwords asked twice without echo) and for programs (`--json` on every verb).

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::cli::{
    backends, command, create_client, fails_readably, json_out, ok, run, stdout, TestDb,
    GOOD_PASSWORD,
};

#[test]
fn user_create_refuses_mismatched_or_short_passwords() {
    for db in backends() {
        let b = db.label;
        for (what, input) in [
            ("7 characters", "1234567\n"),
            ("only spaces", "            \n"),
            ("only whitespace", " \t      \t \n"),
            ("empty", "\n"),
        ] {
            let line = fails_readably(
                &run(&db, &["user", "create", "--username", "bob"], Some(input)),
                &format!("[{b}] {what}"),
            );
            assert!(line.contains("password"), "[{b}] {what}: {line}");
        }
        // passwords.min_length raises the minimum.
        let mut cmd = command(db.dir.path());
        let out = cmd
            .env("GATEHOUSE_DATABASE_URL", &db.url)
            .env("GATEHOUSE_KEYS_DIR", db.keys_dir())
            .env("GATEHOUSE_PASSWORDS__MIN_LENGTH", "20")
            .args(["user", "create", "--username", "bob"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                child
                    .stdin
                    .take()
                    .expect("stdin")
                    .write_all(b"nineteen characters\n")?;
                child.wait_with_output()
            })
            .expect("run");
        let line = fails_readably(&out, &format!("[{b}] under min_length"));
        assert!(line.contains("at least 20"), "[{b}] {line}");
        // No user was created by any refusal; a good password works.
        let users = json_out(&run(&db, &["user", "list", "--json"], None), "user list");
        assert_eq!(users, serde_json::json!([]), "[{b}]");
        ok(
            &run(
                &db,
                &["user", "create", "--username", "bob"],
                Some(&format!("{GOOD_PASSWORD}\n")),
            ),
            "good password",
        );
        // The same policy for set-password.
        fails_readably(
            &run(
                &db,
                &["user", "set-password", "--username", "bob"],
                Some("short\n"),
            ),
            &format!("[{b}] set-password short"),
        );
    }
    at_a_terminal_the_password_is_asked_twice();
}

/// At a terminal (a pseudo-terminal from `script`), `user create` prompts twice without echo
/// and refuses two different passwords.
fn at_a_terminal_the_password_is_asked_twice() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("`script` not found: terminal variant skipped");
        return;
    }
    let db = backends().into_iter().next().expect("sqlite");
    let at_terminal = |username: &str, first: &str, second: &str| {
        let line = format!("{} user create --username {username}", crate::cli::BIN);
        let mut script = Command::new("script");
        for (k, _) in std::env::vars() {
            if k.starts_with("GATEHOUSE_") {
                script.env_remove(k);
            }
        }
        let mut child = script
            .current_dir(db.dir.path())
            .env("GATEHOUSE_PASSWORDS__MEMORY_KIB", "256")
            .env("GATEHOUSE_PASSWORDS__ITERATIONS", "1")
            .env("GATEHOUSE_DATABASE_URL", &db.url)
            .env("GATEHOUSE_KEYS_DIR", db.keys_dir())
            .args(["-qec", &line, "/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("script");
        let mut stdin = child.stdin.take().expect("stdin");
        for text in [first, second] {
            std::thread::sleep(Duration::from_millis(700));
            stdin
                .write_all(format!("{text}\n").as_bytes())
                .expect("type");
            stdin.flush().expect("flush");
        }
        drop(stdin);
        child.wait_with_output().expect("wait")
    };
    let differ = at_terminal("carol", "first password 1", "other password 2");
    let text = stdout(&differ);
    assert!(!differ.status.success(), "{text}");
    assert!(text.contains("differ"), "{text}");
    assert!(
        !text.contains("first password 1"),
        "the password was echoed: {text}"
    );
    let same = at_terminal("carol", "first password 1", "first password 1");
    let text = stdout(&same);
    assert!(same.status.success(), "{text}");
    assert!(text.contains("user_id"), "{text}");
    assert!(!text.contains("first password 1"), "echoed: {text}");
}

#[test]
fn client_list_has_header_and_readable_dates() {
    for db in backends() {
        let b = db.label;
        ok(&create_client(&db, "Front end", &[]), "create");
        ok(
            &create_client(&db, "Backend", &["--confidential", "--scope", "api:write"]),
            "create",
        );
        let text = ok(&run(&db, &["client", "list"], None), "client list");
        // The database first, then the table.
        let (database, table) = text.split_once('\n').expect("lines");
        assert!(database.starts_with("database: "), "[{b}] {text}");
        let text = table.to_owned();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "[{b}] {text}");
        for column in [
            "CLIENT_ID",
            "TYPE",
            "NAME",
            "GRANTS",
            "SCOPES",
            "ORIGINS",
            "CREATED",
        ] {
            assert!(lines[0].contains(column), "[{b}] header: {}", lines[0]);
        }
        // Columns are aligned: each header word starts where its cells start.
        let at = |line: &str, what: &str| line.find(what).expect(what);
        let scopes = at(lines[0], "SCOPES");
        assert_eq!(at(lines[1], "api:read"), scopes, "[{b}] {text}");
        assert_eq!(at(lines[2], "api:read"), scopes, "[{b}] {text}");
        assert!(text.contains("api:read,api:write"), "[{b}] {text}");
        assert!(
            text.contains("http://127.0.0.1:5173"),
            "[{b}] origins: {text}"
        );
        // Dates in UTC with how long ago, not unix seconds.
        let year = lines[1].find("20").expect("a date");
        assert!(lines[1][year..].contains("Z ("), "[{b}] {text}");
        assert!(
            lines[1].contains("(now)") || lines[1].contains(" s ago)"),
            "[{b}] {text}"
        );
        // JSON keeps unix seconds.
        let list = json_out(&run(&db, &["client", "list", "--json"], None), "json");
        assert!(list[0]["created_at"].is_i64(), "[{b}] {list}");

        // keys: dates and durations after a rotation.
        first_signing_key(&db);
        let rotated = ok(&run(&db, &["keys", "rotate"], None), "keys rotate");
        assert!(rotated.contains("Z (in 10 min)"), "[{b}] {rotated}");
        let keys = ok(&run(&db, &["keys", "list"], None), "keys list");
        assert!(
            keys.lines().nth(1).unwrap_or_default().starts_with("KID"),
            "[{b}] {keys}"
        );
        assert!(keys.contains("(in 10 min)"), "[{b}] {keys}");
        let json = json_out(&run(&db, &["keys", "list", "--json"], None), "keys json");
        assert!(json[0]["activate_at"].is_i64(), "[{b}] {json}");
    }
}

/// What the server does on first start: a master key file and a signing key.
fn first_signing_key(db: &TestDb) {
    use gatehouse::keys::{KeySet, MasterKey};
    let master = MasterKey::load_or_create(None, &db.keys_dir()).expect("master key");
    let mut conn = gatehouse::store::ConnectionManager::new(db.url.clone())
        .connect()
        .expect("connect");
    KeySet::load_or_init(&mut conn, &master, "ES256", gatehouse::state::now()).expect("key");
}

/// The leaf subcommands `gatehouse --help` lists, found by walking the help of each group.
fn leaf_commands(dir: &std::path::Path, path: &[String]) -> Vec<Vec<String>> {
    let mut args = path.to_vec();
    args.push("--help".to_owned());
    let out = command(dir).args(&args).output().expect("help");
    let text = ok(&out, &format!("{args:?}"));
    let Some(section) = text.split("Commands:\n").nth(1) else {
        return vec![path.to_vec()];
    };
    let mut leaves = Vec::new();
    for line in section.lines() {
        if line.trim().is_empty() || !line.starts_with("  ") {
            break;
        }
        let name = line.split_whitespace().next().expect("name");
        if name == "help" {
            continue;
        }
        let mut sub = path.to_vec();
        sub.push(name.to_owned());
        leaves.extend(leaf_commands(dir, &sub));
    }
    leaves
}

#[test]
fn every_cli_verb_has_json() {
    let dir = tempfile::tempdir().expect("temp dir");
    let leaves = leaf_commands(dir.path(), &[]);
    assert!(leaves.len() > 20, "{leaves:?}");
    for leaf in &leaves {
        if leaf == &["serve".to_owned()] {
            continue; // the server writes logs, not a result
        }
        let mut args = leaf.clone();
        args.push("--help".to_owned());
        let text = ok(
            &command(dir.path()).args(&args).output().expect("help"),
            "help",
        );
        assert!(text.contains("--json"), "{leaf:?} has no --json: {text}");
    }

    // And the JSON is JSON, for the verbs that changed most.
    for db in backends() {
        let b = db.label;
        let migrated = json_out(&run(&db, &["migrate", "--json"], None), "migrate");
        assert!(migrated["applied"].is_array(), "[{b}] {migrated}");
        let id = json_out(&create_client(&db, "X", &["--json"]), "create")["client_id"]
            .as_str()
            .expect("id")
            .to_owned();
        let deleted = json_out(
            &run(&db, &["client", "delete", &id, "--json"], None),
            "delete",
        );
        assert_eq!(deleted["deleted"], true, "[{b}] {deleted}");
        let pw = format!("{GOOD_PASSWORD}\n");
        json_out(
            &run(
                &db,
                &["user", "create", "--username", "dan", "--json"],
                Some(&pw),
            ),
            "user create",
        );
        let u = |args: &[&str], stdin: Option<&str>| -> Value {
            let mut all = vec!["user"];
            all.extend_from_slice(args);
            all.extend_from_slice(&["--username", "dan", "--json"]);
            json_out(&run(&db, &all, stdin), &format!("[{b}] {args:?}"))
        };
        assert_eq!(
            u(&["set-roles", "--role", "ops"], None)["roles"],
            serde_json::json!(["ops"])
        );
        assert_eq!(u(&["disable"], None)["disabled"], true);
        assert_eq!(u(&["enable"], None)["disabled"], false);
        assert_eq!(u(&["set-password"], Some(&pw))["username"], "dan");
        assert_eq!(u(&["totp-reset"], None)["removed"], false);
        assert_eq!(u(&["delete"], None)["deleted"], true);
        let token = json_out(
            &run(&db, &["registration-token", "create", "--json"], None),
            "token",
        );
        let revoked = json_out(
            &run(
                &db,
                &[
                    "registration-token",
                    "revoke",
                    token["id"].as_str().expect("id"),
                    "--json",
                ],
                None,
            ),
            "revoke",
        );
        assert_eq!(revoked["revoked"], true, "[{b}] {revoked}");
    }
}

#[test]
fn client_create_help_lists_every_grant_type() {
    let dir = tempfile::tempdir().expect("temp dir");
    for verb in ["create", "update"] {
        let text = ok(
            &command(dir.path())
                .args(["client", verb, "--help"])
                .output()
                .expect("help"),
            verb,
        );
        for grant in gatehouse::oauth::model::GrantType::ALL {
            assert!(
                text.contains(grant.as_str()),
                "client {verb} --help does not list {grant}: {text}"
            );
        }
    }
}
