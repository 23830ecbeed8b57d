//! The HTTP server: metrics, a landing page, health and readiness.
//!
//! Every answer comes from the [`Store`]; nothing here calls AWS.

use std::fmt::Write as _;
use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tracing::{error, info};

use crate::metrics::Format;
use crate::store::Store;

#[derive(Clone)]
struct AppState {
    store: Arc<Store>,
    telemetry_path: Arc<str>,
}

/// The exporter's routes; `telemetry_path` is where metrics are served.
pub fn app(store: Arc<Store>, telemetry_path: &str) -> Router {
    let state = AppState {
        store,
        telemetry_path: telemetry_path.into(),
    };
    Router::new()
        .route("/", get(landing_page))
        .route(telemetry_path, get(metrics))
        .route("/-/healthy", get(|| async { "Healthy\n" }))
        .route("/-/ready", get(ready))
        .route("/-/reload", post(reload))
        .with_state(state)
}

/// Serves `app` on `listener` until `shutdown` completes, then lets
/// in-flight requests finish.
pub async fn run(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Whether the scraper asked for OpenMetrics.
fn wants_openmetrics(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"))
}

/// Whether the client accepts a gzip-encoded body (and did not refuse it
/// with `q=0`).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            name.eq_ignore_ascii_case("gzip") && !refused
        })
}

async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let exposition = state.store.exposition();
    let format = if wants_openmetrics(&headers) {
        Format::OpenMetrics
    } else {
        Format::Text
    };
    let content_type = (
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    let vary = (header::VARY, HeaderValue::from_static("accept-encoding"));
    if accepts_gzip(&headers)
        && let Some(compressed) = exposition.gzipped(format)
    {
        let encoding = (header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        return ([content_type, vary, encoding], compressed).into_response();
    }
    ([content_type, vary], exposition.plain(format)).into_response()
}

async fn ready(State(state): State<AppState>) -> (StatusCode, &'static str) {
    if state.store.ready() {
        (StatusCode::OK, "Ready\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "Not ready: the first refresh has not finished\n",
        )
    }
}

/// Reloads the config file, as SIGHUP does.
async fn reload(State(state): State<AppState>) -> (StatusCode, String) {
    match state.store.reload_config().await {
        Ok(()) => {
            info!("config reloaded");
            (StatusCode::OK, "Config reloaded\n".to_owned())
        }
        Err(e) => {
            error!(error = %e, "config reload failed; keeping the config in force");
            (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n"))
        }
    }
}

async fn landing_page(State(state): State<AppState>) -> Html<String> {
    let mut page = String::new();
    let path = escape(&state.telemetry_path);
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>IAM credentials exporter</title>\
         <style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:.3em .8em;text-align:left}}\
         .failing{{color:#b00}}</style></head><body>\n<h1>IAM credentials exporter</h1>\n\
         <p>Version {version}. <a href=\"{path}\">Metrics</a> · <a href=\"/-/healthy\">Health</a> · \
         <a href=\"/-/ready\">Readiness</a></p>\n<table>\n<tr><th>Account</th><th>Alias</th>\
         <th>Last refresh</th><th>Last success</th><th>Next refresh</th><th>Errors</th></tr>\n",
        version = env!("CARGO_PKG_VERSION"),
    );
    for status in state.store.statuses() {
        let Some(snapshot) = status.snapshot else {
            page.push_str("<tr><td colspan=\"6\">first refresh in progress</td></tr>\n");
            continue;
        };
        let health = &snapshot.health;
        let when = |t: Option<chrono::DateTime<chrono::Utc>>| {
            t.map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
                .unwrap_or_else(|| "never".to_owned())
        };
        let _ = writeln!(
            page,
            "<tr><td>{id}</td><td>{alias}</td><td class=\"{class}\">{result}</td><td>{last}</td>\
             <td>{next}</td><td>{errors}</td></tr>",
            id = escape(&snapshot.account_id),
            alias = escape(&snapshot.alias),
            class = if health.success { "ok" } else { "failing" },
            result = if health.success { "ok" } else { "failing" },
            last = when(health.last_success),
            next = when(status.next_refresh),
            errors = escape(&health.last_errors.join("; ")),
        );
    }
    page.push_str("</table>\n</body></html>\n");
    Html(page)
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_encoding(value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn gzip_is_used_only_when_accepted() {
        assert!(accepts_gzip(&with_encoding("gzip")));
        assert!(accepts_gzip(&with_encoding(
            "br;q=1.0, GZIP;q=0.5, *;q=0.1"
        )));
        assert!(!accepts_gzip(&with_encoding("gzip;q=0")));
        assert!(!accepts_gzip(&with_encoding("identity")));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }
}
