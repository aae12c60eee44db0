from __future__ import annotations

import pytest

from pipeline.demo.client import DemoClient
from tests.demo.conftest import Running

pytestmark = pytest.mark.postgres


async def test_a_turn_streams_and_answers(demo: Running) -> None:
    client = await DemoClient.connect(demo.url)
    ack = await client.hello(demo.settings.service.token)
    assert ack["ok"] is True and ack["session_id"]
    result = await client.call_tool("chat", {"prompt": "hi there", "continuation_id": "c-1"})
    ops = [f["op"] for f in result.frames]
    assert result.ok, result.frames
    assert ops[-2:] == ["stream_complete", "call_tool_res"]
    assert result.chunks == 3
    await client.close()
    spans = demo.finished_spans()
    print(sorted((s.name, s.parent.span_id if s.parent else None) for s in spans))
