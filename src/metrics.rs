//! Prometheus metrics: one registry per server (in `AppState`, never a global), the counters the
//! services bump, and the gauges read when `/metrics` is scraped. Served only on the separate
//! `[metrics] bind` listener (`server::build_metrics`), never on the public one.
//!
//! Every label has a bounded set of values: route patterns (not raw paths), known methods,
//! status codes, grant types, factors, and the kids of the published keys.

use std::sync::Arc;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Buckets (seconds) of request durations and of waits for a connection or a hash slot.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// The metrics of one server; clones share them.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

struct Inner {
    registry: Registry,
    requests: IntCounterVec,
    request_seconds: HistogramVec,
    tokens_issued: IntCounterVec,
    refresh_reuse: IntCounter,
    code_replays: IntCounter,
    sign_in_failures: IntCounterVec,
    lockouts: IntCounterVec,
    password_queue: IntGauge,
    password_running: IntGauge,
    password_refused: IntCounter,
    password_wait: Histogram,
    pool_connections: IntGaugeVec,
    pool_max: IntGauge,
    pool_wait: Histogram,
    key_age: IntGaugeVec,
    next_rotation: IntGauge,
}

/// What the scrape reads from the rest of the server (`flows::metrics::snapshot`).
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Password checks waiting for a hash slot, and hashes running.
    pub password_queued: usize,
    pub password_running: usize,
    /// The database pool: open connections, idle ones, and its maximum size.
    pub pool_connections: u32,
    pub pool_idle: u32,
    pub pool_max: u32,
    /// Published signing keys: kid, state and age in seconds. `None`: the keys could not be read
    /// (the last values are left as they were).
    pub keys: Option<Vec<KeyAge>>,
    /// When the next scheduled rotation is due (unix seconds), 0 when it is off.
    pub next_rotation: Option<i64>,
}

/// One published signing key's age.
#[derive(Debug, Clone)]
pub struct KeyAge {
    pub kid: String,
    pub state: &'static str,
    pub age_secs: i64,
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).unwrap_or_else(|e| unreachable_metric(name, e));
    let _ = registry.register(Box::new(c.clone()));
    c
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|e| unreachable_metric(name, e));
    let _ = registry.register(Box::new(c.clone()));
    c
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).unwrap_or_else(|e| unreachable_metric(name, e));
    let _ = registry.register(Box::new(g.clone()));
    g
}

fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|e| unreachable_metric(name, e));
    let _ = registry.register(Box::new(g.clone()));
    g
}

fn histogram(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    let h = HistogramVec::new(
        HistogramOpts::new(name, help).buckets(BUCKETS.to_vec()),
        labels,
    )
    .unwrap_or_else(|e| unreachable_metric(name, e));
    let _ = registry.register(Box::new(h.clone()));
    h
}

fn plain_histogram(registry: &Registry, name: &str, help: &str) -> Histogram {
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(BUCKETS.to_vec()))
        .unwrap_or_else(|e| unreachable_metric(name, e));
    let _ = registry.register(Box::new(h.clone()));
    h
}

/// The names and labels above are constants that the unit tests build; a failure here is a
/// programming error caught by them, never a runtime condition.
#[expect(
    clippy::panic,
    reason = "constant metric definitions, checked by the unit tests"
)]
fn unreachable_metric(name: &str, e: prometheus::Error) -> ! {
    panic!("metric {name} is ill-defined: {e}")
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let r = Registry::new();
        let build_info = gauge_vec(
            &r,
            "gatehouse_build_info",
            "Always 1; the labels name the version and git commit running.",
            &["version", "commit"],
        );
        build_info
            .with_label_values(&[crate::version::VERSION, crate::version::COMMIT])
            .set(1);
        Metrics(Arc::new(Inner {
            requests: counter_vec(
                &r,
                "gatehouse_http_requests_total",
                "HTTP requests answered, by route pattern, method and status.",
                &["route", "method", "status"],
            ),
            request_seconds: histogram(
                &r,
                "gatehouse_http_request_duration_seconds",
                "Time to answer an HTTP request, by route pattern.",
                &["route"],
            ),
            tokens_issued: counter_vec(
                &r,
                "gatehouse_tokens_issued_total",
                "Access tokens issued by the token endpoint, by grant type.",
                &["grant_type"],
            ),
            refresh_reuse: counter(
                &r,
                "gatehouse_refresh_token_reuse_detected_total",
                "Rotated refresh tokens presented again (each revoked its family).",
            ),
            code_replays: counter(
                &r,
                "gatehouse_authorization_code_replays_total",
                "Authorization codes presented again (each revoked its grant).",
            ),
            sign_in_failures: counter_vec(
                &r,
                "gatehouse_sign_in_failures_total",
                "Failed sign-in steps (browser and password grant), by factor.",
                &["factor"],
            ),
            lockouts: counter_vec(
                &r,
                "gatehouse_lockouts_total",
                "Sign-in counters that reached the failure limit and locked, by factor.",
                &["factor"],
            ),
            password_queue: gauge(
                &r,
                "gatehouse_password_hash_queue_depth",
                "Password checks waiting for a hash slot.",
            ),
            password_running: gauge(
                &r,
                "gatehouse_password_hashes_running",
                "Password hashes computing now.",
            ),
            password_refused: counter(
                &r,
                "gatehouse_password_hash_refused_total",
                "Password checks refused as busy because the queue was full.",
            ),
            password_wait: plain_histogram(
                &r,
                "gatehouse_password_hash_wait_seconds",
                "Time a password check waited for a hash slot.",
            ),
            pool_connections: gauge_vec(
                &r,
                "gatehouse_db_pool_connections",
                "Database pool connections, by state (idle or in_use).",
                &["state"],
            ),
            pool_max: gauge(
                &r,
                "gatehouse_db_pool_max_connections",
                "The database pool's maximum size (database.pool_size).",
            ),
            pool_wait: plain_histogram(
                &r,
                "gatehouse_db_pool_wait_seconds",
                "Time a request waited for a database connection.",
            ),
            key_age: gauge_vec(
                &r,
                "gatehouse_signing_key_age_seconds",
                "Age of each published signing key, by kid and state (published, signing, retired).",
                &["kid", "state"],
            ),
            next_rotation: gauge(
                &r,
                "gatehouse_signing_key_next_rotation_timestamp_seconds",
                "When the next scheduled key rotation is due (unix seconds; 0 when keys.rotate_every_secs is 0).",
            ),
            registry: r,
        }))
    }

    /// One HTTP request answered: `route` is the matched pattern (or `unmatched`).
    pub fn request(&self, route: &str, method: &str, status: u16, secs: f64) {
        let status = status.to_string();
        self.0
            .requests
            .with_label_values(&[route, method, status.as_str()])
            .inc();
        self.0
            .request_seconds
            .with_label_values(&[route])
            .observe(secs);
    }

    /// An access token issued by the grant `grant_type`.
    pub fn token_issued(&self, grant_type: &str) {
        self.0.tokens_issued.with_label_values(&[grant_type]).inc();
    }

    pub fn refresh_reuse_detected(&self) {
        self.0.refresh_reuse.inc();
    }

    pub fn code_replay_detected(&self) {
        self.0.code_replays.inc();
    }

    /// A failed sign-in step: `factor` is `password` or `otp`.
    pub fn sign_in_failed(&self, factor: &str) {
        self.0.sign_in_failures.with_label_values(&[factor]).inc();
    }

    /// A counter locked: `factor` is `password` or `otp`.
    pub fn locked_out(&self, factor: &str) {
        self.0.lockouts.with_label_values(&[factor]).inc();
    }

    /// A password check that waited `secs` for a hash slot.
    pub fn password_waited(&self, secs: f64) {
        self.0.password_wait.observe(secs);
    }

    /// A password check refused as busy.
    pub fn password_refused(&self) {
        self.0.password_refused.inc();
    }

    /// A request that waited `secs` for a pooled connection.
    pub fn pool_waited(&self, secs: f64) {
        self.0.pool_wait.observe(secs);
    }

    /// Sets the gauges from `snap` and renders every metric in the Prometheus text format.
    pub fn render(&self, snap: &Snapshot) -> String {
        let m = &self.0;
        m.password_queue.set(gauge_value(snap.password_queued));
        m.password_running.set(gauge_value(snap.password_running));
        let in_use = snap.pool_connections.saturating_sub(snap.pool_idle);
        m.pool_connections
            .with_label_values(&["idle"])
            .set(i64::from(snap.pool_idle));
        m.pool_connections
            .with_label_values(&["in_use"])
            .set(i64::from(in_use));
        m.pool_max.set(i64::from(snap.pool_max));
        if let Some(keys) = &snap.keys {
            // Expired keys leave the output with the JWKS.
            m.key_age.reset();
            for key in keys {
                m.key_age
                    .with_label_values(&[key.kid.as_str(), key.state])
                    .set(key.age_secs);
            }
        }
        if let Some(next) = snap.next_rotation {
            m.next_rotation.set(next);
        }
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&m.registry.gather(), &mut out) {
            tracing::error!(error = %e, "rendering the metrics failed");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

fn gauge_value(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The label of an HTTP method: the standard ones by name, any other as `other` (a client may
/// send any token as a method; the label set stays bounded).
pub fn method_label(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_metric_is_well_defined_and_rendered() {
        let m = Metrics::new();
        m.request("/token", "POST", 200, 0.01);
        m.token_issued("client_credentials");
        m.refresh_reuse_detected();
        m.code_replay_detected();
        m.sign_in_failed("password");
        m.locked_out("otp");
        m.password_waited(0.2);
        m.password_refused();
        m.pool_waited(0.001);
        let text = m.render(&Snapshot {
            password_queued: 3,
            pool_connections: 4,
            pool_idle: 1,
            pool_max: 8,
            keys: Some(vec![KeyAge {
                kid: "k1".into(),
                state: "signing",
                age_secs: 42,
            }]),
            next_rotation: Some(0),
            ..Snapshot::default()
        });
        for line in [
            "gatehouse_http_requests_total{method=\"POST\",route=\"/token\",status=\"200\"} 1",
            "gatehouse_tokens_issued_total{grant_type=\"client_credentials\"} 1",
            "gatehouse_refresh_token_reuse_detected_total 1",
            "gatehouse_authorization_code_replays_total 1",
            "gatehouse_sign_in_failures_total{factor=\"password\"} 1",
            "gatehouse_lockouts_total{factor=\"otp\"} 1",
            "gatehouse_password_hash_queue_depth 3",
            "gatehouse_password_hash_refused_total 1",
            "gatehouse_password_hash_wait_seconds_count 1",
            "gatehouse_db_pool_connections{state=\"in_use\"} 3",
            "gatehouse_db_pool_max_connections 8",
            "gatehouse_db_pool_wait_seconds_count 1",
            "gatehouse_signing_key_age_seconds{kid=\"k1\",state=\"signing\"} 42",
            "gatehouse_signing_key_next_rotation_timestamp_seconds 0",
            "gatehouse_http_request_duration_seconds_count{route=\"/token\"} 1",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        assert!(text.contains(&format!(
            "gatehouse_build_info{{commit=\"{}\",version=\"{}\"}} 1",
            crate::version::COMMIT,
            crate::version::VERSION
        )));
    }

    #[test]
    fn unknown_methods_share_one_label() {
        assert_eq!(method_label("POST"), "POST");
        assert_eq!(method_label("BREW"), "other");
    }
}
