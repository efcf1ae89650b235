"""The generate loop's rules (Go Genkit's ``ai`` package): turns, tool rounds, interrupts, resume.

Each test pins one rule with a small model function defined in the test
(``tests/ai_models.py``): these rules are about the loop, not the model.
"""

from __future__ import annotations

import threading
import time

import pytest
from ai_models import FULL, call, define, text
from pydantic import BaseModel

from llamanative.ai import (
    FailedPreconditionError,
    Genkit,
    InvalidArgumentError,
    InvalidPart,
    MaxTurnsExceeded,
    Message,
    ModelNotFound,
    ToolContext,
    ToolFailed,
    ToolNotFound,
    UnresolvedToolRequest,
    new_tool,
    respond_with,
    restart_with,
)
from llamanative.ai.schema import SchemaValidationError


@pytest.fixture
def ai():
    return Genkit(model="test/scripted")


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


# -- turns ---------------------------------------------------------------------------------------
def test_max_turns_default_is_five_rounds(ai):
    m = define(ai, [[call("add", {"a": 1, "b": 2})]], repeat_last=True)
    ai.define_tool("add", add)
    with pytest.raises(MaxTurnsExceeded, match=r"exceeded maximum tool call iterations \(5\)"):
        ai.generate(prompt="go", tools=["add"])
    assert m.calls == 6  # 5 rounds ran, the 6th call's request failed before its tools


def test_max_turns_counts_rounds_not_calls(ai):
    m = define(ai, [[call("add", {"a": 1, "b": 2})], [call("add", {"a": 3, "b": 4})], "done"])
    ai.define_tool("add", add)
    resp = ai.generate(prompt="go", tools=["add"], max_turns=2)
    assert resp.text() == "done" and m.calls == 3


def test_max_turns_exceeded_before_the_tools_run(ai):
    runs = []
    define(ai, [[call("t", {})]] * 3)
    ai.define_tool("t", lambda _: runs.append(1) or "ok", input_schema={"type": "object"})
    with pytest.raises(MaxTurnsExceeded) as info:
        ai.generate(prompt="go", tools=["t"], max_turns=2)
    assert len(runs) == 2 and info.value.status == "ABORTED"


def test_max_turns_zero_means_default_and_negative_is_an_error(ai):
    m = define(ai, [[call("add", {"a": 1, "b": 1})]] * 5 + ["five"])
    ai.define_tool("add", add)
    assert ai.generate(prompt="go", tools=["add"], max_turns=0).text() == "five" and m.calls == 6
    with pytest.raises(InvalidArgumentError, match="max turns must be greater than 0"):
        ai.generate(prompt="go", max_turns=-1)


def test_model_required_and_unknown_model():
    ai = Genkit()
    with pytest.raises(InvalidArgumentError, match="model is required"):
        ai.generate(prompt="hi")
    with pytest.raises(ModelNotFound):
        ai.generate(model="nowhere/model", prompt="hi")


# -- tool execution --------------------------------------------------------------------------------
def test_tools_of_one_round_run_concurrently_and_respond_in_request_order(ai):
    barrier = threading.Barrier(2, timeout=10)  # deadlocks if the tools ran one after the other
    done_order = []

    def slow(x: int) -> int:
        barrier.wait()
        time.sleep(0.05)
        done_order.append("slow")
        return x

    def fast(x: int) -> int:
        barrier.wait()
        done_order.append("fast")
        return x * 10

    m = define(ai, [[call("slow", 1), call("fast", 2)], "ok"])
    resp = ai.generate(prompt="go", tools=[new_tool("slow", slow), new_tool("fast", fast)])
    assert done_order == ["fast", "slow"]
    tool_msg = m.requests[1].messages[-1]
    assert tool_msg.role == "tool"
    assert [(p.tool_response.name, p.tool_response.output) for p in tool_msg.content] == [("slow", 1), ("fast", 20)]
    assert resp.text() == "ok"


def test_refs_are_filled_and_matched(ai):
    m = define(ai, [[call("add", {"a": 1, "b": 2}), call("add", {"a": 3, "b": 4}, ref="mine")], "ok"])
    ai.define_tool("add", add)
    ai.generate(prompt="go", tools=["add"])
    model_msg, tool_msg = m.requests[1].messages[-2:]
    refs = [p.tool_request.ref for p in model_msg.content]
    assert len(refs[0]) == 36 and refs[1] == "mine"  # a UUID for the request without a ref
    assert [p.tool_response.ref for p in tool_msg.content] == refs


def test_next_request_is_messages_plus_model_and_tool_message(ai):
    m = define(ai, [[call("add", {"a": 2, "b": 3})], "five"])
    ai.define_tool("add", add)
    resp = ai.generate(system="be brief", prompt="2+3?", tools=["add"])
    roles = [msg.role for msg in m.requests[1].messages]
    assert roles == ["system", "user", "model", "tool"]
    assert [msg.role for msg in resp.history()] == ["system", "user", "model", "tool", "model"]
    assert resp.request is m.requests[1] or resp.request.messages == m.requests[1].messages


def test_duplicate_tool_names_are_rejected(ai):
    define(ai, ["x"])
    ai.define_tool("add", add)
    with pytest.raises(InvalidArgumentError, match="duplicate tool"):
        ai.generate(prompt="go", tools=["add", new_tool("add", add)])


def test_unknown_tool_in_request_and_from_model(ai):
    define(ai, [[call("nope", {})]])
    with pytest.raises(ToolNotFound):
        ai.generate(prompt="go", tools=["missing"])
    ai.define_tool("add", add)
    with pytest.raises(ToolNotFound, match="nope"):
        ai.generate(prompt="go", tools=["add"])


def test_tool_failure_names_the_tool(ai):
    define(ai, [[call("boom", {})]])

    def boom(_: dict) -> str:
        raise RuntimeError("kaput")

    with pytest.raises(ToolFailed, match="'boom' failed: kaput") as info:
        ai.generate(prompt="go", tools=[new_tool("boom", boom)])
    assert info.value.tool_name == "boom" and isinstance(info.value.__cause__, RuntimeError)
    assert info.value.status == "INTERNAL"


def test_tool_input_is_validated_against_its_schema(ai):
    ran = []
    define(ai, [[call("add", {"a": "one", "b": 2})]])

    def typed_add(a: int, b: int) -> int:
        ran.append(1)
        return a + b

    ai.define_tool("add", typed_add)
    with pytest.raises(ToolFailed) as info:
        ai.generate(prompt="go", tools=["add"])
    assert not ran and isinstance(info.value.__cause__, SchemaValidationError)


class Point(BaseModel):
    x: int
    y: int


def test_tool_input_types_are_converted():
    seen = []
    ai = Genkit(model="test/scripted")
    define(ai, [[call("norm", {"x": 3, "y": 4})], "5"])

    def norm(p: Point) -> float:
        seen.append(p)
        return (p.x**2 + p.y**2) ** 0.5

    ai.define_tool("norm", norm)
    ai.generate(prompt="go", tools=["norm"])
    assert seen == [Point(x=3, y=4)]
    assert ai.lookup_tool("norm").definition().input_schema["required"] == ["x", "y"]


def test_tools_are_offered_in_declaration_order(ai):
    m = define(ai, ["ok"])
    for n in ("zeta", "alpha", "mid"):
        ai.define_tool(n, add)
    ai.generate(prompt="go", tools=["zeta", "alpha", "mid"])
    assert [t.name for t in m.requests[0].tools] == ["zeta", "alpha", "mid"]


def test_unregistered_tools_are_visible_to_their_call_only(ai):
    define(ai, [[call("temp", {"a": 1, "b": 1})], "ok"])
    ai.generate(prompt="go", tools=[new_tool("temp", add)])
    assert ai.lookup_tool("temp") is None


def test_return_tool_requests(ai):
    ran = []
    m = define(ai, [[text("calling"), call("add", {"a": 1, "b": 2})]], finish_reason="length")
    ai.define_tool("add", lambda a, b: ran.append(1))
    resp = ai.generate(prompt="go", tools=["add"], return_tool_requests=True, max_turns=1)
    assert not ran and m.calls == 1
    assert resp.finish_reason == "length"  # the model's own reason
    assert resp.tool_requests()[0].tool_request.ref  # refs filled in anyway


def test_usage_is_per_model_call(ai):
    def answer(n):
        def f(req):
            return [call("add", {"a": 1, "b": 1})] if n == 0 else "x" * 7

        return f

    define(ai, [answer(0), answer(1)])
    ai.define_tool("add", add)
    resp = ai.generate(prompt="go", tools=["add"])
    assert resp.usage.output_characters == 7  # the last call's, not a sum


# -- interrupts and resume -------------------------------------------------------------------------
def confirm(ctx: ToolContext, amount: int) -> str:
    """Transfer money after confirmation."""
    if not ctx.is_resumed():
        ctx.interrupt({"ask": f"transfer {amount}?"})
    return f"sent {amount} ({ctx.resumed}, original {ctx.original_input})"


def confirm_tool():
    return new_tool("confirm", confirm, input_schema={"type": "integer"})


def test_interrupt_returns_the_revised_model_message(ai):
    m = define(ai, [[call("confirm", 5), call("add", {"a": 1, "b": 2})]])
    ai.define_tool("add", add)
    ai.define_tool("plain", lambda ctx, x: ctx.interrupt(), input_schema={})
    resp = ai.generate(prompt="pay", tools=[confirm_tool(), "add"])
    assert resp.finish_reason == "interrupted"
    assert resp.finish_message == "One or more tool calls resulted in interrupts."
    (intr,) = resp.interrupts()
    assert intr.metadata["interrupt"] == {"ask": "transfer 5?"} and intr.is_interrupt()
    done = [p for p in resp.message.content if not p.is_interrupt()]
    assert done[0].metadata["pendingOutput"] == 3
    assert [x.role for x in resp.history()] == ["user", "model"]  # no tool message
    assert m.calls == 1
    define(ai, [[call("plain", 1)]], name="test/plain")
    resp = ai.generate(model="test/plain", prompt="x", tools=["plain"])
    assert resp.interrupts()[0].metadata["interrupt"] is True


def test_resume_with_a_response(ai):
    m = define(ai, [[call("confirm", 5), call("add", {"a": 1, "b": 2})], "paid"])
    ai.define_tool("add", add)
    tool = confirm_tool()
    resp = ai.generate(prompt="pay", tools=[tool, "add"])
    answer = tool.respond_with(resp.interrupts()[0], "user said yes", {"by": "ui"})
    assert answer.metadata == {"interruptResponse": {"by": "ui"}}
    final = ai.generate(messages=resp.history(), tools=[tool, "add"], tool_responses=[answer])
    assert final.text() == "paid" and m.calls == 2
    model_msg, tool_msg = m.requests[1].messages[-2:]
    assert tool_msg.metadata == {"resumed": True}
    assert [(p.tool_response.name, p.tool_response.output, p.metadata) for p in tool_msg.content] == [
        ("confirm", "user said yes", {"interruptResponse": {"by": "ui"}}),
        ("add", 3, {"source": "pending"}),
    ]
    req_meta = [p.metadata for p in model_msg.content]
    assert req_meta[0] == {"resolvedInterrupt": {"ask": "transfer 5?"}} and req_meta[1] == {}


def test_resume_response_is_validated_against_the_tool_output_schema(ai):
    define(ai, [[call("confirm", 5)], "x"])
    tool = new_tool("confirm", confirm, input_schema={"type": "integer"}, output_schema={"type": "string"})
    resp = ai.generate(prompt="pay", tools=[tool])
    with pytest.raises(InvalidArgumentError, match="output validation failed"):
        ai.generate(messages=resp.history(), tools=[tool], tool_responses=[respond_with(resp.interrupts()[0], 42)])


def test_resume_with_a_restart(ai):
    m = define(ai, [[call("confirm", 5)], "paid"])
    tool = confirm_tool()
    resp = ai.generate(prompt="pay", tools=[tool])
    again = tool.restart_with(resp.interrupts()[0], new_input=7, resumed_metadata={"ok": True})
    assert again.tool_request.input == 7
    assert again.metadata == {"resumed": {"ok": True}, "replacedInput": 5}  # interrupt removed
    chunks = []
    final = ai.generate(
        messages=resp.history(),
        tools=[tool],
        tool_restarts=[again],
        resume_metadata={"why": "ui"},
        on_chunk=chunks.append,
    )
    assert final.text() == "paid"
    tool_msg = m.requests[1].messages[-1]
    assert tool_msg.metadata == {"resumed": {"why": "ui"}}
    assert tool_msg.content[0].tool_response.output == "sent 7 ({'ok': True}, original 5)"
    assert chunks[0].role == "tool" and chunks[0].tool_responses()  # the tool message is streamed first


def test_restart_that_interrupts_again_is_an_error(ai):
    define(ai, [[call("confirm", 5)]])
    tool = new_tool("confirm", lambda ctx, x: ctx.interrupt({"again": True}), input_schema={})
    resp = ai.generate(prompt="pay", tools=[tool])
    with pytest.raises(FailedPreconditionError, match="interrupt during a restarted execution"):
        ai.generate(messages=resp.history(), tools=[tool], tool_restarts=[restart_with(resp.interrupts()[0])])


def test_resume_rules(ai):
    define(ai, [[call("confirm", 5), call("confirm", 6)]])
    tool = confirm_tool()
    resp = ai.generate(prompt="pay", tools=[tool])
    first, second = resp.interrupts()
    with pytest.raises(UnresolvedToolRequest, match=f"#{second.tool_request.ref}"):
        ai.generate(messages=resp.history(), tools=[tool], tool_responses=[respond_with(first, "yes")])
    with pytest.raises(FailedPreconditionError, match="last message is by a model"):
        ai.generate(messages=resp.history(), prompt="and?", tools=[tool], tool_responses=[respond_with(first, "y")])
    with pytest.raises(InvalidPart):
        respond_with(Message(role="user", content="x").content[0], 1)
    with pytest.raises(InvalidArgumentError, match="is for 'confirm', not 'other'"):
        new_tool("other", add).respond_with(first, 1)
    with pytest.raises(InvalidPart):
        ai.generate(messages=resp.history(), tools=[tool], tool_restarts=[respond_with(first, "x")])


def test_resume_consumes_a_turn(ai):
    define(ai, [[call("confirm", 5)], [call("confirm", 6)]])
    tool = confirm_tool()
    resp = ai.generate(prompt="pay", tools=[tool])
    with pytest.raises(MaxTurnsExceeded):
        ai.generate(
            messages=resp.history(),
            tools=[tool],
            max_turns=1,
            tool_responses=[respond_with(resp.interrupts()[0], "ok")],
        )


def test_generate_data_gives_none_without_text(ai):
    define(ai, [[call("add", {"a": 1, "b": 2})]])
    ai.define_tool("add", add)
    out, resp = ai.generate_data(Point, prompt="go", tools=["add"], return_tool_requests=True)
    assert out is None and resp.tool_requests()
    assert FULL.supports.tools


def test_partial_tool_responses_are_streamed_not_recorded(ai):
    def slow_job(ctx: ToolContext, steps: int) -> str:
        for i in range(steps):
            ctx.send_partial({"progress": i + 1})
        return "finished"

    m = define(ai, [[call("job", 2)], "ok"])
    chunks = []
    ai.generate(prompt="go", tools=[new_tool("job", slow_job)], on_chunk=chunks.append)
    partial = [p for c in chunks for p in c.tool_responses() if p.is_partial()]
    assert [p.tool_response.output for p in partial] == [{"progress": 1}, {"progress": 2}]
    recorded = m.requests[1].messages[-1].content
    assert [p.tool_response.output for p in recorded] == ["finished"] and not recorded[0].is_partial()


def test_multipart_tools_return_content(ai):
    from llamanative.ai import MultipartToolResponse, Part

    m = define(ai, [[call("pic", {})], "ok"])
    ai.define_multipart_tool(
        "pic",
        lambda _: MultipartToolResponse(
            output={"w": 2}, content=[Part(media={"url": "data:image/png;base64,AA", "contentType": "image/png"})]
        ),
        input_schema={},
    )
    ai.generate(prompt="go", tools=["pic"])
    resp = m.requests[1].messages[-1].content[0].tool_response
    assert resp.output == {"w": 2} and resp.content[0].is_image()
    assert ai.lookup_tool("pic").definition().metadata == {"multipart": True}


class Ask(BaseModel):
    question: str


def test_interrupt_with_typed_metadata(ai):
    from llamanative.ai import interrupt_as

    define(ai, [[call("ask", {})]])
    ai.define_tool("ask", lambda ctx, x: ctx.interrupt_with(Ask(question="sure?")), input_schema={})
    resp = ai.generate(prompt="go", tools=["ask"])
    assert interrupt_as(resp.interrupts()[0], Ask) == Ask(question="sure?")
