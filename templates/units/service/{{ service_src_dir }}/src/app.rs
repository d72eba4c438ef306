//! HTTP routes: the API, liveness (`/health`) and readiness (`/ready`) probes, request spans and metrics.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use opentelemetry::metrics::Histogram;
use opentelemetry::{global, KeyValue};
use serde::Serialize;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::telemetry;

/// Shared by every handler; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    ready: AtomicBool,
    about: About,
    request_duration: Histogram<f64>,
}

#[derive(Clone, Serialize)]
struct About {
    service: String,
    version: String,
    environment: String,
}

impl AppState {
    /// Build after `telemetry::init`: instruments bind to the meter provider installed at creation time.
    pub fn new(service: &str, version: &str, environment: &str) -> Self {
        let request_duration = global::meter(env!("CARGO_PKG_NAME"))
            .f64_histogram("http.server.request.duration")
            .with_unit("s")
            .with_description("Duration of HTTP server requests")
            .build();
        Self {
            inner: Arc::new(Inner {
                ready: AtomicBool::new(false),
                about: About {
                    service: service.to_owned(),
                    version: version.to_owned(),
                    environment: environment.to_owned(),
                },
                request_duration,
            }),
        }
    }

    pub fn set_ready(&self, ready: bool) {
        self.inner.ready.store(ready, Ordering::SeqCst);
    }

    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::SeqCst)
    }
}

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/", get(index))
        .route("/hello/{name}", get(hello))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            record_request,
        ))
        // Outermost: the request span is current while the inner layers and handlers run.
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(telemetry::request_span)
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        );
    // Probes are merged after the layers: kubelet polling stays out of traces, metrics and logs.
    let probes = Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready));
    api.merge(probes).with_state(state)
}

async fn index(State(state): State<AppState>) -> Json<About> {
    Json(state.inner.about.clone())
}

async fn hello(Path(name): Path<String>) -> String {
    tracing::info!(name = %name, "greeting");
    format!("Hello, {name}!\n")
}

/// Liveness: the process is up and serving HTTP.
async fn health() -> StatusCode {
    StatusCode::OK
}

/// Readiness: false until the listener is bound and again from SIGTERM on, so traffic drains first.
async fn ready(State(state): State<AppState>) -> StatusCode {
    if state.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

/// Records the response status on the request span and the request duration histogram.
async fn record_request(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let response = next.run(request).await;
    let status = response.status();
    let span = tracing::Span::current();
    // As i64: tracing-opentelemetry turns unsigned fields into strings, semconv wants an int attribute.
    span.record("http.response.status_code", i64::from(status.as_u16()));
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    state.inner.request_duration.record(
        started.elapsed().as_secs_f64(),
        &[
            KeyValue::new("http.request.method", method),
            KeyValue::new("http.route", route),
            KeyValue::new("http.response.status_code", i64::from(status.as_u16())),
        ],
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::{to_bytes, Body};
    use tower::ServiceExt as _;

    // http's builder lives on Request<()>, so it is named through axum::http, not the Body alias.
    fn get_request(uri: &str) -> Request {
        axum::http::Request::builder()
            .uri(uri)
            .body(Body::empty())
            .expect("valid request")
    }

    fn state() -> AppState {
        AppState::new("svc", "1.2.3", "test")
    }

    #[tokio::test]
    async fn health_is_ok_even_before_ready() {
        let response = router(state())
            .oneshot(get_request("/health"))
            .await
            .expect("infallible");
        assert_eq!(response.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn ready_follows_the_state() {
        let state = state();
        let app = router(state.clone());
        let before = app
            .clone()
            .oneshot(get_request("/ready"))
            .await
            .expect("infallible");
        assert_eq!(before.status(), StatusCode::SERVICE_UNAVAILABLE);
        state.set_ready(true);
        let after = app
            .oneshot(get_request("/ready"))
            .await
            .expect("infallible");
        assert_eq!(after.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn hello_greets_the_path_parameter() {
        let response = router(state())
            .oneshot(get_request("/hello/otel"))
            .await
            .expect("infallible");
        assert_eq!(response.status(), StatusCode::OK);
        let body = to_bytes(response.into_body(), 1024).await.expect("body");
        assert_eq!(&body[..], b"Hello, otel!\n");
    }

    #[tokio::test]
    async fn index_describes_the_service() {
        let response = router(state())
            .oneshot(get_request("/"))
            .await
            .expect("infallible");
        let body = to_bytes(response.into_body(), 1024).await.expect("body");
        let text = String::from_utf8(body.to_vec()).expect("utf-8");
        assert!(text.contains("\"version\":\"1.2.3\""), "{text}");
    }
}
