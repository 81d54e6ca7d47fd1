//! `gatehouse doctor`: findings with severity, rule and fix; exit status for CI; never creates
//! a database.

use std::process::{Output, Stdio};

use serde_json::Value;

use crate::cli::{backends, command, create_client, fails_readably, ok, stdout, TestDb};

/// A 256-bit master key in base64url, as GATEHOUSE_MASTER_KEY takes it.
const MASTER_KEY: &str = "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80";

/// `gatehouse doctor ARGS` with a production-like configuration plus `env`.
fn doctor(db: &TestDb, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = command(db.dir.path());
    cmd.env("GATEHOUSE_DATABASE_URL", &db.url)
        .env("GATEHOUSE_KEYS_DIR", db.keys_dir())
        .env("GATEHOUSE_ISSUER", "https://auth.example.com")
        .env("GATEHOUSE_MASTER_KEY", MASTER_KEY)
        .env("GATEHOUSE_KEYS__ROTATE_EVERY_SECS", "7776000")
        .arg("doctor")
        .args(args)
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run doctor")
}

fn report(o: &Output) -> Value {
    let out = stdout(o);
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

fn migrate(db: &TestDb) {
    ok(&crate::cli::run(db, &["migrate"], None), "migrate");
}

#[test]
fn doctor_passes_a_good_setup() {
    for db in backends() {
        let b = db.label;
        migrate(&db);
        ok(
            &crate::cli::run(
                &db,
                &[
                    "client",
                    "create",
                    "--name",
                    "Web",
                    "--redirect-uri",
                    "https://app.example.com/cb",
                    "--audience",
                    "https://api.example.com",
                    "--allowed-origin",
                    "https://app.example.com",
                ],
                None,
            ),
            "client",
        );
        let out = doctor(&db, &["--fail-on", "low"], &[]);
        let text = ok(&out, &format!("[{b}] doctor"));
        assert!(text.contains("0 finding(s)"), "[{b}] {text}");
        assert!(
            text.contains("pkce_s256"),
            "[{b}] PKCE reported passing: {text}"
        );
        let json = report(&doctor(&db, &["--json"], &[]));
        assert_eq!(json["findings"], serde_json::json!([]), "[{b}] {json}");
        assert!(
            json["passed"].as_array().is_some_and(|p| p.len() >= 10),
            "[{b}] {json}"
        );
    }
}

#[test]
fn doctor_flags_public_password_client_and_exits_non_zero() {
    for db in backends() {
        let b = db.label;
        migrate(&db);
        // The registry refuses it today; a database from before that rule may still hold one.
        ok(&create_client(&db, "Legacy SPA", &["--json"]), "create");
        let spa = crate::cli::list_clients(&db)[0]["id"]
            .as_str()
            .expect("id")
            .to_owned();
        force_password_grant(&db, &spa);
        let out = doctor(&db, &[], &[]);
        let line = fails_readably(&out, &format!("[{b}] doctor"));
        assert!(line.contains("at or above high"), "[{b}] {line}");
        let text = stdout(&out);
        assert!(text.contains("HIGH"), "[{b}] {text}");
        assert!(text.contains("no_public_password_client"), "[{b}] {text}");
        assert!(text.contains(&spa), "[{b}] {text}");
        // --fail-on critical lets it pass; the finding is still printed.
        let out = doctor(&db, &["--fail-on", "critical"], &[]);
        assert!(ok(&out, "critical").contains("no_public_password_client"));
    }
}

/// Gives a stored client the password grant behind the registry's back.
fn force_password_grant(db: &TestDb, client_id: &str) {
    use diesel::prelude::*;
    let mut conn = gatehouse::store::ConnectionManager::new(db.url.clone())
        .connect()
        .expect("connect");
    diesel::sql_query(format!(
        r#"UPDATE clients SET grant_types = '["authorization_code","password"]' WHERE id = '{client_id}'"#
    ))
    .execute(&mut conn)
    .expect("update");
}

#[test]
fn doctor_json_lists_findings_with_rule_and_fix() {
    for db in backends() {
        let b = db.label;
        migrate(&db);
        let config = db.dir.path().join("proxies.toml");
        std::fs::write(
            &config,
            "[server]\ntrusted_proxies = [\"0.0.0.0/0\"]\n\n[registration]\nmode = \"open\"\n\
             allowed_audiences = [\"https://api.example.com\"]\n",
        )
        .expect("config");
        let config = config.display().to_string();
        let out = doctor(
            &db,
            &["--json", "--fail-on", "critical", "--config", &config],
            &[
                ("GATEHOUSE_ISSUER", "http://127.0.0.1:8080"),
                ("GATEHOUSE_KEYS__ROTATE_EVERY_SECS", "0"),
                ("GATEHOUSE_TOKENS__ACCESS_TOKEN_TTL_SECS", "7200"),
            ],
        );
        assert!(
            out.status.success(),
            "[{b}] {}{}",
            stdout(&out),
            crate::cli::stderr(&out)
        );
        let json = report(&out);
        let findings = json["findings"].as_array().expect("findings");
        for f in findings {
            for key in ["severity", "check", "rule", "message", "fix"] {
                assert!(
                    f[key].as_str().is_some_and(|v| !v.is_empty()),
                    "[{b}] {key} missing: {f}"
                );
            }
        }
        let severity_of = |check: &str| {
            findings
                .iter()
                .find(|f| f["check"] == check)
                .map(|f| f["severity"].as_str().unwrap_or_default().to_owned())
                .unwrap_or_else(|| panic!("[{b}] no {check} finding: {json}"))
        };
        assert_eq!(severity_of("issuer_https"), "low");
        assert_eq!(severity_of("signing_key_rotation"), "low");
        assert_eq!(severity_of("token_lifetimes"), "medium");
        assert_eq!(severity_of("registration_not_open"), "medium");
        assert_eq!(severity_of("trusted_proxies_narrow"), "high");
        for f in findings {
            let rule = f["rule"].as_str().unwrap_or_default();
            assert!(
                rule.contains("checklist") || rule.contains("RFC"),
                "[{b}] {f}"
            );
        }
        // Worst first.
        assert_eq!(findings[0]["severity"], "high", "[{b}] {json}");
    }
}

#[test]
fn doctor_flags_admin_without_totp_and_readable_master_key() {
    for db in backends() {
        let b = db.label;
        migrate(&db);
        ok(
            &crate::cli::run(
                &db,
                &["user", "create", "--username", "root", "--role", "admin"],
                Some(&format!("{}\n", crate::cli::GOOD_PASSWORD)),
            ),
            "admin",
        );
        std::fs::create_dir_all(db.keys_dir()).expect("keys dir");
        let file = db.keys_dir().join("master.key");
        std::fs::write(&file, format!("{MASTER_KEY}\n")).expect("key file");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        }
        let mut cmd = command(db.dir.path());
        let out = cmd
            .env("GATEHOUSE_DATABASE_URL", &db.url)
            .env("GATEHOUSE_KEYS_DIR", db.keys_dir())
            .args(["doctor", "--json"])
            .output()
            .expect("doctor");
        assert!(!out.status.success(), "[{b}] high findings must fail");
        let json = report(&out);
        let checks: Vec<&str> = json["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .filter(|f| f["severity"] == "high")
            .filter_map(|f| f["check"].as_str())
            .collect();
        assert!(checks.contains(&"admins_have_mfa"), "[{b}] {json}");
        #[cfg(unix)]
        assert!(checks.contains(&"master_key_protected"), "[{b}] {json}");
    }
}

#[test]
fn doctor_never_creates_a_database() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("missing.db");
    let out = command(dir.path())
        .env(
            "GATEHOUSE_DATABASE_URL",
            format!("sqlite://{}", path.display()),
        )
        .arg("doctor")
        .stdin(Stdio::null())
        .output()
        .expect("doctor");
    let line = fails_readably(&out, "missing database");
    assert!(line.contains(&path.display().to_string()), "{line}");
    assert!(!path.exists(), "doctor created the database");
}
