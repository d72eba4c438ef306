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
use opentelemetry_sdk::trace::{
    BatchConfig, BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider,
};
use opentelemetry_sdk::Resource;
use tracing::Span;
use tracing_opentelemetry::{OpenTelemetryLayer, OpenTelemetrySpanExt as _};
use tracing_subscriber::layer::{Context as LayerContext, SubscriberExt as _};
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
        let export = match config.otlp_protocol {
            OtlpProtocol::Grpc => Some(export_runtime()?),
            // reqwest's blocking client runs its own thread already.
            OtlpProtocol::HttpProtobuf => None,
        };
        let _in_export_runtime = export.as_ref().map(tokio::runtime::Handle::enter);
        (
            Some(build_tracer_provider(
                config,
                export.clone(),
                resource.clone(),
            )?),
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
        // A static scope name: the SDK clones the scope into every finished span (an owned name is one more
        // allocation and copy per span).
        let layer = OpenTelemetryLayer::new(provider.tracer(env!("CARGO_PKG_NAME")))
            .with_location(false)
            .with_threads(false)
            .with_tracked_inactivity(false)
            .with_target(false);
        WarningEventsOnly(layer)
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

/// The OpenTelemetry layer for every span but only for WARN and ERROR events (they become span events; an ERROR
/// also sets the span's status). A wrapper rather than a per-layer filter (`Layer::with_filter`): that filter is
/// consulted on every span and event callback and cost ~500 instructions per request (benchmarks/service_bench.py).
struct WarningEventsOnly<L>(L);

impl<S, L> tracing_subscriber::Layer<S> for WarningEventsOnly<L>
where
    S: tracing::Subscriber,
    L: tracing_subscriber::Layer<S>,
{
    fn on_register_dispatch(&self, subscriber: &tracing::Dispatch) {
        self.0.on_register_dispatch(subscriber);
    }

    fn on_layer(&mut self, subscriber: &mut S) {
        self.0.on_layer(subscriber);
    }

    fn register_callsite(
        &self,
        metadata: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        self.0.register_callsite(metadata)
    }

    fn enabled(&self, metadata: &tracing::Metadata<'_>, ctx: LayerContext<'_, S>) -> bool {
        self.0.enabled(metadata, ctx)
    }

    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: LayerContext<'_, S>,
    ) {
        self.0.on_new_span(attrs, id, ctx);
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        ctx: LayerContext<'_, S>,
    ) {
        self.0.on_record(id, values, ctx);
    }

    fn on_follows_from(
        &self,
        id: &tracing::span::Id,
        follows: &tracing::span::Id,
        ctx: LayerContext<'_, S>,
    ) {
        self.0.on_follows_from(id, follows, ctx);
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: LayerContext<'_, S>) {
        if *event.metadata().level() <= tracing::Level::WARN {
            self.0.on_event(event, ctx);
        }
    }

    fn on_enter(&self, id: &tracing::span::Id, ctx: LayerContext<'_, S>) {
        self.0.on_enter(id, ctx);
    }

    fn on_exit(&self, id: &tracing::span::Id, ctx: LayerContext<'_, S>) {
        self.0.on_exit(id, ctx);
    }

    fn on_close(&self, id: tracing::span::Id, ctx: LayerContext<'_, S>) {
        self.0.on_close(id, ctx);
    }

    fn on_id_change(
        &self,
        old: &tracing::span::Id,
        new: &tracing::span::Id,
        ctx: LayerContext<'_, S>,
    ) {
        self.0.on_id_change(old, new, ctx);
    }

    // SAFETY: a pointer to `self` only for its own type id; otherwise what the inner layer returns for the id
    // (tracing-opentelemetry finds its span-context accessor this way), pointing into `self.0`, which lives as
    // long as `self`.
    unsafe fn downcast_raw(&self, id: std::any::TypeId) -> Option<*const ()> {
        if id == std::any::TypeId::of::<Self>() {
            Some(self as *const Self as *const ())
        } else {
            self.0.downcast_raw(id)
        }
    }
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

/// A single-threaded Tokio runtime on a thread of its own for the gRPC exporters' connection: built inside it,
/// tonic spawns its channel worker and HTTP/2 connection there, so encoding and sending a batch never queue on
/// the request-serving workers (a 512-span export held a worker for milliseconds: the p99 of the load benchmark
/// rose 2x). On a pod with one CPU the kernel still shares that CPU, but it can preempt this thread for a
/// request; a task on the serving runtime cannot be preempted.
fn export_runtime() -> anyhow::Result<tokio::runtime::Handle> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building the OTLP export runtime")?;
    let handle = runtime.handle().clone();
    std::thread::Builder::new()
        .name("otlp-export".to_owned())
        // Runs until the process exits: the shutdown flush in `Telemetry::shutdown` still needs it.
        .spawn(move || {
            lower_export_thread_priority();
            runtime.block_on(std::future::pending::<()>())
        })
        .context("starting the OTLP export thread")?;
    Ok(handle)
}

/// The nice value of the threads that export spans (the SDK's batch processor, which drains and encodes a batch,
/// and the export runtime, which frames and sends it). On a pod's only CPU a batch of 512 spans is a burst of
/// about a millisecond; at the request workers' priority the scheduler lets it preempt them and every request in
/// flight waits (benchmarks/service_bench.py: p99 x1.7 of the untraced service). At nice 10 the burst is cut
/// into short slices between requests and the exporters still get about a tenth of a saturated CPU, several
/// times the ~4 % they use at full load, so the queue does not fill. Raising one's own nice value needs no
/// capability, so the chart's restricted security context allows it.
const EXPORT_THREAD_NICE: libc::c_int = 10;

/// Lowers the calling thread's scheduling priority to [`EXPORT_THREAD_NICE`]. Linux keeps the nice value per
/// thread (setpriority(2), "BUGS"), and `who = 0` is the calling thread, so the request workers keep theirs. A
/// failure only costs latency, never spans, so it is ignored.
fn lower_export_thread_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority only reads its integer arguments; it touches no memory of this process.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, EXPORT_THREAD_NICE);
    }
}

/// Spans per export when OTEL_BSP_MAX_EXPORT_BATCH_SIZE is not set (the SDK's default is 512). A batch is
/// drained, encoded and sent in one go on the pod's CPU; 128 spans keep each burst short enough that requests
/// do not queue behind it, and each export's fixed cost (a gRPC call, two thread wake-ups) stays small
/// (benchmarks/service_bench.py, 5 interleaved rounds on an idle machine: p99 x1.36-1.59 of the untraced service
/// at 512, x1.29 at 128, x1.14-1.27 at 64; instructions per request x1.185 at 128 and x1.200 at 64).
const EXPORT_BATCH_SIZE: usize = 128;

/// The batch processor's settings: the OTEL_BSP_* variables where set, else the SDK's defaults except the batch
/// size ([`EXPORT_BATCH_SIZE`]).
fn batch_config() -> BatchConfig {
    let builder = BatchConfigBuilder::default(); // reads OTEL_BSP_*
    if std::env::var_os("OTEL_BSP_MAX_EXPORT_BATCH_SIZE").is_some() {
        builder.build()
    } else {
        builder
            .with_max_export_batch_size(EXPORT_BATCH_SIZE)
            .build()
    }
}

fn build_tracer_provider(
    config: &Config,
    export: Option<tokio::runtime::Handle>,
    resource: Resource,
) -> anyhow::Result<SdkTracerProvider> {
    let builder = SdkTracerProvider::builder().with_resource(resource);
    let builder = match config.otlp_protocol {
        OtlpProtocol::Grpc => builder.with_span_processor(
            BatchSpanProcessor::builder(
                self::otlp_grpc::GrpcSpanExporter::from_env(
                    export.context("no OTLP export runtime")?,
                )
                .context("building the OTLP/gRPC span exporter")?,
            )
            .with_batch_config(batch_config())
            .build(),
        ),
        OtlpProtocol::HttpProtobuf => builder.with_span_processor(
            BatchSpanProcessor::builder(
                SpanExporter::builder()
                    .with_http()
                    .build()
                    .context("building the OTLP span exporter")?,
            )
            .with_batch_config(batch_config())
            .build(),
        ),
    };
    let provider = builder.build();
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
        // Streamed into the log buffer as it is formatted, the ids first: formatting the line into a String of
        // its own to insert them before the closing brace, and writing them through `Display`, was a fifth of
        // what tracing cost per request (benchmarks/service_bench.py).
        let mut out = IdsFirst {
            out: &mut writer,
            ids: Some(trace_ids_json(ids)),
        };
        self.0
            .format_event(ctx, fmt::format::Writer::new(&mut out), event)
    }
}

/// Passes the JSON object through to `out`, with `"trace_id":…,"span_id":…,` right after its opening brace.
struct IdsFirst<'a, 'w> {
    out: &'a mut fmt::format::Writer<'w>,
    ids: Option<TraceIdsJson>,
}

impl std::fmt::Write for IdsFirst<'_, '_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let Some(ids) = self.ids.take() else {
            return self.out.write_str(s);
        };
        match s.strip_prefix('{') {
            Some(rest) => {
                self.out.write_str("{")?;
                self.out.write_str(&ids)?;
                self.out.write_str(rest)
            }
            // Not the JSON object the format writes: leave the line as it is.
            None => self.out.write_str(s),
        }
    }
}

/// `"trace_id":"<32 hex>","span_id":"<16 hex>",`, written without the formatting machinery.
fn trace_ids_json(ids: &opentelemetry::trace::SpanContext) -> TraceIdsJson {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    const PREFIX: &[u8] = b"\"trace_id\":\"";
    const MIDDLE: &[u8] = b"\",\"span_id\":\"";
    let mut buf = [0u8; TRACE_IDS_JSON_LEN];
    let mut at = 0;
    let mut put = |bytes: &[u8]| {
        buf[at..at + bytes.len()].copy_from_slice(bytes);
        at += bytes.len();
    };
    put(PREFIX);
    for byte in ids.trace_id().to_bytes() {
        put(&[HEX[usize::from(byte >> 4)], HEX[usize::from(byte & 0xf)]]);
    }
    put(MIDDLE);
    for byte in ids.span_id().to_bytes() {
        put(&[HEX[usize::from(byte >> 4)], HEX[usize::from(byte & 0xf)]]);
    }
    put(b"\",");
    TraceIdsJson(buf)
}

const TRACE_IDS_JSON_LEN: usize = 12 + 32 + 13 + 16 + 2;

struct TraceIdsJson([u8; TRACE_IDS_JSON_LEN]);

impl std::ops::Deref for TraceIdsJson {
    type Target = str;

    fn deref(&self) -> &str {
        // ASCII by construction; an empty string would only drop the ids, never corrupt the line.
        std::str::from_utf8(&self.0).unwrap_or_default()
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

mod otlp_grpc {
    //! OTLP/gRPC span export that encodes each batch once, straight from the SDK's span data into the protobuf
    //! bytes of an `ExportTraceServiceRequest`, and retries with those same bytes.
    //!
    //! Why not opentelemetry-otlp's tonic exporter: it deep-clones every batch before each attempt (for its retry
    //! loop), converts the clone into the generated protobuf structs (a new String per attribute key and value),
    //! and prost then walks those structs twice per nesting level to size and write them. For this service that
    //! was ~12,000 instructions per exported span, a third of what tracing cost per request
    //! (benchmarks/service_bench.py). The HTTP/protobuf exporter (OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf) is
    //! still opentelemetry-otlp's; so are the metrics exporters.
    //!
    //! Read from the environment, as opentelemetry-otlp does: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, else
    //! OTEL_EXPORTER_OTLP_ENDPOINT (default http://localhost:4317); OTEL_EXPORTER_OTLP_[TRACES_]TIMEOUT
    //! (milliseconds, default 10000); OTEL_EXPORTER_OTLP_[TRACES_]HEADERS (`key=value,...`, values URL-encoded).

    use std::time::Duration;

    use anyhow::Context as _;
    use opentelemetry::trace::{SpanContext, SpanKind, Status};
    use opentelemetry::{Array, InstrumentationScope, KeyValue, Value};
    use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
    use opentelemetry_sdk::trace::{SpanData, SpanExporter};
    use opentelemetry_sdk::Resource;
    use prost::bytes::{Buf as _, BufMut as _};
    use tonic::codegen::http::uri::PathAndQuery;
    use tonic::codegen::Bytes;
    use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
    use tonic::transport::{Channel, Endpoint};

    const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
    const DEFAULT_ENDPOINT: &str = "http://localhost:4317";
    const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
    /// Attempts per batch when the collector answers with a retryable status (OTLP: UNAVAILABLE and friends).
    const ATTEMPTS: u32 = 4;

    thread_local! {
        static BATCH_THREAD_LOWERED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    pub struct GrpcSpanExporter {
        // Cloned per export (a handle on the channel's worker); the channel's sender is not Sync.
        client: std::sync::Mutex<tonic::client::Grpc<Channel>>,
        runtime: tokio::runtime::Handle,
        headers: MetadataMap,
        timeout: Duration,
        /// The encoded fields of the `Resource` message, the same for every batch.
        resource: Vec<u8>,
        resource_schema_url: String,
    }

    impl std::fmt::Debug for GrpcSpanExporter {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("GrpcSpanExporter")
        }
    }

    impl GrpcSpanExporter {
        /// Connects lazily (the first export dials); the channel's tasks run on `runtime`.
        pub fn from_env(runtime: tokio::runtime::Handle) -> anyhow::Result<Self> {
            let var = |signal: &str, any: &str| {
                std::env::var(signal)
                    .ok()
                    .or_else(|| std::env::var(any).ok())
                    .map(|value| value.trim().to_owned())
                    .filter(|value| !value.is_empty())
            };
            let endpoint = var(
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "OTEL_EXPORTER_OTLP_ENDPOINT",
            )
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned());
            let timeout = match var(
                "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
                "OTEL_EXPORTER_OTLP_TIMEOUT",
            ) {
                None => DEFAULT_TIMEOUT,
                Some(raw) => Duration::from_millis(
                    raw.parse()
                        .with_context(|| format!("OTLP timeout is not milliseconds: {raw:?}"))?,
                ),
            };
            let headers = match var(
                "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
                "OTEL_EXPORTER_OTLP_HEADERS",
            ) {
                None => MetadataMap::new(),
                Some(raw) => parse_headers(&raw)?,
            };
            let channel = {
                let _in_runtime = runtime.enter();
                Endpoint::from_shared(endpoint.clone())
                    .with_context(|| format!("invalid OTLP endpoint {endpoint:?}"))?
                    .timeout(timeout)
                    .connect_lazy()
            };
            Ok(Self {
                client: std::sync::Mutex::new(tonic::client::Grpc::new(channel)),
                runtime,
                headers,
                timeout,
                resource: Vec::new(),
                resource_schema_url: String::new(),
            })
        }
    }

    fn parse_headers(raw: &str) -> anyhow::Result<MetadataMap> {
        let mut headers = MetadataMap::new();
        for pair in raw.split(',').filter(|pair| !pair.trim().is_empty()) {
            let (key, value) = pair
                .split_once('=')
                .with_context(|| format!("OTLP header is not key=value: {pair:?}"))?;
            let key = MetadataKey::from_bytes(key.trim().to_ascii_lowercase().as_bytes())
                .with_context(|| format!("invalid OTLP header name {key:?}"))?;
            let value = MetadataValue::try_from(percent_decode(value.trim()).as_str())
                .with_context(|| format!("invalid OTLP header value for {key}"))?;
            headers.insert(key, value);
        }
        Ok(headers)
    }

    fn percent_decode(text: &str) -> String {
        let bytes = text.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            let hex = |at: usize| bytes.get(at).and_then(|b| (*b as char).to_digit(16));
            match (bytes[i], hex(i + 1), hex(i + 2)) {
                (b'%', Some(high), Some(low)) => {
                    // Two hex digits: at most 0xff.
                    out.push(u8::try_from(high * 16 + low).unwrap_or(b'?'));
                    i += 3;
                }
                (byte, _, _) => {
                    out.push(byte);
                    i += 1;
                }
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    impl SpanExporter for GrpcSpanExporter {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            // Polled on the SDK's batch processor thread, which this crate does not start: lower its priority
            // on its first batch (see super::EXPORT_THREAD_NICE).
            BATCH_THREAD_LOWERED.with(|lowered| {
                if !lowered.replace(true) {
                    super::lower_export_thread_priority();
                }
            });
            if batch.is_empty() {
                return Ok(());
            }
            let body = Bytes::from(encode_request(
                &batch,
                &self.resource,
                &self.resource_schema_url,
            ));
            drop(batch);
            let mut client = self
                .client
                .lock()
                .map_err(|_| {
                    OTelSdkError::InternalFailure("span exporter lock poisoned".to_owned())
                })?
                .clone();
            let headers = self.headers.clone();
            let timeout = self.timeout;
            // Sent from the export runtime: the batch processor polls this future on a plain thread, where tokio's
            // timers (the backoff below) do not run.
            self.runtime
                .spawn(async move {
                    let mut backoff = Duration::from_millis(100);
                    let mut attempt = 1;
                    loop {
                        let status = match send(&mut client, &headers, timeout, body.clone()).await
                        {
                            Ok(()) => return Ok(()),
                            Err(status) => status,
                        };
                        if attempt == ATTEMPTS || !retryable(status.code()) {
                            return Err(OTelSdkError::InternalFailure(format!(
                                "OTLP/gRPC span export failed: {status}"
                            )));
                        }
                        tokio::time::sleep(backoff).await;
                        backoff *= 2;
                        attempt += 1;
                    }
                })
                .await
                .map_err(|err| OTelSdkError::InternalFailure(format!("span export task: {err}")))?
        }

        fn set_resource(&mut self, resource: &Resource) {
            let mut fields = Vec::new();
            for (key, value) in resource.iter() {
                message(&mut fields, 1, |buf| key_value(buf, key.as_str(), value));
            }
            self.resource = fields;
            self.resource_schema_url = resource.schema_url().unwrap_or_default().to_owned();
        }
    }

    async fn send(
        client: &mut tonic::client::Grpc<Channel>,
        headers: &MetadataMap,
        timeout: Duration,
        body: Bytes,
    ) -> Result<(), tonic::Status> {
        client.ready().await.map_err(|err| {
            tonic::Status::unavailable(format!("OTLP collector unreachable: {err}"))
        })?;
        let mut request = tonic::Request::new(body);
        *request.metadata_mut() = headers.clone();
        request.set_timeout(timeout);
        client
            .unary::<Bytes, (), _>(request, PathAndQuery::from_static(EXPORT_PATH), Encoded)
            .await
            .map(|_| ())
    }

    /// The status codes OTLP/gRPC says to retry.
    fn retryable(code: tonic::Code) -> bool {
        use tonic::Code;
        matches!(
            code,
            Code::Cancelled
                | Code::DeadlineExceeded
                | Code::ResourceExhausted
                | Code::Aborted
                | Code::OutOfRange
                | Code::Unavailable
                | Code::DataLoss
        )
    }

    /// Sends already-encoded request bytes; the response (an optional partial-success notice) is not read.
    #[derive(Clone, Copy)]
    struct Encoded;

    impl tonic::codec::Codec for Encoded {
        type Encode = Bytes;
        type Decode = ();
        type Encoder = Self;
        type Decoder = Self;

        fn encoder(&mut self) -> Self {
            *self
        }

        fn decoder(&mut self) -> Self {
            *self
        }
    }

    impl tonic::codec::Encoder for Encoded {
        type Item = Bytes;
        type Error = tonic::Status;

        fn encode(
            &mut self,
            item: Bytes,
            dst: &mut tonic::codec::EncodeBuf<'_>,
        ) -> Result<(), tonic::Status> {
            dst.put(item);
            Ok(())
        }
    }

    impl tonic::codec::Decoder for Encoded {
        type Item = ();
        type Error = tonic::Status;

        fn decode(
            &mut self,
            src: &mut tonic::codec::DecodeBuf<'_>,
        ) -> Result<Option<()>, tonic::Status> {
            src.advance(src.remaining());
            Ok(Some(()))
        }
    }

    // ------------------------------------------------------------------ protobuf encoding (opentelemetry-proto 1.x)

    const VARINT: u32 = 0;
    const FIXED64: u32 = 1;
    const LEN: u32 = 2;
    const FIXED32: u32 = 5;

    /// `ExportTraceServiceRequest` with one `ResourceSpans` and one `ScopeSpans` per instrumentation scope.
    pub fn encode_request(
        batch: &[SpanData],
        resource: &[u8],
        resource_schema_url: &str,
    ) -> Vec<u8> {
        let mut buf = Vec::with_capacity(256 + batch.len() * 256);
        message(&mut buf, 1, |buf| {
            message(buf, 1, |buf| buf.extend_from_slice(resource));
            let mut scopes: Vec<&InstrumentationScope> = Vec::new();
            for span in batch {
                if !scopes.contains(&&span.instrumentation_scope) {
                    scopes.push(&span.instrumentation_scope);
                }
            }
            for scope in scopes {
                message(buf, 2, |buf| {
                    message(buf, 1, |buf| {
                        string(buf, 1, scope.name());
                        string(buf, 2, scope.version().unwrap_or_default());
                        attributes(buf, 3, scope.attributes());
                    });
                    for span in batch
                        .iter()
                        .filter(|span| span.instrumentation_scope == *scope)
                    {
                        message(buf, 2, |buf| encode_span(buf, span));
                    }
                    string(buf, 3, scope.schema_url().unwrap_or_default());
                });
            }
            string(buf, 3, resource_schema_url);
        });
        buf
    }

    fn encode_span(buf: &mut Vec<u8>, span: &SpanData) {
        let context = &span.span_context;
        bytes(buf, 1, &context.trace_id().to_bytes());
        bytes(buf, 2, &context.span_id().to_bytes());
        string(buf, 3, &context.trace_state().header());
        if span.parent_span_id != opentelemetry::trace::SpanId::INVALID {
            bytes(buf, 4, &span.parent_span_id.to_bytes());
        }
        string(buf, 5, &span.name);
        let kind: u64 = match span.span_kind {
            SpanKind::Internal => 1,
            SpanKind::Server => 2,
            SpanKind::Client => 3,
            SpanKind::Producer => 4,
            SpanKind::Consumer => 5,
        };
        uint(buf, 6, kind);
        fixed64(buf, 7, unix_nanos(span.start_time));
        fixed64(buf, 8, unix_nanos(span.end_time));
        attributes(buf, 9, span.attributes.iter());
        uint(buf, 10, span.dropped_attributes_count.into());
        for event in span.events.iter() {
            message(buf, 11, |buf| {
                fixed64(buf, 1, unix_nanos(event.timestamp));
                string(buf, 2, &event.name);
                attributes(buf, 3, event.attributes.iter());
                uint(buf, 4, event.dropped_attributes_count.into());
            });
        }
        uint(buf, 12, span.events.dropped_count.into());
        for link in span.links.iter() {
            message(buf, 13, |buf| {
                bytes(buf, 1, &link.span_context.trace_id().to_bytes());
                bytes(buf, 2, &link.span_context.span_id().to_bytes());
                string(buf, 3, &link.span_context.trace_state().header());
                attributes(buf, 4, link.attributes.iter());
                uint(buf, 5, link.dropped_attributes_count.into());
                fixed32(
                    buf,
                    6,
                    flags(&link.span_context, link.span_context.is_remote()),
                );
            });
        }
        uint(buf, 14, span.links.dropped_count.into());
        message(buf, 15, |buf| match &span.status {
            Status::Unset => {}
            Status::Ok => uint(buf, 3, 1),
            Status::Error { description } => {
                string(buf, 2, description);
                uint(buf, 3, 2);
            }
        });
        fixed32(buf, 16, flags(context, span.parent_span_is_remote));
    }

    /// W3C trace flags plus "the parent's remoteness is known" and, if so, whether it was remote.
    fn flags(context: &SpanContext, remote: bool) -> u32 {
        u32::from(context.trace_flags().to_u8()) | 0x100 | if remote { 0x200 } else { 0 }
    }

    fn unix_nanos(time: std::time::SystemTime) -> u64 {
        time.duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| {
                u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
            })
    }

    fn attributes<'a>(
        buf: &mut Vec<u8>,
        field: u32,
        attributes: impl Iterator<Item = &'a KeyValue>,
    ) {
        for attribute in attributes {
            message(buf, field, |buf| {
                key_value(buf, attribute.key.as_str(), &attribute.value);
            });
        }
    }

    fn key_value(buf: &mut Vec<u8>, key: &str, value: &Value) {
        string(buf, 1, key);
        message(buf, 2, |buf| any_value(buf, value));
    }

    /// `AnyValue`: one field of its oneof, written even when it holds the default (0, "", false).
    fn any_value(buf: &mut Vec<u8>, value: &Value) {
        match value {
            Value::String(text) => length_delimited(buf, 1, text.as_str().as_bytes()),
            Value::Bool(flag) => {
                tag(buf, 2, VARINT);
                varint(buf, u64::from(*flag));
            }
            Value::I64(number) => {
                tag(buf, 3, VARINT);
                // Two's complement, as protobuf's int64.
                varint(buf, u64::from_ne_bytes(number.to_ne_bytes()));
            }
            Value::F64(number) => {
                tag(buf, 4, FIXED64);
                buf.put_f64_le(*number);
            }
            Value::Array(array) => message(buf, 5, |buf| match array {
                Array::Bool(values) => values
                    .iter()
                    .for_each(|v| message(buf, 1, |buf| any_value(buf, &Value::Bool(*v)))),
                Array::I64(values) => values
                    .iter()
                    .for_each(|v| message(buf, 1, |buf| any_value(buf, &Value::I64(*v)))),
                Array::F64(values) => values
                    .iter()
                    .for_each(|v| message(buf, 1, |buf| any_value(buf, &Value::F64(*v)))),
                Array::String(values) => values.iter().for_each(|v| {
                    message(buf, 1, |buf| {
                        length_delimited(buf, 1, v.as_str().as_bytes())
                    })
                }),
                // A kind newer than this encoder: sent as an empty array rather than dropped with the span.
                _ => {}
            }),
            // A value kind newer than this encoder: an empty AnyValue (the key still arrives).
            _ => {}
        }
    }

    fn tag(buf: &mut Vec<u8>, field: u32, wire_type: u32) {
        varint(buf, u64::from(field << 3 | wire_type));
    }

    fn varint(buf: &mut Vec<u8>, mut value: u64) {
        while value >= 0x80 {
            buf.push((value as u8) | 0x80);
            value >>= 7;
        }
        buf.push(value as u8);
    }

    fn uint(buf: &mut Vec<u8>, field: u32, value: u64) {
        if value != 0 {
            tag(buf, field, VARINT);
            varint(buf, value);
        }
    }

    fn fixed64(buf: &mut Vec<u8>, field: u32, value: u64) {
        if value != 0 {
            tag(buf, field, FIXED64);
            buf.put_u64_le(value);
        }
    }

    fn fixed32(buf: &mut Vec<u8>, field: u32, value: u32) {
        if value != 0 {
            tag(buf, field, FIXED32);
            buf.put_u32_le(value);
        }
    }

    fn length_delimited(buf: &mut Vec<u8>, field: u32, data: &[u8]) {
        tag(buf, field, LEN);
        varint(buf, data.len() as u64);
        buf.extend_from_slice(data);
    }

    fn string(buf: &mut Vec<u8>, field: u32, text: &str) {
        if !text.is_empty() {
            length_delimited(buf, field, text.as_bytes());
        }
    }

    fn bytes(buf: &mut Vec<u8>, field: u32, data: &[u8]) {
        if !data.is_empty() {
            length_delimited(buf, field, data);
        }
    }

    /// A nested message: written in place, then its length is inserted in front of it (one move of its bytes,
    /// instead of sizing every nested message before writing it as prost does).
    fn message(buf: &mut Vec<u8>, field: u32, write: impl FnOnce(&mut Vec<u8>)) {
        tag(buf, field, LEN);
        let start = buf.len();
        write(buf);
        let mut len = [0u8; 10];
        let mut n = 0;
        let mut value = (buf.len() - start) as u64;
        while value >= 0x80 {
            len[n] = (value as u8) | 0x80;
            value >>= 7;
            n += 1;
        }
        len[n] = value as u8;
        let end = buf.len();
        let width = n + 1;
        buf.resize(end + width, 0);
        buf.copy_within(start..end, start + width);
        buf[start..start + width].copy_from_slice(&len[..width]);
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn varints_are_little_endian_base_128() {
            let mut buf = Vec::new();
            varint(&mut buf, 300);
            assert_eq!(buf, [0xac, 0x02]);
        }

        #[test]
        fn nested_message_lengths_precede_their_bytes() {
            let mut buf = Vec::new();
            message(&mut buf, 1, |buf| {
                string(buf, 1, &"x".repeat(200));
            });
            // tag 1/LEN, length 203 (2-byte varint), then tag 1/LEN, length 200, the text.
            assert_eq!(&buf[..5], &[0x0a, 0xcb, 0x01, 0x0a, 0xc8]);
            assert_eq!(buf.len(), 3 + 3 + 200);
        }

        #[test]
        fn headers_are_split_and_url_decoded() {
            let headers = parse_headers("api-key=a%20b, X-Tenant=acme").expect("valid headers");
            let text = |key: &str| headers.get(key).and_then(|value| value.to_str().ok());
            assert_eq!(text("api-key"), Some("a b"));
            assert_eq!(text("x-tenant"), Some("acme"));
            assert!(parse_headers("no-equals-sign").is_err());
        }
    }
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
