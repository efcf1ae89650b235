"""Streamed output parsing: what streams is what the final parse says, at a cost bounded per token.

``OutputParser`` (and the generic-tools wrapper around it) parses in full only
where the template's markup may matter; these tests feed long, real-looking
outputs of the test templates (the Qwen3-style one with thinking and tools,
SmolLM2's and Gemma 3's through the generic JSON form and a ``format``) split
at every boundary, inside markers and escapes included, and check that the
streamed pieces joined are the final parse, which is ``common``'s own parse of
the whole output. End to end, a greedy stream and the same request not
streamed give the same message.
"""

from __future__ import annotations

import asyncio
import codecs
import json
import logging
import random

import pytest
from test_tools_thinking import ASK, get_weather

from llamanative import AsyncClient, _core
from llamanative.prompting import OutputParser
from llamanative.prompting.generic_tools import GenericReplyParser, partial_response
from llamanative.types import Message, ThinkValue, tool_from_function

WEATHER = tool_from_function(get_weather)
SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "days": {"type": "array", "items": {"type": "object", "properties": {"sky": {"type": "string"}}}},
    },
    "required": ["city"],
}
WORDS = (
    "rain sun cloud wind Paris Lyon morning evening a < b x<y <b>bold</b> <th <thin </thinking> <tool "
    "<tool_call without its end `code` ``` {brace} [list] \\ back\\slash tab\there é ü 雨 😀"
).split(" ")


def prose(rnd: random.Random, n_words: int) -> str:
    out = []
    for _ in range(n_words):
        out.append(rnd.choice(WORDS))
        if rnd.random() < 0.06:
            out.append(rnd.choice(["\n", "\n\n", "  ", " \n "]))
    return " ".join(out)


def call(city: str, days: int, extra: str = "") -> str:
    args = {"city": city + extra, "days": days, "unit": "celsius"}
    return "<tool_call>\n" + json.dumps({"name": "get_weather", "arguments": args}) + "\n</tool_call>"


def parsers(model: _core.Model, **kw):
    """A maker of the parser that a chat request gets from the prompt pipeline, as the client builds it
    (rendered once: each parser made reads the parameters of that rendering)."""
    from llamanative.prompting import pipeline

    args = {"system": None, "tools": [], "tool_choice": None, "format": None, "think": None, "n_ctx": 4096}
    args.update(kw)
    rendered = []
    render_chat = pipeline.render_chat
    pipeline.render_chat = lambda *a, **k: rendered.append(render_chat(*a, **k)) or rendered[-1]
    try:
        first = pipeline.PromptPipeline(model).chat([Message(**m) for m in ASK], truncate=True, **args).parser
    finally:
        pipeline.render_chat = render_chat
    params = rendered[-1].params
    if isinstance(first, GenericReplyParser):
        return lambda: GenericReplyParser(OutputParser(params))
    assert isinstance(first, OutputParser)
    return lambda: OutputParser(params)


def token_texts(vocab: _core.Vocab, text: str) -> list[str]:
    """``text`` as the engine streams it: one piece per token, a character split over tokens in the last."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    tokens = vocab.tokenize(text, add_special=False, parse_special=True)
    pieces = [decoder.decode(vocab.token_to_piece(int(t), special=True)) for t in tokens]
    assert "".join(pieces) == text
    return pieces


def collect(parser, pieces) -> tuple[str, str, dict]:
    content = thinking = ""
    for p in pieces:
        c, t, _ = parser.feed(p)
        content, thinking = content + c, thinking + t
    c, t, msg = parser.feed("", final=True)
    return content + c, thinking + t, msg


def calls(parser, msg) -> list[tuple[str, dict]]:
    return [(c.function.name, dict(c.function.arguments)) for c in parser.tool_calls(msg)]


def agree(make, text: str, vocab: _core.Vocab) -> tuple[str, str, list]:
    """Feed ``text`` in many ways; every way's streamed pieces join to the final parse. Returns that parse."""
    ref = make()
    content, thinking, msg = collect(ref, [text])  # not streamed: the final parse only
    assert (content, thinking) == ((msg["content"] or ""), (msg["reasoning_content"] or ""))
    want = (content, thinking, calls(ref, msg))
    token_pieces = token_texts(vocab, text)
    rnd = random.Random(len(text))
    chunked = []
    i = 0
    while i < len(text):
        n = rnd.choice([1, 1, 2, 3, 5, 8, 13])
        chunked.append(text[i : i + n])
        i += n
    ways = [token_pieces, list(text), chunked] + [[text[:i], text[i:]] for i in range(len(text) + 1)]
    for pieces in ways:
        p = make()
        c, t, m = collect(p, pieces)
        assert (c, t, calls(p, m)) == want, [len(x) for x in pieces][:8]
    return want


@pytest.fixture(scope="module")
def qwen(qwen3_style_path):
    return _core.Model(str(qwen3_style_path), vocab_only=True)


@pytest.fixture(scope="module")
def smol(smollm2_path):
    return _core.Model(str(smollm2_path), vocab_only=True)


@pytest.fixture(scope="module")
def gemma(gemma3_path):
    return _core.Model(str(gemma3_path), vocab_only=True)


@pytest.fixture(autouse=True)
def no_revision_warnings(caplog):
    yield
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and "revised" in r.getMessage()]


# -- fed directly: the Qwen3-style template (thinking, tools) -------------------------------------------


def test_thinking_content_and_tool_calls_agree_at_every_split(qwen):
    rnd = random.Random(1)
    text = (
        prose(rnd, 120)
        + " \n</think>\n\n"
        + prose(rnd, 120)
        + " \n"
        + call("Paris", 3, " </tool_call> {x}")  # markup inside a JSON string is the string's
        + "\n"
        + call("Lyon", 2)
    )
    content, thinking, tool_calls = agree(parsers(qwen, tools=[WEATHER]), text, qwen.vocab)
    whole = _core.ChatParser(_params(qwen, tools=[WEATHER])).parse(text, partial=False)  # common's own
    assert (content, thinking) == (whole["content"], whole["reasoning_content"])
    assert [name for name, _ in tool_calls] == ["get_weather", "get_weather"]
    assert tool_calls[0][1]["city"] == "Paris </tool_call> {x}" and tool_calls[1][1] == {
        "city": "Lyon",
        "days": 2,
        "unit": "celsius",
    }
    assert "<think>" not in thinking + content and "</think>" not in thinking + content


def _params(model: _core.Model, tools=(), **req) -> dict:
    tools = [t.model_dump(by_alias=True, exclude_none=True) for t in tools]
    return _core.ChatTemplates(model).apply({"messages": ASK, **({"tools": tools} if tools else {}), **req})


@pytest.mark.parametrize(
    "tail",
    [
        "",  # thinking that never ends (num_predict): all of it is thinking
        "\n</think>\n\nThe answer, with a partial end <tool_ca",  # a partial marker at the very end is dropped
        "\n</think>\n\nok " + call("Paris", 3)[:-20],  # cut inside a tool call
    ],
)
def test_an_output_cut_short_agrees(qwen, tail):
    text = prose(random.Random(2), 80) + tail
    content, thinking, tool_calls = agree(parsers(qwen, tools=[WEATHER]), text, qwen.vocab)
    assert tool_calls == []  # a call cut short is not called (it used to raise a ValidationError)
    if not tail:
        assert thinking == text and content == ""


def test_thinking_off_and_structured_output_agree(qwen):
    rnd = random.Random(3)
    text = prose(rnd, 60) + " " + call("Nice", 1)
    content, thinking, tool_calls = agree(parsers(qwen, tools=[WEATHER], think=ThinkValue(False)), text, qwen.vocab)
    assert thinking == "" and content and [n for n, _ in tool_calls] == ["get_weather"]
    answer = {"city": 'Paris {"x": [1, 2]} ``` \\', "days": [{"sky": "clear } ]"}, {"sky": "rain"}]}
    text = prose(rnd, 60) + "\n</think>\n\n```json\n" + json.dumps(answer, indent=2) + "\n```"
    content, thinking, _ = agree(parsers(qwen, format=SCHEMA), text, qwen.vocab)
    assert json.loads(content) == answer and thinking


def test_an_output_that_stops_matching_keeps_every_character(qwen):
    # A revision that used to be dropped: the stream had sent thinking "x" and content "ok ", then the
    # final parse failed and the answer lost them (and the rest of the text) without a trace.
    bad_call = 'x</think>\nok <tool_call>\n{"name": "nope", "arguments": {}}\n</tool_call>'
    content, thinking, tool_calls = agree(parsers(qwen, tools=[WEATHER]), bad_call, qwen.vocab)
    assert (thinking, content, tool_calls) == ("x", bad_call[len("x</think>\n") :], [])
    after_call = "x</think>\nok " + call("Paris", 3) + "\nmore text"
    content, thinking, tool_calls = agree(parsers(qwen, tools=[WEATHER]), after_call, qwen.vocab)
    assert (thinking, content) == ("x", "ok more text") and [n for n, _ in tool_calls] == ["get_weather"]


# -- fed directly: SmolLM2's and Gemma 3's templates (the generic JSON form, a format) ------------------


@pytest.mark.parametrize("which", ["smol", "gemma"])
def test_generic_replies_agree_at_every_split(request, which):
    model = request.getfixturevalue(which)
    rnd = random.Random(4)
    long_text = prose(rnd, 150) + ' "quoted" \\ \u00e9 \U0001f600 \ud7ff \t'
    reply = json.dumps({"response": long_text})
    make = parsers(model, tools=[WEATHER])
    assert isinstance(make(), GenericReplyParser)
    content, thinking, tool_calls = agree(make, reply, model.vocab)
    assert (content, thinking, tool_calls) == (long_text, "", [])
    # json.dumps escapes the non-ASCII: surrogate pairs and \u escapes split at every place
    reply = json.dumps({"response": long_text}, ensure_ascii=True)
    assert agree(make, reply, model.vocab)[0] == long_text
    call_reply = json.dumps({"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris", "days": 3}}]})
    content, _, tool_calls = agree(make, call_reply, model.vocab)
    assert content == "" and tool_calls == [("get_weather", {"city": "Paris", "days": 3})]
    answer = {"city": long_text[:200], "days": [{"sky": "}]"}]}
    content, _, _ = agree(parsers(model, format=SCHEMA), json.dumps(answer), model.vocab)
    assert json.loads(content) == answer
    content, _, _ = agree(parsers(model, format={"type": "string"}), json.dumps(long_text) + "\n", model.vocab)
    assert json.loads(content) == long_text


def test_a_bad_escape_in_a_generic_reply_ends_the_streamed_response(smol):
    reply = '{"response": "abc \\uZZZZ def"}'
    assert partial_response(reply) == "abc "  # it used to raise ValueError (int("ZZZZ", 16))
    content, _, tool_calls = agree(parsers(smol, tools=[WEATHER]), reply, smol.vocab)
    assert (content, tool_calls) == ("abc ", [])


# -- the cost ----------------------------------------------------------------------------------------------


class CountingParser:
    """``_core.ChatParser`` that counts the characters it is asked to read."""

    chars = 0

    def __init__(self, params: dict) -> None:
        self.inner = _core.ChatParser(params)

    def parse(self, text: str, partial: bool = False) -> dict:
        CountingParser.chars += len(text)
        return self.inner.parse(text, partial)

    def matched(self, text: str) -> int:
        CountingParser.chars += len(text)
        return self.inner.matched(text)


@pytest.mark.parametrize("n_words", [800, 3200])
def test_parsing_work_is_bounded_per_token(qwen, monkeypatch, n_words):
    # Parsing the whole output again at every token read about len(output) ** 2 / 10 characters here.
    from llamanative.prompting import parse

    monkeypatch.setattr(parse, "_core", type("core", (), {"ChatParser": CountingParser}))
    monkeypatch.setattr(CountingParser, "chars", 0)
    rnd = random.Random(5)
    text = prose(rnd, n_words) + "\n</think>\n\n" + prose(rnd, n_words) + "\n" + call("Paris", 3)
    pieces = token_texts(qwen.vocab, text)
    parser = OutputParser(_params(qwen, tools=[WEATHER]))
    content, thinking, msg = collect(parser, pieces)
    assert CountingParser.chars <= 64 * len(text)
    assert thinking and content
    assert calls(parser, msg) == [("get_weather", {"city": "Paris", "days": 3, "unit": "celsius"})]


# -- end to end: a greedy stream and the same request not streamed ---------------------------------------


@pytest.fixture(scope="module")
def client(client, qwen3_style_path):
    client.create("qwen-style", from_=str(qwen3_style_path))
    yield client
    client.delete("qwen-style")


GREEDY = {"temperature": 0, "num_predict": 240, "seed": 0}


def stream_and_whole(client, model, **kw):
    # keep_alive=0: each request starts from a freshly loaded model, so that both see the same cache layout
    chunks = list(client.chat(model, ASK, stream=True, options=GREEDY, keep_alive=0, **kw))
    whole = client.chat(model, ASK, options=GREEDY, keep_alive=0, **kw)
    return chunks, whole


def assert_same(chunks, whole):
    content = "".join(c.message.content for c in chunks)
    thinking = "".join(c.message.thinking or "" for c in chunks)
    assert chunks[-1].done and whole.done and chunks[-1].eval_count == whole.eval_count
    assert content == whole.message.content
    assert (thinking or None) == whole.message.thinking
    streamed_calls = [(c.function.name, c.function.arguments) for c in chunks[-1].message.tool_calls or []]
    assert streamed_calls == [(c.function.name, c.function.arguments) for c in whole.message.tool_calls or []]


@pytest.mark.parametrize(
    "model,kw",
    [
        ("qwen-style", {"tools": [get_weather]}),
        ("qwen-style", {"format": SCHEMA}),
        ("smol", {"tools": [get_weather]}),
        ("gemma", {"tools": [get_weather], "tool_choice": "required"}),
    ],
)
def test_a_stream_joins_to_the_answer_not_streamed(client, model, kw):
    chunks, whole = stream_and_whole(client, model, **kw)
    assert_same(chunks, whole)
    if model == "qwen-style" and "tools" in kw:
        assert whole.message.thinking


def test_an_async_stream_joins_to_the_answer_not_streamed(model_store, qwen3_style_path):
    async def main():
        async with AsyncClient(models_dir=model_store) as c:
            await c.create("qwen-style-async", from_=str(qwen3_style_path))
            try:
                kw = {"tools": [get_weather], "options": GREEDY, "keep_alive": 0}
                chunks = [x async for x in await c.chat("qwen-style-async", ASK, stream=True, **kw)]
                whole = await c.chat("qwen-style-async", ASK, **kw)
            finally:
                await c.delete("qwen-style-async")
            return chunks, whole

    assert_same(*asyncio.run(main()))
