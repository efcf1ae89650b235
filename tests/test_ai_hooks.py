"""Per-call middleware (Go's ``WithUse``): ``wrap_generate`` / ``wrap_model`` / ``wrap_tool`` hooks.

The rules are pinned with small model functions (``tests/ai_models.py``);
the last tests run the hooks around a real local model's tool loop.
"""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest
from ai_models import call, define

from llamanative.ai import (
    Genkit,
    Hooks,
    InvalidArgumentError,
    Message,
    Middleware,
    ModelResponseChunk,
    ToolContext,
    ToolFailed,
    new_tool,
    restart_with,
)


@pytest.fixture
def ai():
    return Genkit(model="test/scripted")


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


class Recorder(Middleware):
    """Records ``<tag>:<hook>>`` on the way in and ``<<tag>:<hook>`` on the way out (thread-safe)."""

    def __init__(self, tag: str, log: list[str]) -> None:
        self.tag, self.log = tag, log
        self.lock = threading.Lock()

    def _note(self, what: str) -> None:
        with self.lock:
            self.log.append(what)

    def wrap_generate(self, params, next):
        self._note(f"{self.tag}:gen{params.iteration}>")
        resp = next(params)
        self._note(f"<{self.tag}:gen{params.iteration}")
        return resp

    def wrap_model(self, params, next):
        self._note(f"{self.tag}:model>")
        resp = next(params)
        self._note(f"<{self.tag}:model")
        return resp

    def wrap_tool(self, params, next):
        self._note(f"{self.tag}:tool:{params.request.name}>")
        out = next(params)
        self._note(f"<{self.tag}:tool:{params.request.name}")
        return out


# -- ordering ------------------------------------------------------------------------------------------
def test_first_listed_is_outermost_for_every_hook(ai):
    log: list[str] = []
    define(ai, [[call("add", {"a": 1, "b": 2})], "3"])
    ai.define_tool("add", add)
    resp = ai.generate(prompt="1+2?", tools=["add"], use=[Recorder("a", log), Recorder("b", log)])
    assert resp.text() == "3"
    assert log == [
        "a:gen0>",
        "b:gen0>",
        "a:model>",
        "b:model>",
        "<b:model",
        "<a:model",
        "a:tool:add>",
        "b:tool:add>",
        "<b:tool:add",
        "<a:tool:add",
        "a:gen1>",
        "b:gen1>",  # the next iteration runs inside the first one's hooks
        "a:model>",
        "b:model>",
        "<b:model",
        "<a:model",
        "<b:gen1",
        "<a:gen1",
        "<b:gen0",
        "<a:gen0",
    ]


def test_legacy_middleware_wraps_outside_the_model_hooks(ai):
    log: list[str] = []

    def legacy(next_fn):
        def run(request, on_chunk):
            log.append("legacy>")
            return next_fn(request, on_chunk)

        return run

    define(ai, ["x"])
    ai.generate(prompt="p", use=[Recorder("a", log)], middleware=[legacy])
    assert log == ["a:gen0>", "legacy>", "a:model>", "<a:model", "<a:gen0"]


def test_plain_model_middleware_in_use_keeps_its_place(ai):
    log: list[str] = []

    def plain(next_fn):
        def run(request, on_chunk):
            log.append("plain>")
            return next_fn(request, on_chunk)

        return run

    define(ai, ["x"])
    ai.generate(prompt="p", use=[Recorder("a", log), plain, Recorder("b", log)])
    assert [e for e in log if "model" in e or "plain" in e] == [
        "a:model>",
        "plain>",
        "b:model>",
        "<b:model",
        "<a:model",
    ]


# -- wrap_generate ---------------------------------------------------------------------------------------
def test_generate_hook_runs_once_per_iteration_and_nests(ai):
    seen = []
    final = {}

    class Gen(Middleware):
        def wrap_generate(self, params, next):
            seen.append((params.iteration, params.message_index, len(params.request.messages)))
            resp = next(params)
            final.setdefault(params.iteration, resp)
            return resp

    define(ai, [[call("add", {"a": 1, "b": 1})], [call("add", {"a": 2, "b": 2})], "done"])
    ai.define_tool("add", add)
    resp = ai.generate(prompt="go", tools=["add"], use=[Gen()])
    # N=2 tool rounds: N+1 iterations; each adds a model and a tool message (stream indexes 0, 2, 4)
    assert seen == [(0, 0, 1), (1, 2, 3), (2, 4, 5)]
    assert final[0] is final[1] is final[2] is resp  # iteration 0's next() returned the final response


def test_generate_hook_can_change_the_request(ai):
    class Inject(Middleware):
        def wrap_generate(self, params, next):
            if params.iteration == 0:
                msgs = [*params.request.messages, Message(role="user", content="be brief")]
                params = replace(params, request=params.request.model_copy(update={"messages": msgs}))
            return next(params)

    m = define(ai, ["ok"])
    ai.generate(prompt="hi", use=[Inject()])
    assert [x.text() for x in m.requests[0].messages] == ["hi", "be brief"]


def test_generate_hook_streams_its_own_message_at_message_index(ai):
    class Notice(Middleware):
        def wrap_generate(self, params, next):
            if params.on_chunk is not None:
                params.on_chunk(
                    ModelResponseChunk(role="user", index=params.message_index, content=[{"text": "(notice)"}])
                )
                params = replace(params, message_index=params.message_index + 1)
            return next(params)

    define(ai, ["hello"])
    chunks = [v.chunk for v in ai.generate_stream(prompt="hi", use=[Notice()]) if not v.done]
    assert (chunks[0].role, chunks[0].index, chunks[0].text()) == ("user", 0, "(notice)")
    assert {(c.role, c.index) for c in chunks[1:]} == {("model", 1)}
    assert "".join(c.text() for c in chunks[1:]) == "hello"


def test_resume_happens_inside_the_first_iteration(ai):
    events = []

    def transfer(ctx: ToolContext, amount: int) -> str:
        """Transfer money."""
        if not ctx.is_resumed():
            ctx.interrupt({"confirm": amount})
        return f"sent {amount}"

    class Gen(Middleware):
        def wrap_generate(self, params, next):
            events.append(("gen", params.iteration))
            return next(params)

        def wrap_tool(self, params, next):
            events.append(("tool", params.request.input, params.context.is_resumed()))
            return next(params)

    define(ai, [[call("transfer", 50)], "done"])
    tool = new_tool("transfer", transfer)
    first = ai.generate(prompt="pay", tools=[tool])
    (intr,) = first.interrupts()
    resp = ai.generate(
        messages=first.history(), tools=[tool], use=[Gen()], tool_restarts=[restart_with(intr, new_input=20)]
    )
    assert resp.text() == "done"
    assert events == [("gen", 0), ("tool", 20, True), ("gen", 1)]  # the restart ran through wrap_tool too


# -- wrap_model ------------------------------------------------------------------------------------------
def test_model_hook_sees_and_can_replace_each_call(ai):
    calls = []

    class Cache(Middleware):
        def wrap_model(self, params, next):
            calls.append([m.role for m in params.request.messages])
            if params.request.messages[-1].text() == "cached?":
                from llamanative.ai import ModelResponse

                return ModelResponse(message=Message(role="model", content="from cache"), finish_reason="stop")
            return next(params)

    m = define(ai, [[call("add", {"a": 1, "b": 2})], "3"])
    ai.define_tool("add", add)
    assert ai.generate(prompt="1+2", tools=["add"], use=[Cache()]).text() == "3"
    assert calls == [["user"], ["user", "model", "tool"]] and m.calls == 2
    assert ai.generate(prompt="cached?", use=[Cache()]).text() == "from cache" and m.calls == 2


# -- wrap_tool -------------------------------------------------------------------------------------------
def test_tool_hook_sees_every_call_of_a_concurrent_round(ai):
    seen, threads = [], set()
    lock = threading.Lock()
    barrier = threading.Barrier(3, timeout=10)

    def slow_add(a: int, b: int) -> int:
        """Add two integers (waits for the two other calls: they must run at the same time)."""
        barrier.wait()
        return a + b

    class Watch(Middleware):
        def wrap_tool(self, params, next):
            with lock:
                seen.append((params.tool.name, params.request.ref, params.request.input["a"]))
                threads.add(threading.get_ident())
            return next(params)

    define(ai, [[call("add", {"a": i, "b": 10}, ref=f"r{i}") for i in range(3)], "done"])
    ai.define_tool("add", slow_add)
    resp = ai.generate(prompt="go", tools=["add"], use=[Watch()])
    assert sorted(seen) == [("add", "r0", 0), ("add", "r1", 1), ("add", "r2", 2)]
    assert len(threads) == 3  # one thread per tool request
    outputs = [p.tool_response.output for p in resp.history()[2].content]
    assert outputs == [10, 11, 12]  # recorded in request order whatever order the hooks ran in


def test_tool_hook_can_change_the_input_and_the_output(ai):
    class Double(Middleware):
        def wrap_tool(self, params, next):
            req = params.request.model_copy(update={"input": {"a": params.request.input["a"] * 2, "b": 0}})
            out = next(replace(params, request=req))
            return out.model_copy(update={"output": out.output + 1000})

    define(ai, [[call("add", {"a": 4, "b": 1})], "ok"])
    ai.define_tool("add", add)
    resp = ai.generate(prompt="go", tools=["add"], use=[Double()])
    assert resp.history()[2].content[0].tool_response.output == 1008


def test_a_failing_tool_hook_is_a_tool_failure_and_may_interrupt(ai):
    class Deny(Middleware):
        def wrap_tool(self, params, next):
            raise PermissionError("not allowed")

    class Ask(Middleware):
        def wrap_tool(self, params, next):
            params.context.interrupt({"approve": params.request.name})

    define(ai, [[call("add", {"a": 1, "b": 2})]], repeat_last=True)
    ai.define_tool("add", add)
    with pytest.raises(ToolFailed, match="tool 'add' failed: not allowed") as info:
        ai.generate(prompt="go", tools=["add"], use=[Deny()])
    assert isinstance(info.value.__cause__, PermissionError)
    resp = ai.generate(prompt="go", tools=["add"], use=[Ask()])
    assert resp.finish_reason == "interrupted"
    assert resp.interrupts()[0].metadata["interrupt"] == {"approve": "add"}


# -- per call: new(), tools ------------------------------------------------------------------------------
def test_new_is_called_once_per_generate_call(ai):
    made = []

    class Counting(Middleware):
        def new(self):
            count = {"models": 0}
            made.append(count)

            def wrap_model(params, next):
                count["models"] += 1
                return next(params)

            return Hooks(wrap_model=wrap_model)

    define(ai, [[call("add", {"a": 1, "b": 2})], "3"] * 2)
    ai.define_tool("add", add)
    mw = Counting()
    ai.generate(prompt="a", tools=["add"], use=[mw])
    ai.generate(prompt="b", tools=["add"], use=[mw])
    assert made == [{"models": 2}, {"models": 2}]


def test_middleware_tools_are_visible_to_that_call_only(ai):
    class WithClock(Middleware):
        tools = [new_tool("clock", lambda: "noon", description="The time.")]

    m = define(ai, [[call("clock")], "it is noon", "x"])
    resp = ai.generate(prompt="time?", use=[WithClock()])
    assert resp.text() == "it is noon" and [t.name for t in m.requests[0].tools] == ["clock"]
    assert resp.history()[2].content[0].tool_response.output == "noon"
    assert ai.lookup_tool("clock") is None
    ai.define_tool("clock", lambda: "late", input_schema={})
    with pytest.raises(InvalidArgumentError, match="contributed by middleware but already declared"):
        ai.generate(prompt="time?", tools=["clock"], use=[WithClock()])


@pytest.mark.parametrize(
    "bad,match",
    [
        (42, "not a middleware"),
        (Recorder, "not the class Recorder"),
        ("retry", "references by name"),
        (None, "nil middleware"),
    ],
)
def test_use_rejects_what_is_not_middleware(ai, bad, match):
    define(ai, ["x"])
    with pytest.raises(InvalidArgumentError, match=match):
        ai.generate(prompt="p", use=[bad])


def test_hooks_apply_to_streams_data_and_prompts(ai):
    log: list[str] = []
    define(ai, ['{"a": 1}'], repeat_last=True)
    list(ai.generate_stream(prompt="p", use=[Recorder("s", log)]))
    out, _ = ai.generate_data({"type": "object"}, prompt="p", use=[Recorder("d", log)])
    p = ai.define_prompt("hooked", prompt="hello {{name}}", use=[Recorder("p", log)])
    p.execute({"name": "x"})
    assert out == {"a": 1}
    assert [e for e in log if e.endswith(":model>")] == ["s:model>", "d:model>", "p:model>"]


# -- a real local model ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def local(client):
    return Genkit(model="llamanative/smol", client=client)


class ToolChoices(Middleware):
    """Sets the tool choice of each model call in turn (so the tiny model calls a tool, then answers)."""

    def __init__(self, *choices: str) -> None:
        self.choices = choices
        self.calls = 0

    def wrap_model(self, params, next):
        self.calls += 1
        choice = self.choices[min(self.calls, len(self.choices)) - 1]
        return next(replace(params, request=params.request.model_copy(update={"tool_choice": choice})))


def test_hooks_around_a_local_tool_loop(local):
    log: list[str] = []
    cities = []

    def get_weather(city: str) -> str:
        """Get the current weather in a city."""
        cities.append(city)
        return f"Sunny in {city}"

    stream = local.generate_stream(
        prompt="What is the weather in Paris?",
        tools=[new_tool("get_weather", get_weather)],
        use=[Recorder("r", log), ToolChoices("required", "none")],
        config={"maxOutputTokens": 48, "temperature": 0},
    )
    values = list(stream)
    resp = values[-1].response
    assert len(cities) == 1 and resp.message.role == "model"
    assert log == [
        "r:gen0>",
        "r:model>",
        "<r:model",
        "r:tool:get_weather>",
        "<r:tool:get_weather",
        "r:gen1>",
        "r:model>",
        "<r:model",
        "<r:gen1",
        "<r:gen0",
    ]
    roles = [(v.chunk.role, v.chunk.index) for v in values if not v.done]
    assert ("tool", 1) in roles and roles[-1] == ("model", 2)
