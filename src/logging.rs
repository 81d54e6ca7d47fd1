//! Which log filter applies (`GATEHOUSE_LOG`, else `RUST_LOG`, else the command's default), and
//! what the access log learns about the request being served from the services (the client that
//! authenticated), kept per request, never shared between requests.

use std::cell::RefCell;

tokio::task_local! {
    /// The client id of the request being served, once a service knows it.
    static CLIENT: RefCell<Option<String>>;
}

/// Runs `fut` (one request) with a place for its client id; returns the id the services noted.
pub async fn with_request_context<F: std::future::Future>(fut: F) -> (F::Output, Option<String>) {
    CLIENT
        .scope(RefCell::new(None), async move {
            let out = fut.await;
            let client = CLIENT.with(|c| c.borrow_mut().take());
            (out, client)
        })
        .await
}

/// Notes the authenticated client of the request being served, for its access-log line. Outside
/// a request (a background task, the CLI) it does nothing.
pub fn note_client(client_id: &str) {
    let _ = CLIENT.try_with(|c| *c.borrow_mut() = Some(client_id.to_owned()));
}

/// The filter directives from the environment's `GATEHOUSE_LOG` and `RUST_LOG` (empty values
/// count as unset): `GATEHOUSE_LOG` wins when both are set.
pub fn filter_directives(
    gatehouse_log: Option<String>,
    rust_log: Option<String>,
    default: &str,
) -> String {
    gatehouse_log
        .filter(|v| !v.trim().is_empty())
        .or(rust_log.filter(|v| !v.trim().is_empty()))
        .unwrap_or_else(|| default.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn some(s: &str) -> Option<String> {
        Some(s.to_owned())
    }

    #[test]
    fn gatehouse_log_wins_over_rust_log() {
        assert_eq!(
            filter_directives(some("debug"), some("warn"), "info"),
            "debug"
        );
    }

    #[test]
    fn rust_log_is_honoured_without_gatehouse_log() {
        assert_eq!(filter_directives(None, some("warn"), "info"), "warn");
        assert_eq!(filter_directives(some(" "), some("warn"), "info"), "warn");
    }

    #[test]
    fn default_applies_without_either() {
        assert_eq!(filter_directives(None, None, "info"), "info");
        assert_eq!(filter_directives(some(""), some(""), "warn"), "warn");
    }
}
