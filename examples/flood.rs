//! Load driver of `bench/flood`: `/token` latency and the database's size before, during and
//! after an anonymous `/authorize` flood against a running Gatehouse on SQLite.
//!
//! `bench/flood` builds and starts the server and registers the clients; this program then runs
//! three phases (quiet, flood, after) while a steady `/token` load (client_credentials, and
//! refresh rotations of a few refresh-token families) runs throughout, paced at a fixed rate.
//! Each `/token` latency is measured from the moment its request was due, so a stalled server is
//! charged for every request it held up (a loop more than a second behind starts its schedule
//! again from now rather than fire a burst). Once a second it samples the
//! database file (db + -wal) and counts the `sessions` and `interactions` rows on a separate
//! read connection.
//!
//! The flood is many keep-alive connections sending `GET /authorize` without a cookie, so that
//! every request would start a new session; all from one address (127.0.0.1).
//!
//! It appends one row per phase and grant to `--out` (tab-separated) and prints progress;
//! `flood --report FILE` prints the rows of every run as one table. A failure to set up (no
//! server, a sign-in that does not work) exits non-zero; everything else is a measurement.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use diesel::prelude::*;
use gatehouse::store::schema::{interactions, sessions};

#[path = "driver/mod.rs"]
mod driver;

use driver::{enc, post_token, Args, Conn, Response};

const PHASES: [&str; 3] = ["quiet", "flood", "after"];

/// The phase now running (an index into [`PHASES`]).
struct Clock {
    phase: AtomicUsize,
    stop: AtomicBool,
}

/// `/token` latencies (ms) and failures, per phase.
#[derive(Default)]
struct Latencies {
    ms: [Vec<f64>; 3],
    failed: [u64; 3],
}

/// One paced `/token` loop: a request every `interval`, latency from when it was due.
/// `next_body` gives the next request and learns from the answer (a refresh rotates).
async fn paced<F>(
    addr: SocketAddr,
    interval: Duration,
    clock: Arc<Clock>,
    out: Arc<Mutex<Latencies>>,
    mut next: F,
) where
    F: FnMut(Option<&Response>) -> Option<Vec<u8>>,
{
    let mut conn = None;
    let mut due = Instant::now();
    let mut last: Option<Response> = None;
    while !clock.stop.load(Ordering::Relaxed) {
        let Some(request) = next(last.as_ref()) else {
            return;
        };
        tokio::time::sleep_until(due.into()).await;
        let phase = clock.phase.load(Ordering::Relaxed);
        if conn.is_none() {
            conn = Conn::open(addr).await.ok();
        }
        let answer = match conn.as_mut() {
            Some(c) => c.send(&request).await.ok(),
            None => None,
        };
        let ms = due.elapsed().as_secs_f64() * 1e3;
        let mut l = out.lock().unwrap_or_else(|e| e.into_inner());
        match &answer {
            Some(r) if r.status == 200 => l.ms[phase].push(ms),
            Some(_) => l.failed[phase] += 1,
            None => {
                l.failed[phase] += 1;
                conn = None;
            }
        }
        drop(l);
        last = answer;
        due += interval;
        // Far behind (a long stall): catch up from now rather than firing a burst.
        if due + Duration::from_secs(1) < Instant::now() {
            due = Instant::now();
        }
    }
}

/// Counts of the flood's answers, per phase: stored (303 to the login page), limited (429),
/// anything else.
#[derive(Default)]
struct FloodCounts {
    stored: [AtomicU64; 3],
    limited: [AtomicU64; 3],
    other: [AtomicU64; 3],
}

async fn flood_loop(
    addr: SocketAddr,
    request: Arc<Vec<u8>>,
    clock: Arc<Clock>,
    counts: Arc<FloodCounts>,
) {
    let mut conn: Option<Conn> = None;
    while !clock.stop.load(Ordering::Relaxed) {
        let phase = clock.phase.load(Ordering::Relaxed);
        if phase != 1 {
            return;
        }
        if conn.is_none() {
            conn = Conn::open(addr).await.ok();
            if conn.is_none() {
                counts.other[phase].fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        }
        let answer = match conn.as_mut() {
            Some(c) => c.send(&request).await.ok(),
            None => None,
        };
        match answer.map(|r| r.status) {
            Some(303) => counts.stored[phase].fetch_add(1, Ordering::Relaxed),
            Some(429) => counts.limited[phase].fetch_add(1, Ordering::Relaxed),
            Some(_) => counts.other[phase].fetch_add(1, Ordering::Relaxed),
            None => {
                conn = None;
                counts.other[phase].fetch_add(1, Ordering::Relaxed)
            }
        };
    }
}

/// What one sample of the database saw.
#[derive(Clone, Copy, Default)]
struct Sample {
    secs: f64,
    db: u64,
    wal: u64,
    sessions: i64,
    interactions: i64,
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

fn sample(db: &Path, conn: &mut SqliteConnection, started: Instant) -> Sample {
    let wal = PathBuf::from(format!("{}-wal", db.display()));
    Sample {
        secs: started.elapsed().as_secs_f64(),
        db: file_len(db),
        wal: file_len(&wal),
        sessions: sessions::table.count().get_result(conn).unwrap_or(-1),
        interactions: interactions::table.count().get_result(conn).unwrap_or(-1),
    }
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1_048_576.0
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Signs `user` in through the login and consent pages as a browser would (cookies kept by hand)
/// and exchanges the code: the refresh token of a new family.
async fn refresh_token_by_sign_in(
    base: &str,
    spa: &str,
    redirect: &str,
    user: &str,
    password: &str,
) -> anyhow::Result<String> {
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let verifier = gatehouse::secret::PlainToken::generate();
    let challenge = gatehouse::oauth::pkce::s256(verifier.expose());
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", spa)
        .append_pair("redirect_uri", redirect)
        .append_pair("scope", "api:read")
        .append_pair("state", "bench")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .finish();
    let location = |r: &reqwest::Response| -> anyhow::Result<String> {
        let l = r
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| anyhow!("no redirect from {} ({})", r.url(), r.status()))?;
        Ok(if l.starts_with('/') {
            format!("{base}{l}")
        } else {
            l.to_owned()
        })
    };
    let field = |page: &str, name: &str| -> anyhow::Result<String> {
        let marker = format!("name=\"{name}\" value=\"");
        let start = page
            .find(&marker)
            .ok_or_else(|| anyhow!("no {name} field on the page"))?
            + marker.len();
        let len = page[start..]
            .find('"')
            .ok_or_else(|| anyhow!("bad {name} field"))?;
        Ok(page[start..start + len].to_owned())
    };
    let resp = http.get(format!("{base}/authorize?{query}")).send().await?;
    let login = location(&resp)?;
    let page = http.get(&login).send().await?.text().await?;
    let resp = http
        .post(format!("{base}/login"))
        .form(&[
            ("interaction", field(&page, "interaction")?.as_str()),
            ("csrf", field(&page, "csrf")?.as_str()),
            ("username", user),
            ("password", password),
        ])
        .send()
        .await?;
    let consent = location(&resp).context("sign-in refused")?;
    let resp = http.get(&consent).send().await?;
    // A consent given before is remembered: the page then answers with the code at once.
    let resp = if resp.status().is_redirection() {
        resp
    } else {
        let page = resp.text().await?;
        http.post(format!("{base}/consent"))
            .form(&[
                ("interaction", field(&page, "interaction")?.as_str()),
                ("csrf", field(&page, "csrf")?.as_str()),
                ("decision", "approve"),
            ])
            .send()
            .await?
    };
    let callback = url::Url::parse(&location(&resp)?)?;
    let code = callback
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .ok_or_else(|| anyhow!("no code in the callback"))?;
    let tokens: serde_json::Value = http
        .post(format!("{base}/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("code_verifier", verifier.expose()),
            ("client_id", spa),
            ("redirect_uri", redirect),
        ])
        .send()
        .await?
        .json()
        .await?;
    tokens["refresh_token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("no refresh token: {tokens}"))
}

fn report(path: &Path) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let header = [
        "run",
        "phase",
        "/authorize stored",
        "429",
        "/s",
        "grant",
        "requests",
        "p50 ms",
        "p99 ms",
        "p50 ×quiet",
        "p99 ×quiet",
        "DB+WAL MB max",
        "sessions max",
        "pending max",
    ];
    let rows: Vec<Vec<String>> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            let pad = w - c.chars().count();
            if i < 2 || i == 5 {
                s.push_str(c);
                s.push_str(&" ".repeat(pad));
            } else {
                s.push_str(&" ".repeat(pad));
                s.push_str(c);
            }
            s.push_str("  ");
        }
        println!("{}", s.trim_end());
    };
    line(header.to_vec());
    line(
        widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str)
            .collect(),
    );
    for r in &rows {
        line(r.iter().map(String::as_str).collect());
    }
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse(std::env::args().skip(1))?;
    if let Some(path) = args.get("report") {
        return report(Path::new(&path));
    }
    let base = args.str("base")?;
    let addr: SocketAddr = base
        .strip_prefix("http://")
        .ok_or_else(|| anyhow!("--base must be http://host:port"))?
        .parse()?;
    let db = PathBuf::from(args.str("db")?);
    let run = args.str("run")?;
    let out = PathBuf::from(args.str("out")?);
    let spa = args.str("spa")?;
    let redirect = args.str("redirect")?;
    let basic = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            enc(&args.str("cc-id")?),
            enc(&args.str("cc-secret")?)
        ))
    };
    let secs = [
        args.num("quiet-secs", 20.0)?,
        args.num("flood-secs", 90.0)?,
        args.num("after-secs", 30.0)?,
    ];
    let flood_conns: usize = args.num("flood-conns", 32)?;
    let cc_loops: u32 = args.num("cc-loops", 4)?;
    let cc_rate: f64 = args.num("cc-rate", 200.0)?;
    let refresh_loops: u32 = args.num("refresh-loops", 2)?;
    let refresh_rate: f64 = args.num("refresh-rate", 40.0)?;

    // Setup: the refresh-token families, one browser sign-in each.
    let user = args.str("user")?;
    let password = args.str("password")?;
    let mut families = Vec::new();
    for _ in 0..refresh_loops {
        families.push(
            refresh_token_by_sign_in(&base, &spa, &redirect, &user, &password)
                .await
                .context("signing in for a refresh token")?,
        );
    }
    let mut probe = Conn::open(addr).await.context("connecting to the server")?;
    let r = probe
        .send(&post_token("grant_type=client_credentials", Some(&basic)))
        .await?;
    if r.status != 200 {
        bail!(
            "client_credentials answered {}: {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
    }
    let mut read = SqliteConnection::establish(&db.display().to_string())
        .with_context(|| format!("opening {} to count rows", db.display()))?;
    diesel::sql_query("PRAGMA busy_timeout = 10000").execute(&mut read)?;

    let clock = Arc::new(Clock {
        phase: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
    });
    let cc = Arc::new(Mutex::new(Latencies::default()));
    let rt = Arc::new(Mutex::new(Latencies::default()));
    let mut tasks = Vec::new();
    for i in 0..cc_loops {
        let request = post_token("grant_type=client_credentials", Some(&basic));
        let interval = Duration::from_secs_f64(f64::from(cc_loops) / cc_rate);
        let (clock, cc) = (clock.clone(), cc.clone());
        tasks.push(tokio::spawn(async move {
            // Spread the loops over one interval.
            tokio::time::sleep(interval * i / cc_loops).await;
            paced(addr, interval, clock, cc, move |_| Some(request.clone())).await;
        }));
    }
    for (i, first) in families.into_iter().enumerate() {
        let interval = Duration::from_secs_f64(f64::from(refresh_loops) / refresh_rate);
        let (clock, rt, spa) = (clock.clone(), rt.clone(), spa.clone());
        let mut token = first;
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(interval * i as u32 / refresh_loops).await;
            paced(addr, interval, clock, rt, move |last| {
                if let Some(r) = last {
                    let json: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
                    // A failed rotation ends this family's loop (and is counted).
                    token = json["refresh_token"].as_str()?.to_owned();
                }
                Some(post_token(
                    &format!(
                        "grant_type=refresh_token&refresh_token={}&client_id={}",
                        enc(&token),
                        enc(&spa)
                    ),
                    None,
                ))
            })
            .await;
        }));
    }

    let flood_request = {
        let challenge =
            gatehouse::oauth::pkce::s256("flood-verifier-flood-verifier-flood-verifier-00");
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("response_type", "code")
            .append_pair("client_id", &spa)
            .append_pair("redirect_uri", &redirect)
            .append_pair("scope", "api:read")
            .append_pair("state", "flood")
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256")
            .finish();
        Arc::new(format!("GET /authorize?{query} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").into_bytes())
    };
    let counts = Arc::new(FloodCounts::default());

    let started = Instant::now();
    let mut samples: Vec<(usize, Sample)> = Vec::new();
    let mut last_print = -10.0;
    println!(
        "{:>6}  {:<6} {:>9} {:>8} {:>10} {:>13}",
        "t s", "phase", "db MB", "wal MB", "sessions", "interactions"
    );
    for (phase, &len) in secs.iter().enumerate() {
        clock.phase.store(phase, Ordering::Relaxed);
        let phase_started = Instant::now();
        if phase == 1 {
            for _ in 0..flood_conns {
                tasks.push(tokio::spawn(flood_loop(
                    addr,
                    flood_request.clone(),
                    clock.clone(),
                    counts.clone(),
                )));
            }
        }
        while phase_started.elapsed().as_secs_f64() < len {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let (s, conn) = tokio::task::spawn_blocking({
                let db = db.clone();
                move || {
                    let s = sample(&db, &mut read, started);
                    (s, read)
                }
            })
            .await?;
            read = conn;
            samples.push((phase, s));
            if s.secs - last_print >= 5.0 {
                last_print = s.secs;
                println!(
                    "{:>6.0}  {:<6} {:>9.1} {:>8.1} {:>10} {:>13}",
                    s.secs,
                    PHASES[phase],
                    mb(s.db),
                    mb(s.wal),
                    s.sessions,
                    s.interactions
                );
                let _ = std::io::stdout().flush();
            }
        }
    }
    clock.stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }

    // One row per phase and grant.
    let mut rows = String::new();
    let mut quiet = [(f64::NAN, f64::NAN); 2];
    for (grant_index, (grant, lat)) in [("client_credentials", &cc), ("refresh_token", &rt)]
        .into_iter()
        .enumerate()
    {
        let l = lat.lock().unwrap_or_else(|e| e.into_inner());
        for (phase, phase_name) in PHASES.iter().enumerate() {
            let mut ms = l.ms[phase].clone();
            ms.sort_by(f64::total_cmp);
            let (p50, p99) = (percentile(&ms, 50.0), percentile(&ms, 99.0));
            if phase == 0 {
                quiet[grant_index] = (p50, p99);
            }
            let in_phase = samples.iter().filter(|(p, _)| *p == phase);
            let size = in_phase
                .clone()
                .map(|(_, s)| s.db + s.wal)
                .max()
                .unwrap_or(0);
            let sess = in_phase.clone().map(|(_, s)| s.sessions).max().unwrap_or(0);
            let pend = in_phase.map(|(_, s)| s.interactions).max().unwrap_or(0);
            let stored = counts.stored[phase].load(Ordering::Relaxed);
            let limited = counts.limited[phase].load(Ordering::Relaxed);
            let other = counts.other[phase].load(Ordering::Relaxed);
            let flood_cells = if phase == 1 {
                let per_sec = (stored + limited + other) as f64 / secs[1];
                (
                    stored.to_string(),
                    limited.to_string(),
                    format!("{per_sec:.0}"),
                )
            } else {
                ("-".into(), "-".into(), "-".into())
            };
            let failed = if l.failed[phase] > 0 {
                format!(" ({} failed)", l.failed[phase])
            } else {
                String::new()
            };
            rows.push_str(&format!(
                "{run}\t{phase_name}\t{}\t{}\t{}\t{grant}\t{}{failed}\t{p50:.2}\t{p99:.2}\t{:.1}\t{:.1}\t{:.1}\t{sess}\t{pend}\n",
                flood_cells.0,
                flood_cells.1,
                flood_cells.2,
                ms.len(),
                p50 / quiet[grant_index].0,
                p99 / quiet[grant_index].1,
                mb(size),
            ));
            if other > 0 && phase == 1 && grant_index == 0 {
                println!("flood: {other} answers neither 303 nor 429 (or connection errors)");
            }
        }
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&out)
        .with_context(|| format!("writing {}", out.display()))?
        .write_all(rows.as_bytes())?;
    Ok(())
}
