"""The loguru bridge end to end: real TracerProvider for trace context, in-memory OTel log exporter, a console
sink, fake tail-sampler decisions. Every test uninstalls what it installed (fixtures in conftest)."""

from __future__ import annotations

import inspect
import logging
import math
import threading
from collections.abc import Callable
from typing import Any

import pytest
from loguru import logger
from opentelemetry._logs import SeverityNumber
from opentelemetry.trace import Tracer

from collectors.logs import LogBridge, disabled_category, severity
from pipeline.names import logs as n
from pipeline.sampling.logs import LogSampler
from pipeline.sampling.logs.testing import FakeDecisionSource
from tests.logs.conftest import OtelLogs

MakeSampler = Callable[..., LogSampler]
MakeBridge = Callable[..., LogBridge]


def _attrs(record: Any) -> dict[str, Any]:
    return dict(record.log_record.attributes or {})


def test_kept_trace_exports_all_its_logs_correlated(
    make_sampler: MakeSampler,
    make_bridge: MakeBridge,
    otel: OtelLogs,
    tracer: Tracer,
    decisions: FakeDecisionSource,
    console: list[Any],
) -> None:
    bridge = make_bridge(make_sampler())
    hot = bridge.category("HOT")  # rate 0: only the trace can keep these
    with tracer.start_as_current_span("turn") as span:
        for i in range(20):
            hot.debug("chunk {} sent", i)
        with tracer.start_as_current_span("child") as child:
            hot.info("in the child span")
    trace_id = span.get_span_context().trace_id
    assert otel.records == []  # waiting for the decision
    decisions.decide(trace_id, True, 0.5, "error")
    records = otel.records
    assert [r.log_record.body for r in records] == [f"chunk {i} sent" for i in range(20)] + ["in the child span"]
    assert {r.log_record.trace_id for r in records} == {trace_id}
    assert records[-1].log_record.span_id == child.get_span_context().span_id
    assert records[0].log_record.span_id == span.get_span_context().span_id
    assert {_attrs(r)[n.REASON] for r in records} == {n.REASON_TRACE}
    assert {_attrs(r)[n.PROBABILITY] for r in records} == {0.5}
    assert {_attrs(r)[n.CATEGORY] for r in records} == {"HOT"}
    # The console sink saw the same records, with the trace id usable in a format string.
    assert [r["extra"]["trace_id"] for r in console] == [f"{trace_id:032x}"] * 21
    # Original time order and call site survive the replay.
    assert [r["time"] for r in console] == sorted(r["time"] for r in console)
    assert {r["function"] for r in console} == {"test_kept_trace_exports_all_its_logs_correlated"}
    assert _attrs(records[0])["code.function.name"] == "test_kept_trace_exports_all_its_logs_correlated"
    assert _attrs(records[0])["code.file.path"] == __file__


def test_dropped_traces_keep_logs_at_the_category_rate(
    make_sampler: MakeSampler, make_bridge: MakeBridge, otel: OtelLogs, tracer: Tracer, decisions: FakeDecisionSource
) -> None:
    rate, traces, per_trace = 0.1, 200, 20
    sampler = make_sampler(categories={"MSG_LOOP": rate}, seed=99)
    loop = make_bridge(sampler).category("MSG_LOOP")
    for _ in range(traces):
        with tracer.start_as_current_span("turn") as span:
            for i in range(per_trace):
                loop.debug("message {}", i)
        decisions.decide(span.get_span_context().trace_id, False, 0.01)
    total = traces * per_trace
    kept = len(otel.records)
    assert abs(kept - total * rate) <= 5 * math.sqrt(total * rate * (1 - rate))
    assert {_attrs(r)[n.REASON] for r in otel.records} == {n.REASON_CATEGORY}
    assert all(r.log_record.trace_id for r in otel.records)  # still correlated with their (dropped) trace
    stats = bridge_stats = make_sampler
    del stats, bridge_stats


def test_warning_and_above_are_always_kept_and_stamped(
    make_sampler: MakeSampler, make_bridge: MakeBridge, otel: OtelLogs, tracer: Tracer
) -> None:
    sampler = make_sampler()
    hot = make_bridge(sampler).category("HOT")
    with tracer.start_as_current_span("turn"):
        hot.warning("slow send")
        hot.error("send failed")
        try:
            raise ValueError("token=abc123 refused")
        except ValueError:
            hot.exception("send raised")
        hot.critical("giving up")
    assert otel.bodies() == ["slow send", "send failed", "send raised", "giving up"]
    assert {_attrs(r)[n.REASON] for r in otel.records} == {n.REASON_SEVERITY}
    assert [r.log_record.severity_number for r in otel.records] == [
        SeverityNumber.WARN, SeverityNumber.ERROR, SeverityNumber.ERROR, SeverityNumber.FATAL,
    ]  # fmt: skip
    raised = _attrs(otel.records[2])
    assert raised["exception.type"] == "ValueError"
    assert raised["exception.message"] == "token=[REDACTED] refused"
    assert "abc123" not in raised["exception.stacktrace"]
    stats = sampler.stats()
    assert stats["all_errors_kept"] and stats["errors_seen"] == 3


def test_records_outside_a_trace_are_decided_at_once(
    make_sampler: MakeSampler, make_bridge: MakeBridge, otel: OtelLogs
) -> None:
    sampler = make_sampler()
    bridge = make_bridge(sampler)
    bridge.category("HOT").debug("dropped")
    bridge.category("ALL").debug("kept {}", "now")
    assert otel.bodies() == ["kept now"]
    record = otel.records[0]
    assert record.log_record.trace_id in (0, None)
    assert _attrs(record)[n.PROBABILITY] == 1.0 and _attrs(record)[n.REASON] == n.REASON_CATEGORY
    assert sampler.pending == 0


def test_caller_location_is_the_application_s(
    make_sampler: MakeSampler, make_bridge: MakeBridge, console: list[Any]
) -> None:
    everything = make_bridge(make_sampler(), with_otel=False).category("ALL")
    line = inspect.currentframe().f_lineno + 1  # type: ignore[union-attr]
    everything.info("here")
    everything.log("INFO", "and here")
    assert [(r["function"], r["line"], r["name"]) for r in console] == [
        ("test_caller_location_is_the_application_s", line, __name__),
        ("test_caller_location_is_the_application_s", line + 1, __name__),
    ]


def test_the_level_check_comes_first(make_sampler: MakeSampler, make_bridge: MakeBridge) -> None:
    sampler = make_sampler()
    all_ = make_bridge(sampler, level="INFO").category("ALL")
    all_.debug("below the level")
    all_.trace("below the level")
    assert sampler.stats()["seen"] == 0
    assert not all_.enabled(10) and all_.enabled(20)


def test_plain_loguru_calls_are_correlated_and_stamped(
    make_bridge: MakeBridge, otel: OtelLogs, tracer: Tracer, console: list[Any]
) -> None:
    make_bridge(None)  # no sampler: everything kept
    with tracer.start_as_current_span("turn") as span:
        logger.bind(user="u1").info("plain {}", "call")
    (record,) = otel.records
    assert record.log_record.trace_id == span.get_span_context().trace_id
    attrs = _attrs(record)
    assert (attrs[n.CATEGORY], attrs[n.REASON], attrs["user"]) == (n.NO_CATEGORY, n.REASON_UNSAMPLED, "u1")
    assert console[0]["extra"]["span_id"] == f"{span.get_span_context().span_id:016x}"


def test_redaction_applies_to_console_and_otel(make_bridge: MakeBridge, otel: OtelLogs, console: list[Any]) -> None:
    make_bridge(None)
    logger.bind(authorization="Bearer s3cr3t", meta={"jwt": "x", "ok": 1}).info(
        'hello token={} raw={{"prompt": "my secret question"}} auth: Bearer abc.def', "tok-123"
    )
    message = console[0]["message"]
    assert "tok-123" not in message and "my secret question" not in message and "abc.def" not in message
    assert message == 'hello token=[REDACTED] raw={"prompt": "[REDACTED]"} auth: [REDACTED]'
    assert console[0]["extra"]["authorization"] == "[REDACTED]"
    assert console[0]["extra"]["meta"] == {"jwt": "[REDACTED]", "ok": 1}
    attrs = _attrs(otel.records[0])
    assert otel.bodies() == [message] and attrs["authorization"] == "[REDACTED]"


def test_redaction_is_configurable(make_bridge: MakeBridge, console: list[Any]) -> None:
    make_bridge(None, with_otel=False, redact_fields=("ssn",), redact_patterns=(r"\b\d{4}-\d{4}\b",), redact_mask="***")
    logger.info("ssn=123 card 1234-5678 token=kept")
    assert console[0]["message"] == "ssn=*** card *** token=kept"


def test_stdlib_records_take_the_same_path(
    make_sampler: MakeSampler, make_bridge: MakeBridge, otel: OtelLogs, tracer: Tracer, console: list[Any]
) -> None:
    make_bridge(make_sampler())
    lib = logging.getLogger("some.library")
    with tracer.start_as_current_span("turn") as span:
        line = inspect.currentframe().f_lineno + 1  # type: ignore[union-attr]
        lib.info("request with password=%s done", "hunter2")
        lib.debug("below the stdlib level (INFO)")
    (record,) = otel.records
    assert record.log_record.body == "request with password=[REDACTED] done"
    assert record.log_record.trace_id == span.get_span_context().trace_id
    attrs = _attrs(record)
    assert (attrs[n.LOGGER_NAME], attrs["code.line.number"], attrs[n.REASON]) == ("some.library", line, "unsampled")
    assert console[0]["name"] == "some.library" and console[0]["function"] == "test_stdlib_records_take_the_same_path"


def test_stdlib_loggers_can_be_given_a_category(
    make_sampler: MakeSampler, make_bridge: MakeBridge, otel: OtelLogs, tracer: Tracer, decisions: FakeDecisionSource
) -> None:
    sampler = make_sampler(categories={"HTTP": 0.0})
    make_bridge(sampler, stdlib_categories={"httpx": "HTTP"})
    httpx_log = logging.getLogger("httpx._client")
    httpx_log.info("HTTP Request: GET /rest/v1/messages 200")  # outside a trace: dropped at rate 0
    with tracer.start_as_current_span("turn") as span:
        httpx_log.info("HTTP Request: POST /rest/v1/messages %d", 201)
        httpx_log.warning("HTTP Request: retrying")
    assert otel.bodies() == ["HTTP Request: retrying"]
    decisions.decide(span.get_span_context().trace_id, True, 1.0)
    assert otel.bodies() == ["HTTP Request: retrying", "HTTP Request: POST /rest/v1/messages 201"]
    assert sampler.stats()["seen_by_category"]["HTTP"] == {"INFO": 2, "WARNING": 1}


def test_stdlib_exceptions_are_carried(make_bridge: MakeBridge, otel: OtelLogs) -> None:
    make_bridge(None)
    table: dict[str, int] = {}
    try:
        table["missing"]
    except KeyError:
        logging.getLogger("lib").exception("lookup failed")
    attrs = _attrs(otel.records[0])
    assert attrs["exception.type"] == "KeyError" and otel.bodies()[0] == "lookup failed"


def test_messages_with_braces_and_no_args_are_not_formatted(make_bridge: MakeBridge, otel: OtelLogs) -> None:
    bridge = make_bridge(None)
    bridge.category("X").info("json {not: a field}")
    logging.getLogger("lib").warning("dict {} and %s")
    assert otel.bodies() == ["json {not: a field}", "dict {} and %s"]


def test_uninstall_restores_process_wide_state(make_bridge: MakeBridge, otel: OtelLogs, tracer: Tracer) -> None:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    bridge = make_bridge(None)
    assert len(root.handlers) == len(handlers) + 1
    bridge.uninstall()
    assert root.handlers == handlers and root.level == level
    records: list[Any] = []
    sink = logger.add(lambda m: records.append(m.record), format="{message}")
    try:
        with tracer.start_as_current_span("turn"):
            logger.info("token=visible")
    finally:
        logger.remove(sink)
    assert otel.records == [] and "trace_id" not in records[0]["extra"]
    assert records[0]["message"] == "token=visible"


def test_without_global_patcher_only_the_bridge_logger_is_patched(make_bridge: MakeBridge, console: list[Any]) -> None:
    bridge = make_bridge(None, with_otel=False, global_patcher=False)
    logger.info("token=raw")
    bridge.logger.info("token=raw")
    assert [r["message"] for r in console] == ["token=raw", "token=[REDACTED]"]


def test_held_records_after_uninstall_are_not_emitted(
    make_sampler: MakeSampler, make_bridge: MakeBridge, otel: OtelLogs, tracer: Tracer, decisions: FakeDecisionSource
) -> None:
    bridge = make_bridge(make_sampler())
    with tracer.start_as_current_span("turn") as span:
        bridge.category("HOT").debug("held")
    bridge.uninstall()
    decisions.decide(span.get_span_context().trace_id, True, 1.0)
    assert otel.records == []


def test_severity_mapping() -> None:
    assert [severity(x) for x in (5, 10, 20, 25, 30, 40, 50)] == [
        SeverityNumber.TRACE, SeverityNumber.DEBUG, SeverityNumber.INFO, SeverityNumber.INFO2,
        SeverityNumber.WARN, SeverityNumber.ERROR, SeverityNumber.FATAL,
    ]  # fmt: skip


def test_bad_bridge_level_names_the_setting() -> None:
    from collectors.logs import LogBridgeSettings

    with pytest.raises(ValueError, match=r"logs\.bridge\.otel_level: 'LOUD'"):
        LogBridgeSettings(otel_level="LOUD")


def test_decisions_on_the_tail_sampler_thread_replay_correctly(
    make_sampler: MakeSampler, make_bridge: MakeBridge, otel: OtelLogs, tracer: Tracer, decisions: FakeDecisionSource
) -> None:
    hot = make_bridge(make_sampler()).category("HOT")
    with tracer.start_as_current_span("turn") as span:
        hot.debug("from the event loop {}", 1)
    trace_id = span.get_span_context().trace_id
    worker = threading.Thread(target=decisions.decide, args=(trace_id, True, 1.0), name="sieve-tail-sampler")
    worker.start()
    worker.join()
    (record,) = otel.records
    assert record.log_record.body == "from the event loop 1"
    assert record.log_record.trace_id == trace_id  # not the worker thread's (empty) context
    assert _attrs(record)["code.function.name"] == "test_decisions_on_the_tail_sampler_thread_replay_correctly"


def test_a_disabled_category_logs_nothing(make_bridge: MakeBridge, otel: OtelLogs) -> None:
    make_bridge(None)
    quiet = disabled_category("SAFE_SEND")
    quiet.critical("never")
    quiet.log("ERROR", "never")
    assert otel.records == []


def test_held_records_are_replayed_only_while_something_receives_them(
    make_sampler: MakeSampler, make_bridge: MakeBridge, tracer: Tracer, decisions: FakeDecisionSource
) -> None:
    """No OpenTelemetry sink and no loguru sink: a kept trace's records are counted, not rebuilt for nobody."""
    from loguru import logger as loguru_logger

    sampler = make_sampler()
    bridge = make_bridge(sampler, with_otel=False)
    sampler.replay_kept = bridge.has_receivers
    saved = dict(loguru_logger._core.handlers)  # type: ignore[attr-defined]
    loguru_logger.remove()
    try:
        assert not bridge.has_receivers()
        replayed: list[Any] = []
        with tracer.start_as_current_span("turn") as span:
            bridge.category("HOT").info("nobody listens")  # rate 0: kept only with its trace, so held
        trace_id = span.get_span_context().trace_id
        sink_id = loguru_logger.add(lambda m: replayed.append(m.record["message"]), format="{message}")
        assert bridge.has_receivers()
        with tracer.start_as_current_span("turn") as span2:
            bridge.category("HOT").info("someone listens")
        loguru_logger.remove(sink_id)
        # Decide the first trace while nobody listens, the second while a sink is back.
        decisions.decide(trace_id, True)
        assert replayed == []
        sink_id = loguru_logger.add(lambda m: replayed.append(m.record["message"]), format="{message}")
        decisions.decide(span2.get_span_context().trace_id, True)
        loguru_logger.remove(sink_id)
        assert replayed == ["someone listens"]
    finally:
        loguru_logger._core.handlers.update(saved)  # type: ignore[attr-defined]
