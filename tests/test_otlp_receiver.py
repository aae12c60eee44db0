"""The tests' OTLP/HTTP receiver decodes what the SDK's OTLP/HTTP exporter really sends, compressed or not."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.trace import NonRecordingSpan, SpanContext, Status, StatusCode, TraceFlags, TraceState
from opentelemetry.trace import set_span_in_context as in_context

from tests.otlp_receiver import STATUS_ERROR, OtlpReceiver


@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip, Compression.Deflate])
def test_spans_arrive_decoded_from_the_protobuf(compression: Compression) -> None:
    with OtlpReceiver() as receiver:
        exporter = OTLPSpanExporter(endpoint=f"{receiver.endpoint}/v1/traces", compression=compression, timeout=5)
        provider = TracerProvider(resource=Resource.create({"service.name": "svc"}))
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer("test-scope")
        remote = SpanContext(
            trace_id=0x0AF7651916CD43DD8448EB211C80319C,
            span_id=0x00F067AA0BA902B7,
            is_remote=True,
            trace_flags=TraceFlags(TraceFlags.SAMPLED),
            trace_state=TraceState([("ot", "th:c"), ("vendor", "x")]),
        )
        with tracer.start_as_current_span("root", context=in_context(NonRecordingSpan(remote))) as root:
            root.set_attributes({"n": 3, "f": 0.25, "ok": True, "tags": ("a", "b")})
            with tracer.start_as_current_span("child") as child:
                child.set_status(Status(StatusCode.ERROR, "boom"))
        provider.shutdown()
        got = receiver.snapshot()

    assert got.refused == {}
    assert got.requests["/v1/traces"] == 2 and got.items["/v1/traces"] == 2
    expected_encoding = {Compression.NoCompression: "identity", Compression.Gzip: "gzip"}.get(compression, "deflate")
    assert set(got.encodings) == {expected_encoding}
    spans = {s.name: s for s in got.spans}
    r, c = spans["root"], spans["child"]
    assert r.trace_id == c.trace_id == remote.trace_id
    assert r.parent_span_id == remote.span_id and r.parent_is_remote and r.is_local_root
    assert c.parent_span_id == r.span_id and not c.parent_is_remote and not c.is_local_root
    assert r.attributes == {"n": 3, "f": 0.25, "ok": True, "tags": ("a", "b")}
    assert r.tracestate_member("ot") == "th:c" and r.tracestate_member("vendor") == "x"
    assert c.status_code == STATUS_ERROR and c.is_error and not r.is_error
    assert r.resource["service.name"] == "svc" and r.scope == "test-scope"
    assert r.end_ns >= c.end_ns > c.start_ns >= r.start_ns > 0


def test_what_a_collector_refuses_is_refused_and_counted() -> None:
    with OtlpReceiver() as receiver:
        for path, content_type, status in [
            ("/v1/traces", "application/json", 415),
            ("/v1/nothing", "application/x-protobuf", 404),
            ("/v1/traces", "application/x-protobuf", 400),  # not a protobuf message
        ]:
            request = urllib.request.Request(
                receiver.endpoint + path, data=b"\xff\xff\xff", headers={"Content-Type": content_type}
            )
            with pytest.raises(urllib.error.HTTPError) as error:
                urllib.request.urlopen(request, timeout=5)
            assert error.value.code == status
        assert receiver.snapshot().refused == {415: 1, 404: 1, 400: 1}
        # A healthy exporter after refusals: an empty export succeeds.
        assert OTLPSpanExporter(endpoint=f"{receiver.endpoint}/v1/traces").export([]) is SpanExportResult.SUCCESS
