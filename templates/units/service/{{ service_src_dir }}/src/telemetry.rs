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
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::Layer as _;
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
    // One JSON object per line; the current span's fields ride along, and the OpenTelemetry trace and span ids
    // of the active span as top-level `trace_id` / `span_id` (the names the Collector's filelog parser reads).
    let json_format = fmt::format()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false);
    let json_logs = fmt::layer()
        .event_format(JsonWithTraceIds(json_format))
        .fmt_fields(AppendJsonFields::default());

    let (tracer_provider, meter_provider) = if config.otel_sdk_disabled {
        (None, None)
    } else {
        let resource = resource(config);
        (
            Some(build_tracer_provider(config, resource.clone())?),
            Some(build_meter_provider(config, resource)?),
        )
    };
    // What each span carries is what a backend can use: the layer's defaults add per-span attributes no
    // semantic convention defines for a server span (code location of the span macro, the worker thread of
    // an async task that hops threads, busy/idle nanoseconds, the Rust target), and turn every event into a
    // span event. INFO events already reach the JSON logs with the trace and span ids, so only warnings and
    // errors ride on the span (an ERROR event also sets its status). Measured in benchmarks/service_bench.py:
    // these defaults made tracing cost ~50 % more CPU per request than the service without it.
    let otel_layer = tracer_provider.as_ref().map(|provider| {
        OpenTelemetryLayer::new(provider.tracer(config.service_name.clone()))
            .with_location(false)
            .with_threads(false)
            .with_tracked_inactivity(false)
            .with_target(false)
            .with_filter(filter_fn(|metadata| {
                metadata.is_span() || *metadata.level() <= tracing::Level::WARN
            }))
    });

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

/// The JSON event format plus `trace_id` and `span_id` of the OpenTelemetry context active while the event is
/// emitted (the OpenTelemetry layer activates a span's context whenever the span is entered). Read per line
/// instead of recorded as span fields: recording them made every span carry a duplicate `trace_id` attribute
/// and cost a JSON re-parse per request (benchmarks/service_bench.py).
pub struct JsonWithTraceIds<T>(fmt::format::Format<fmt::format::Json, T>);

impl<S, N, T> fmt::FormatEvent<S, N> for JsonWithTraceIds<T>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'writer> fmt::FormatFields<'writer> + 'static,
    T: fmt::time::FormatTime,
{
    fn format_event(
        &self,
        ctx: &fmt::FmtContext<'_, S, N>,
        mut writer: fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let context = opentelemetry::Context::current();
        let span = context.span();
        let ids = span.span_context();
        if !ids.is_valid() {
            return self.0.format_event(ctx, writer, event);
        }
        let mut line = String::with_capacity(512);
        self.0
            .format_event(ctx, fmt::format::Writer::new(&mut line), event)?;
        // The JSON format writes one object and a newline: the ids go in before its closing brace.
        let Some(end) = line.rfind('}') else {
            return writer.write_str(&line);
        };
        writer.write_str(&line[..end])?;
        write!(
            writer,
            ",\"trace_id\":\"{}\",\"span_id\":\"{}\"",
            ids.trace_id(),
            ids.span_id()
        )?;
        writer.write_str(&line[end..])
    }
}

/// tracing-subscriber's JSON field formatter, except that fields recorded on an existing span are appended to
/// its JSON object instead of parsing and re-serializing it. `JsonFields::add_fields` re-parses the span's
/// fields on every `Span::record`; each request records two (trace id, status code), and that parse was the
/// largest single cost of tracing in the service's load benchmark (benchmarks/service_bench.py). A field
/// recorded twice appears twice in the stored object; readers (serde_json, the JSON event formatter) keep
/// the last value, as the re-serialization did.
#[derive(Default)]
pub struct AppendJsonFields(fmt::format::JsonFields);

impl<'writer> fmt::FormatFields<'writer> for AppendJsonFields {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        writer: fmt::format::Writer<'writer>,
        fields: R,
    ) -> std::fmt::Result {
        self.0.format_fields(writer, fields)
    }

    fn add_fields(
        &self,
        current: &'writer mut fmt::FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> std::fmt::Result {
        let mut added = String::new();
        self.0
            .format_fields(fmt::format::Writer::new(&mut added), fields)?;
        // `added` is a JSON object: "{}" when every recorded value was empty.
        if added.len() <= 2 {
            return Ok(());
        }
        if current.fields.len() <= 2 {
            current.fields = added;
        } else {
            current.fields.pop(); // the closing brace
            current.fields.push(',');
            current.fields.push_str(&added[1..]);
        }
        Ok(())
    }
}

/// The server span of one HTTP request, continuing the caller's trace when it sent one.
pub fn request_span(request: &Request) -> Span {
    let route = request.extensions().get::<MatchedPath>().map_or_else(
        || request.uri().path().to_owned(),
        |path| path.as_str().to_owned(),
    );
    let method = request.method().as_str();
    let name = format!("{method} {route}");
    // Plain `&str` values, not `%` (Display): both layers then copy the string instead of running the
    // formatting machinery once per field and layer.
    let span = tracing::info_span!(
        "http.request",
        otel.name = name.as_str(),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = method,
        http.route = route.as_str(),
        url.path = request.uri().path(),
        http.response.status_code = tracing::field::Empty,
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
    );
    span
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::io;
    use std::sync::{Arc, Mutex};

    /// One JSON log line, as far as these tests read it (parsed with serde via axum's JSON extractor, the
    /// service's own serde_json, so no extra dependency).
    #[derive(Debug, serde::Deserialize)]
    struct Line {
        message: String,
        span: Option<BTreeMap<String, Field>>,
        trace_id: Option<String>,
        span_id: Option<String>,
    }

    #[derive(Debug, PartialEq, serde::Deserialize)]
    #[serde(untagged)]
    enum Field {
        Int(i64),
        Text(String),
    }

    /// Collects what the fmt layer writes, one buffer for the whole test.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().expect("not poisoned").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn lines(&self) -> Vec<Line> {
            let bytes = self.0.lock().expect("not poisoned").clone();
            bytes
                .split(|byte| *byte == b'\n')
                .filter(|line| !line.is_empty())
                .map(|line| {
                    axum::Json::<Line>::from_bytes(line)
                        .expect("each line is one JSON object")
                        .0
                })
                .collect()
        }
    }

    fn json_layer<S>(out: &Captured) -> impl tracing_subscriber::Layer<S>
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        let out = out.clone();
        fmt::layer()
            .event_format(JsonWithTraceIds(
                fmt::format()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false),
            ))
            .fmt_fields(AppendJsonFields::default())
            .with_writer(move || out.clone())
    }

    #[test]
    fn fields_recorded_later_are_appended_and_the_last_value_wins() {
        let out = Captured::default();
        let subscriber = tracing_subscriber::registry().with(json_layer(&out));
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!(
                "req",
                route = "/a",
                status = tracing::field::Empty,
                note = tracing::field::Empty
            );
            span.record("status", 200_i64);
            span.record("note", "first");
            span.record("note", "second");
            span.in_scope(|| tracing::info!("done"));
        });
        let lines = out.lines();
        assert_eq!(lines.len(), 1, "{lines:?}");
        let span = lines[0].span.as_ref().expect("span fields");
        assert_eq!(span["route"], Field::Text("/a".into()));
        assert_eq!(span["status"], Field::Int(200));
        assert_eq!(span["note"], Field::Text("second".into()));
        // Without an OpenTelemetry layer there is no trace context to name.
        assert_eq!((&lines[0].trace_id, &lines[0].span_id), (&None, &None));
    }

    #[test]
    fn log_lines_name_the_active_span_trace_and_span_ids() {
        let out = Captured::default();
        let provider = SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(json_layer(&out))
            .with(OpenTelemetryLayer::new(provider.tracer("test")));
        let expected = tracing::subscriber::with_default(subscriber, || {
            tracing::info!("before any span");
            let span = tracing::info_span!("req");
            span.in_scope(|| tracing::info!("inside"));
            let context = span.context();
            let ids = context.span().span_context().clone();
            (ids.trace_id().to_string(), ids.span_id().to_string())
        });
        let lines = out.lines();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(lines[0].trace_id, None, "{lines:?}");
        assert_eq!(lines[1].message, "inside");
        assert_eq!(lines[1].trace_id.as_deref(), Some(expected.0.as_str()));
        assert_eq!(lines[1].span_id.as_deref(), Some(expected.1.as_str()));
    }
}
