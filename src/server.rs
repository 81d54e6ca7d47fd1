//! The HTTP server: routes, middleware and state put together.

use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};

use crate::http::rate_limit::RateLimits;
use crate::http::{self, forms::MAX_BODY, middleware::security_headers};
use crate::state::AppState;

/// Builds the server on a bound listener (port 0 in tests). Call `.await` on it to run.
///
/// Also starts, on the current Tokio runtime, the task that reloads the signing keys from the
/// database (and rotates them when scheduled), so running instances follow `gatehouse keys rotate`,
/// and, on SQLite, the task that keeps the write-ahead log under its limit.
pub fn build(state: web::Data<AppState>, listener: TcpListener) -> std::io::Result<Server> {
    crate::flows::keys::spawn_reloader(&state.clone().into_inner());
    crate::flows::wal::spawn_guard(&state.clone().into_inner());
    let https = state.settings.is_https();
    let workers = state.settings.server.workers;
    // A worker's blocking work is database hops (at most `pool_size` at once, `AppState::db`) and
    // password hashes (at most `concurrent_hashes`); two more for anything else. Beyond that, a
    // task waits for a thread rather than the pool growing by one thread per waiting request.
    let blocking_threads = state.settings.database.pool_size.max(1) as usize
        + state.settings.passwords.concurrent_hashes()
        + 2;
    // One set of limits for every worker, so an address's budget is per instance.
    let limits = web::Data::new(RateLimits::new(&state.settings.rate_limits));
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(limits.clone())
            .app_data(web::PayloadConfig::new(MAX_BODY))
            // The last wrap is the outermost: security headers reach every response, including
            // the ones the body-size handler builds.
            .wrap(http::middleware::body_too_large())
            .wrap(security_headers(https))
            // Outermost: the access log and the request id see every response as sent.
            .wrap(from_fn(http::access_log::access_log))
            .configure(http::routes)
    })
    .worker_max_blocking_threads(blocking_threads)
    .listen(listener)?;
    if workers > 0 {
        server = server.workers(workers);
    }
    Ok(server.run())
}

/// Builds the metrics server (`GET /metrics`, nothing else) on its own listener, the
/// `[metrics] bind` address; it shares `state` (and so the counters) with the public server,
/// which never serves metrics. One worker: a scrape is small and rare.
pub fn build_metrics(state: web::Data<AppState>, listener: TcpListener) -> std::io::Result<Server> {
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .configure(http::metrics::routes)
    })
    .workers(1)
    .listen(listener)?
    .run())
}
