//! `GET /metrics` (Prometheus text format), served only on the `[metrics] bind` listener
//! (`server::build_metrics`); the public listener has no such route.

use actix_web::http::header;
use actix_web::{web, HttpResponse};

use crate::flows;
use crate::state::AppState;

/// The path the metrics listener serves.
pub const PATH: &str = "/metrics";

/// The routes of the metrics listener: `/metrics`, and 404 for anything else.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(PATH, web::get().to(metrics))
        .default_service(web::to(|| async { HttpResponse::NotFound().finish() }));
}

async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let body = flows::metrics::scrape(&state).await;
    HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body)
}
