//! The access log and request ids: one `info` line per request under the target `access`, and
//! an `X-Request-Id` on every response.
//!
//! The line names the method, the path (never the query string: its parameter names only), the
//! status, the time taken, the authenticated client when a service noted one
//! (`logging::note_client`) and the request id. It never carries query values, bodies, cookies
//! or the `Authorization` header. The request id is the caller's `X-Request-Id` when that is a
//! plain token (1 to 64 of `A-Z a-z 0-9 - _ .`), else a new random one; every log line written
//! while the request is served carries it (the `request` span).
//!
//! The same middleware counts the request in the metrics, by route pattern (never the raw path).

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, Error};
use tracing::Instrument;

use crate::metrics::method_label;
use crate::state::AppState;

/// The request id header, read and written.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest accepted incoming request id.
const MAX_REQUEST_ID: usize = 64;
/// Longest path written to the log (the rest is cut).
const MAX_LOGGED_PATH: usize = 256;
/// Most query parameter names written to the log.
const MAX_LOGGED_NAMES: usize = 16;

/// The route label of a request that matched no route pattern.
pub const UNMATCHED: &str = "unmatched";

/// The caller's request id when it is a plain token, else a fresh random one.
pub fn request_id(incoming: Option<&HeaderValue>) -> String {
    incoming
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_plain_id(v))
        .map_or_else(
            || crate::secret::hex(&crate::secret::random_bytes::<12>()),
            str::to_owned,
        )
}

fn is_plain_id(v: &str) -> bool {
    (1..=MAX_REQUEST_ID).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The names of a query string's parameters, without their values (`-` when there are none).
pub fn query_names(query: &str) -> String {
    let names: Vec<String> = form_urlencoded::parse(query.as_bytes())
        .map(|(k, _)| k.chars().filter(|c| !c.is_control()).take(64).collect())
        .take(MAX_LOGGED_NAMES)
        .collect();
    if names.is_empty() {
        "-".to_owned()
    } else {
        names.join(",")
    }
}

fn shown_path(path: &str) -> &str {
    match path.char_indices().nth(MAX_LOGGED_PATH) {
        Some((i, _)) => &path[..i],
        None => path,
    }
}

/// The middleware (`actix_web::middleware::from_fn`): the outermost one, so it sees the final
/// status of every response, including those other middleware build.
pub async fn access_log<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<B>, Error> {
    let started = Instant::now();
    let id = request_id(req.headers().get(&REQUEST_ID));
    let method = method_label(req.method().as_str());
    let path = shown_path(req.path()).to_owned();
    let query = query_names(req.query_string());
    let metrics = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.metrics.clone());
    let span = tracing::info_span!("request", request_id = %id);
    let (result, client) = crate::logging::with_request_context(next.call(req))
        .instrument(span)
        .await;
    let elapsed = started.elapsed();
    let (status, route) = match &result {
        Ok(res) => (res.status().as_u16(), res.request().match_pattern()),
        // Handlers turn their errors into responses; an error here (rare: a middleware's) is
        // rendered by actix after this line, without the request id.
        Err(e) => (e.as_response_error().status_code().as_u16(), None),
    };
    let route = route.as_deref().unwrap_or(UNMATCHED);
    if let Some(metrics) = metrics {
        metrics.request(route, method, status, elapsed.as_secs_f64());
    }
    tracing::info!(
        target: "access",
        method = %method,
        path = %path,
        query = %query,
        route = %route,
        status,
        duration_ms = elapsed.as_secs_f64() * 1000.0,
        client_id = %client.as_deref().unwrap_or("-"),
        request_id = %id,
        "request"
    );
    let mut res = result?;
    if let Ok(value) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(REQUEST_ID, value);
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_incoming_request_id_is_kept() {
        let v = HeaderValue::from_static("abc-123_x.y");
        assert_eq!(request_id(Some(&v)), "abc-123_x.y");
    }

    #[test]
    fn an_odd_incoming_request_id_is_replaced() {
        for odd in ["", "has space", "semi;colon", "new\tline", &"a".repeat(65)] {
            let v = HeaderValue::from_str(odd).unwrap_or(HeaderValue::from_static("x y"));
            let id = request_id(Some(&v));
            assert_ne!(id, odd);
            assert_eq!(id.len(), 24, "a fresh id: {id}");
        }
        assert_eq!(request_id(None).len(), 24);
    }

    #[test]
    fn query_values_are_never_shown() {
        assert_eq!(query_names("code=secret&state=s1"), "code,state");
        assert_eq!(query_names(""), "-");
    }
}
