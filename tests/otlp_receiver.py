"""A small real OTLP receiver for tests: OTLP/HTTP (http.server) and OTLP/gRPC, decoding with opentelemetry-proto.

Spans are flattened to `ReceivedSpan` values so tests assert on names, parent/child links, attributes and events.
"""

from __future__ import annotations

import gzip
import threading
import zlib
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

AttrValue = str | bool | int | float


@dataclass(frozen=True)
class ReceivedSpan:
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, AttrValue]
    events: tuple[tuple[str, dict[str, AttrValue]], ...]
    status_code: int  # 0 unset, 1 ok, 2 error
    resource: dict[str, AttrValue]
    kind: int = 0  # SpanKind: 1 internal, 2 server, 3 client


@dataclass(frozen=True)
class ReceivedPoint:
    metric: str
    kind: str  # sum | histogram
    attributes: dict[str, AttrValue]
    value: float  # sum value, or histogram count
    temporality: int  # 1 delta, 2 cumulative


def _value(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


def _attrs(kvs: Any) -> dict[str, AttrValue]:
    out: dict[str, AttrValue] = {}
    for kv in kvs:
        assert isinstance(kv, KeyValue)
        out[kv.key] = _value(kv.value)
    return out


class Store:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.spans: list[ReceivedSpan] = []
        self.points: list[ReceivedPoint] = []
        self.headers: list[dict[str, str]] = []
        self.paths: list[str] = []

    def add_traces(self, request: trace_service_pb2.ExportTraceServiceRequest) -> None:
        spans = [
            ReceivedSpan(
                name=span.name,
                trace_id=span.trace_id.hex(),
                span_id=span.span_id.hex(),
                parent_span_id=span.parent_span_id.hex(),
                attributes=_attrs(span.attributes),
                events=tuple((e.name, _attrs(e.attributes)) for e in span.events),
                status_code=span.status.code,
                resource=_attrs(rs.resource.attributes),
                kind=span.kind,
            )
            for rs in request.resource_spans
            for ss in rs.scope_spans
            for span in ss.spans
        ]
        with self.lock:
            self.spans.extend(spans)

    def add_metrics(self, request: metrics_service_pb2.ExportMetricsServiceRequest) -> None:
        points: list[ReceivedPoint] = []
        for rm in request.resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    if m.HasField("sum"):
                        points += [ReceivedPoint(m.name, "sum", _attrs(p.attributes), p.as_int or p.as_double,
                                                m.sum.aggregation_temporality) for p in m.sum.data_points]
                    elif m.HasField("histogram"):
                        points += [ReceivedPoint(m.name, "histogram", _attrs(p.attributes), p.count,
                                                m.histogram.aggregation_temporality)
                                   for p in m.histogram.data_points]
        with self.lock:
            self.points.extend(points)

    def clear(self) -> None:
        with self.lock:
            self.spans.clear()
            self.points.clear()
            self.headers.clear()
            self.paths.clear()


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        encoding = self.headers.get("Content-Encoding", "")
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "deflate":
            body = zlib.decompress(body)
        store = self.server.store
        with store.lock:
            store.headers.append({k.lower(): v for k, v in self.headers.items()})
            store.paths.append(self.path)
        if self.server.fail_status:
            self._reply(self.server.fail_status, b"")
            return
        if self.path == "/v1/traces":
            req = trace_service_pb2.ExportTraceServiceRequest()
            req.ParseFromString(body)
            store.add_traces(req)
            self._reply(200, trace_service_pb2.ExportTraceServiceResponse().SerializeToString())
        elif self.path == "/v1/metrics":
            mreq = metrics_service_pb2.ExportMetricsServiceRequest()
            mreq.ParseFromString(body)
            store.add_metrics(mreq)
            self._reply(200, metrics_service_pb2.ExportMetricsServiceResponse().SerializeToString())
        else:
            self._reply(404, b"")

    def _reply(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        return None  # keep test output clean


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, store: Store) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.store = store
        self.fail_status = 0


@dataclass
class HttpReceiver:
    url: str
    store: Store
    server: _Server

    def fail_with(self, status: int) -> None:
        """Answer every request with this HTTP status (0: accept again)."""
        self.server.fail_status = status


@contextmanager
def http_receiver() -> Iterator[HttpReceiver]:
    store = Store()
    server = _Server(store)
    thread = threading.Thread(target=server.serve_forever, name="otlp-http-receiver", daemon=True)
    thread.start()
    try:
        yield HttpReceiver(f"http://127.0.0.1:{server.server_address[1]}", store, server)
    finally:
        server.shutdown()
        server.server_close()


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, store: Store) -> None:
        self.store = store

    def Export(self, request: Any, context: Any) -> Any:
        self.store.add_traces(request)
        with self.store.lock:
            self.store.headers.append({k: v for k, v in context.invocation_metadata()})
        return trace_service_pb2.ExportTraceServiceResponse()


class _MetricsService(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, store: Store) -> None:
        self.store = store

    def Export(self, request: Any, context: Any) -> Any:  # noqa: ARG002 (gRPC API)
        self.store.add_metrics(request)
        return metrics_service_pb2.ExportMetricsServiceResponse()


@dataclass
class GrpcReceiver:
    url: str
    store: Store


@contextmanager
def grpc_receiver() -> Iterator[GrpcReceiver]:
    import grpc

    store = Store()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_TraceService(store), server)
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(_MetricsService(store), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield GrpcReceiver(f"http://127.0.0.1:{port}", store)
    finally:
        server.stop(grace=None)


def free_port() -> int:
    """A loopback port nobody listens on (bound then released)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
