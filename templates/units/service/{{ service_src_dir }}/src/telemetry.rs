//! OpenTelemetry wiring: resource, W3C propagation, OTLP traces and metrics, JSON logs carrying trace ids.
//!
//! The SDK reads the standard variables itself: OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES (resource),
//! OTEL_EXPORTER_OTLP_ENDPOINT (exporters), OTEL_TRACES_SAMPLER[_ARG] (sampler), OTEL_BSP_* (batching).

use anyhow::Context as _;
use axum::extract::{MatchedPath, Request};
use opentelemetry::baggage::BaggageExt as _;
use opentelemetry::propagation::TextMapCompositePropagator;
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry::{global, KeyValue};
use opentelemetry_http::HeaderExtractor;
use opentelemetry_otlp::{MetricExporter, SpanExporter};
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing::Span;
use tracing_opentelemetry::{OpenTelemetryLayer, OpenTelemetrySpanExt as _};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{fmt, EnvFilter};

use crate::config::{Config, OtlpProtocol};

/// Owns the SDK providers; `shutdown` flushes what is still buffered.
pub struct Telemetry {
    tracer_provider: Option<SdkTracerProvider>,
    meter_provider: Option<SdkMeterProvider>,
}

/// Installs propagators, providers and the global `tracing` subscriber.
///
/// Must run inside the Tokio runtime: the tonic exporter binds to the runtime it is built in.
pub fn init(config: &Config) -> anyhow::Result<Telemetry> {
    global::set_text_map_propagator(TextMapCompositePropagator::new(vec![
        Box::new(TraceContextPropagator::new()),
        Box::new(BaggagePropagator::new()),
    ]));

    let filter = EnvFilter::try_new(&config.log_filter)
        .with_context(|| format!("RUST_LOG is not a valid filter: {:?}", config.log_filter))?;
    // One JSON object per line; the current span's fields (trace_id among them) ride along.
    let json_logs = fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false);

    let (tracer_provider, meter_provider) = if config.otel_sdk_disabled {
        (None, None)
    } else {
        let resource = resource(config);
        (
            Some(build_tracer_provider(config, resource.clone())?),
            Some(build_meter_provider(config, resource)?),
        )
    };
    let otel_layer = tracer_provider
        .as_ref()
        .map(|provider| OpenTelemetryLayer::new(provider.tracer(config.service_name.clone())));

    tracing_subscriber::registry()
        .with(filter)
        .with(json_logs)
        .with(otel_layer)
        .try_init()
        .context("installing the global tracing subscriber")?;

    Ok(Telemetry {
        tracer_provider,
        meter_provider,
    })
}

impl Telemetry {
    /// Flushes and stops the exporters. Blocking: call it off the async workers (spawn_blocking).
    pub fn shutdown(self) {
        if let Some(provider) = self.tracer_provider {
            if let Err(err) = provider.shutdown() {
                tracing::warn!(error = %err, "flushing traces at shutdown failed");
            }
        }
        if let Some(provider) = self.meter_provider {
            if let Err(err) = provider.shutdown() {
                tracing::warn!(error = %err, "flushing metrics at shutdown failed");
            }
        }
    }
}

fn resource(config: &Config) -> Resource {
    // Resource::builder() already merges OTEL_RESOURCE_ATTRIBUTES (pod, namespace, node from the chart).
    Resource::builder()
        .with_service_name(config.service_name.clone())
        .with_attributes([
            KeyValue::new("service.version", config.service_version.clone()),
            KeyValue::new("deployment.environment.name", config.environment.clone()),
        ])
        .build()
}

fn build_tracer_provider(config: &Config, resource: Resource) -> anyhow::Result<SdkTracerProvider> {
    let exporter = match config.otlp_protocol {
        OtlpProtocol::Grpc => SpanExporter::builder().with_tonic().build(),
        OtlpProtocol::HttpProtobuf => SpanExporter::builder().with_http().build(),
    }
    .context("building the OTLP span exporter")?;
    let provider = SdkTracerProvider::builder()
        .with_resource(resource)
        .with_batch_exporter(exporter)
        .build();
    global::set_tracer_provider(provider.clone());
    Ok(provider)
}

fn build_meter_provider(config: &Config, resource: Resource) -> anyhow::Result<SdkMeterProvider> {
    let exporter = match config.otlp_protocol {
        OtlpProtocol::Grpc => MetricExporter::builder().with_tonic().build(),
        OtlpProtocol::HttpProtobuf => MetricExporter::builder().with_http().build(),
    }
    .context("building the OTLP metric exporter")?;
    let provider = SdkMeterProvider::builder()
        .with_resource(resource)
        .with_periodic_exporter(exporter)
        .build();
    global::set_meter_provider(provider.clone());
    Ok(provider)
}

/// The server span of one HTTP request, continuing the caller's trace when it sent one.
pub fn request_span(request: &Request) -> Span {
    let route = request.extensions().get::<MatchedPath>().map_or_else(
        || request.uri().path().to_owned(),
        |path| path.as_str().to_owned(),
    );
    let span = tracing::info_span!(
        "http.request",
        otel.name = %format!("{} {route}", request.method()),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = %request.method(),
        http.route = %route,
        url.path = %request.uri().path(),
        http.response.status_code = tracing::field::Empty,
        trace_id = tracing::field::Empty,
    );
    // W3C `traceparent` / `tracestate` / `baggage`. opentelemetry-http's extractor follows the
    // `Extractor` trait of the same opentelemetry release, so no hand-written impl can drift from it.
    let parent = global::get_text_map_propagator(|propagator| {
        propagator.extract(&HeaderExtractor(request.headers()))
    });
    let baggage: Vec<(String, String)> = parent
        .baggage()
        .iter()
        .map(|(key, (value, _))| (format!("baggage.{}", key.as_str()), value.to_string()))
        .collect();
    // The parent must be set before anything reads the span's context (that starts the span).
    if let Err(err) = span.set_parent(parent) {
        tracing::debug!(error = %err, "incoming trace context not attached");
    }
    // Baggage stays in the request's context (an outgoing call made under this span carries it on) and is
    // recorded on the span as `baggage.<key>`, as the OpenTelemetry BaggageSpanProcessor does, so traces can be
    // queried by it. The W3C propagator already bounds it (at most 64 entries, 8192 bytes).
    for (key, value) in baggage {
        span.set_attribute(key, value);
    }
    record_trace_id(&span);
    span
}

/// The span of this process's own rollout: started at boot, completed once the listener serves.
pub fn rollout_span(config: &Config) -> Span {
    // deployment.environment is the pre-1.27 semconv name, still read by many backends; .name is current.
    let span = tracing::info_span!(
        "rollout",
        otel.name = "rollout",
        deployment.version = %config.service_version,
        deployment.environment = %config.environment,
        deployment.environment.name = %config.environment,
        trace_id = tracing::field::Empty,
    );
    record_trace_id(&span);
    span
}

/// Copies the OpenTelemetry trace id into the span's fields, so JSON log lines can be joined to traces.
fn record_trace_id(span: &Span) {
    let span_context = span.context().span().span_context().clone();
    if span_context.is_valid() {
        span.record("trace_id", tracing::field::display(span_context.trace_id()));
    }
}
