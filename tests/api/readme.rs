//! The README's copy-paste paths, run as a new user would: each `sh` block below a marker is
//! taken from README.md as it is and run with bash against a freshly started server (the only
//! change: the README's `127.0.0.1:8080` becomes this server's address, and `$GATEHOUSE` names
//! the built binary). Needs bash, curl, jq and openssl, which `.ci/run` installs.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::{free_port, KillOnDrop};

const BIN: &str = env!("CARGO_BIN_EXE_gatehouse");

/// The first ```sh block after the line containing `marker`.
fn block_after(readme: &str, marker: &str) -> String {
    let from = readme
        .find(marker)
        .unwrap_or_else(|| panic!("README has {marker:?}"));
    let rest = &readme[from..];
    let start = rest.find("```sh\n").expect("an sh block") + "```sh\n".len();
    let end = rest[start..].find("```").expect("the block's end");
    rest[start..start + end].to_owned()
}

/// A server on a free port in `dir`, started with `gatehouse serve` and the README's defaults
/// (demo off, cheap argon2 for the test), plus alice as the quickstart creates her.
struct Server {
    _child: KillOnDrop,
    address: String,
    dir: tempfile::TempDir,
}

fn env_for(cmd: &mut Command, dir: &std::path::Path, address: &str) {
    for (k, _) in std::env::vars() {
        if k.starts_with("GATEHOUSE_") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    cmd.current_dir(dir)
        .env("GATEHOUSE_BIND", address)
        .env("GATEHOUSE_DEMO__ENABLED", "off")
        .env("GATEHOUSE_PASSWORDS__MEMORY_KIB", "256")
        .env("GATEHOUSE_PASSWORDS__ITERATIONS", "1");
}

async fn start() -> Server {
    let dir = tempfile::tempdir().expect("temp dir");
    let address = format!("127.0.0.1:{}", free_port());
    let mut cmd = Command::new(BIN);
    env_for(&mut cmd, dir.path(), &address);
    let child = cmd
        .arg("serve")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve");
    let child = KillOnDrop(child);
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !http
        .get(format!("http://{address}/healthz"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(Instant::now() < deadline, "the server did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let server = Server {
        _child: child,
        address,
        dir,
    };
    let out = server
        .bash("echo 'correct horse battery staple' | $GATEHOUSE user create --username alice --role admin");
    assert!(
        out.status.success(),
        "alice: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    server
}

impl Server {
    fn bash(&self, script: &str) -> std::process::Output {
        let script = script.replace("127.0.0.1:8080", &self.address);
        let mut cmd = Command::new("bash");
        env_for(&mut cmd, self.dir.path(), &self.address);
        cmd.env("GATEHOUSE", BIN)
            .args(["-c", &script])
            .stdin(Stdio::null())
            .output()
            .expect("bash")
    }
}

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README")
}

#[tokio::test]
async fn readme_curl_only_quickstart_runs_end_to_end() {
    let server = start().await;
    let block = block_after(&readme(), "**With curl only**");
    let out = server.bash(&block);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the block failed\nstdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The code exchange answered the scope asked for; the refresh rotated the token.
    let answers: Vec<serde_json::Value> = serde_json::Deserializer::from_str(&stdout)
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("JSON answers: {e}: {stdout}"));
    assert_eq!(answers.len(), 2, "{stdout}");
    assert_eq!(answers[0]["token_type"], "Bearer", "{stdout}");
    assert_eq!(answers[0]["scope"], "api:read", "{stdout}");
    assert_eq!(answers[1]["rotated"], true, "{stdout}");
    assert_eq!(answers[1]["scope"], "api:read", "{stdout}");
}

#[tokio::test]
async fn readme_password_grant_example_runs_with_its_own_client() {
    let server = start().await;
    let block = block_after(
        &readme(),
        "**First-party apps that show their own login form**",
    );
    let out = server.bash(&format!("set -e\n{block}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(answer["token_type"], "Bearer", "{stdout}");
    assert_eq!(answer["scope"], "api:read");
    assert_eq!(answer["refresh"], true);
}
