"""The registry (define / new / lookup), middleware, resources, embedders, retrievers, evaluators,
prompts and background models, with small functions defined in the tests."""

from __future__ import annotations

import asyncio
import base64
import http.server
import threading

import numpy as np
import pytest
from ai_models import define

from llamanative.ai import (
    AlreadyExistsError,
    Document,
    Genkit,
    InputTypeMismatch,
    InvalidArgumentError,
    Media,
    MediaTooLarge,
    Message,
    ModelInfo,
    ModelSupports,
    NotFoundError,
    Operation,
    Score,
    UnsupportedByModel,
    augment_with_context,
    download_request_media,
    new_media_part,
    new_model,
    new_resource,
    new_resource_part,
    new_tool,
    simulate_system_prompt,
)


@pytest.fixture
def ai():
    return Genkit(model="test/scripted")


def test_duplicate_names_are_errors_per_kind(ai):
    ai.define_tool("x", lambda v: v, input_schema={})
    with pytest.raises(AlreadyExistsError):
        ai.define_tool("x", lambda v: v, input_schema={})
    ai.define_embedder("x", lambda docs: [[0.0]] * len(docs))  # another kind: fine
    with pytest.raises(AlreadyExistsError):
        ai.define_format(type("F", (), {"name": "json", "handler": lambda self, s: None})())


def test_child_registries_see_the_parent(ai):
    ai.define_tool("t", lambda v: v, input_schema={})
    child = ai.new_child()
    child.define_tool("u", lambda v: v, input_schema={})
    assert child.lookup_tool("t") is ai.lookup_tool("t") and ai.lookup_tool("u") is None
    assert {t.name for t in child.list_actions("tool")} == {"t", "u"}


def test_new_model_is_visible_to_its_call_only(ai):
    m = new_model(
        "adhoc/m",
        lambda req: __import__("llamanative.ai").ai.ModelResponse(message=Message(role="model", content="hey")),
    )
    assert ai.generate(model=m, prompt="x").text() == "hey"
    assert ai.lookup_model("adhoc/m") is None


def test_the_tool_decorator(ai):
    @ai.tool()
    def shout(text: str) -> str:
        """Upper-case a text."""
        return text.upper()

    assert shout.description == "Upper-case a text." and ai.lookup_tool("shout")("hi") == "HI"
    assert shout.definition().input_schema == {"type": "string"}


# -- middleware --------------------------------------------------------------------------------------
def test_middleware_first_listed_is_outermost(ai):
    order = []

    def mw(tag):
        def wrap(next_fn):
            def run(req, cb):
                order.append(f"{tag}>")
                resp = next_fn(req, cb)
                order.append(f"<{tag}")
                return resp

            return run

        return wrap

    define(ai, ["x"])
    ai.generate(prompt="p", use=[mw("a"), mw("b")])
    assert order == ["a>", "b>", "<b", "<a"]


def test_simulated_system_prompt_when_the_model_has_no_system_role(ai):
    m = define(ai, ["x"], info=ModelInfo(supports=ModelSupports(multiturn=True)))
    resp = ai.generate(system="be nice", prompt="hi")
    sent = m.requests[0].messages
    assert [x.role for x in sent] == ["user", "model", "user"]
    assert sent[0].content[0].text == "SYSTEM INSTRUCTIONS:\n" and sent[0].content[1].text == "be nice"
    assert sent[1].text() == "Understood."
    assert [x.role for x in resp.history()] == ["system", "user", "model"]  # the caller's messages are kept
    assert simulate_system_prompt("P:", "OK")(lambda r, c: r)(m.requests[0], None) is m.requests[0]


def test_docs_are_added_as_context(ai):
    m = define(ai, ["x", "y"])
    docs = [Document.from_text("Paris is in France", {"ref": "geo"}), "Water is wet"]
    ai.generate(prompt="q", docs=docs)
    part = m.requests[0].messages[-1].content[-1]
    assert part.metadata == {"purpose": "context"}
    assert part.text == (
        "\n\nUse the following information to complete your task:\n\n"
        "- [geo]: Paris is in France\n- [1]: Water is wet\n\n"
    )
    wrapped = augment_with_context(citation_key="ref")(lambda r, c: r)
    out = wrapped(m.requests[0].model_copy(update={"messages": [Message(role="user", content="q")]}), None)
    context = out.messages[0].content[-1].text
    assert "- [geo]: Paris" in context and "- [None]: Water" in context


@pytest.mark.parametrize(
    "supports,kw,match",
    [
        (
            {"multiturn": True, "tools": True},
            {"prompt": [new_media_part("image/png", "data:image/png;base64,AA")]},
            "media",
        ),
        ({"multiturn": True}, {"tools": [new_tool("t", lambda v: v, input_schema={})]}, "tool use"),
        ({"tools": True}, {"messages": [Message(role="user", content="a")] * 2}, "multiple messages"),
        (
            {"multiturn": True, "tools": True},
            {"tools": [new_tool("t", lambda v: v, input_schema={})], "tool_choice": "required"},
            "tool choice",
        ),
        ({"multiturn": True}, {"output_schema": {"type": "object"}, "output_instructions": None}, None),
    ],
)
def test_validate_support(ai, supports, kw, match):
    define(ai, ['{"a": 1}'], info=ModelInfo(supports=ModelSupports(system_role=True, **supports)))
    if match is None:  # not constrained: instructions instead, no error
        ai.generate(prompt="p", **{k: v for k, v in kw.items() if v is not None})
        return
    kw.setdefault("prompt", "p")
    with pytest.raises(UnsupportedByModel, match=match):
        ai.generate(**kw)


def test_model_versions_are_checked(ai):
    define(ai, ["x", "x"], info=ModelInfo(versions=["v1"], supports=ModelSupports(multiturn=True)))
    ai.generate(prompt="p", config={"version": "v1"})
    with pytest.raises(UnsupportedByModel, match="does not support version 'v2'"):
        ai.generate(prompt="p", config={"version": "v2"})


@pytest.fixture
def media_server():
    payload = b"\x89PNG fake image bytes"

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/img.png":
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.end_headers()
                self.wfile.write(payload)
            else:
                self.send_response(404)
                self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", payload
    server.shutdown()


def test_download_request_media(ai, media_server):
    base, payload = media_server
    m = define(ai, ["x"] * 4, info=ModelInfo(supports=ModelSupports(media=True, multiturn=True)))
    ai.generate(prompt=[new_media_part(None, f"{base}/img.png")], use=[download_request_media(max_bytes=1000)])
    media = m.requests[0].messages[0].content[0].media
    assert (
        media.content_type == "image/png" and media.url == "data:image/png;base64," + base64.b64encode(payload).decode()
    )
    with pytest.raises(MediaTooLarge, match="larger than the limit"):
        ai.generate(prompt=[new_media_part(None, f"{base}/img.png")], use=[download_request_media(max_bytes=5)])
    with pytest.raises(InvalidArgumentError, match="404"):
        ai.generate(prompt=[new_media_part(None, f"{base}/missing")], use=[download_request_media()])
    # As Genkit's: only http(s) URLs are downloaded; a data: URL is left as it is, whatever its size.
    data_url = "data:image/png;base64," + base64.b64encode(b"0123456789").decode()
    ai.generate(prompt=[new_media_part(None, data_url)], use=[download_request_media(max_bytes=5)])
    assert m.requests[-1].messages[0].content[0].media == Media(url=data_url)


# -- resources ---------------------------------------------------------------------------------------
def test_resources_are_expanded_before_the_model(ai):
    m = define(ai, ["x", "y"])
    ai.define_resource("readme", lambda inp: "README body", uri="file:///readme")
    ai.generate(prompt=["see ", new_resource_part("file:///readme")])
    assert m.requests[0].messages[0].text() == "see README body"
    notes = new_resource(
        "notes",
        lambda inp: [Message(role="user", content=f"note {inp.variables['id']}").content[0]],
        template="notes://{id}",
    )
    ai.generate(prompt=[new_resource_part("notes://42")], resources=[notes])
    assert m.requests[1].messages[0].text() == "note 42"
    with pytest.raises(NotFoundError):
        ai.generate(prompt=[new_resource_part("notes://42")])  # that resource was for one call only


# -- embedders, retrievers, evaluators ----------------------------------------------------------------------
def test_embed_with_a_defined_embedder(ai):
    batches = []

    def embed(docs, options):
        batches.append(len(docs))
        return np.array([[len(d.text()), options["scale"]] for d in docs], dtype=np.float32)

    ai.define_embedder("test/len", embed)
    resp = ai.embed("test/len", ["a", Document.from_text("abc")], {"scale": 2})
    assert batches == [2] and resp.as_array().tolist() == [[1, 2], [3, 2]]
    assert resp.vectors() == [[1.0, 2.0], [3.0, 2.0]] and resp.to_dict()["embeddings"][0] == {"embedding": [1, 2]}
    ai.define_embedder("test/lists", lambda docs: [[1.0, 0.0] for _ in docs])
    assert ai.embed("test/lists", "x").as_array().shape == (1, 2)
    with pytest.raises(NotFoundError):
        ai.embed("nowhere/e", "x")


def test_retrieve_takes_exactly_one_query(ai):
    docs = [Document.from_text(t) for t in ("cats purr", "dogs bark")]
    ai.define_retriever("test/kw", lambda req: [d for d in docs if req.query.text() in d.text()])
    assert [d.text() for d in ai.retrieve("test/kw", "dogs").documents] == ["dogs bark"]
    with pytest.raises(InvalidArgumentError, match="single document"):
        ai.retrieve("test/kw", ["a", "b"])
    with pytest.raises(InvalidArgumentError, match="required"):
        ai.retrieve("test/kw", [])


def test_evaluate_scores_each_example_and_survives_failures(ai):
    def judge(req):
        if req.input.output == "boom":
            raise ValueError("cannot judge")
        return Score(score=1.0 if req.input.output == req.input.reference else 0.0, status="PASS")

    ai.define_evaluator("test/exact", judge, display_name="Exact")
    results = ai.evaluate(
        "test/exact",
        [{"testCaseId": "t1", "input": "q", "output": "a", "reference": "a"}, {"input": "q", "output": "boom"}],
    )
    assert results[0].test_case_id == "t1" and results[0].evaluation[0].score == 1.0
    assert len(results[1].test_case_id) == 36 and results[1].evaluation[0].status == "FAIL"
    assert results[1].evaluation[0].error.startswith(f"Evaluation of test case {results[1].test_case_id} failed")
    ai.define_batch_evaluator(
        "test/count", lambda req: [{"testCaseId": "all", "evaluation": [{"score": len(req.dataset)}]}]
    )
    assert ai.evaluate("test/count", [{"input": 1}, {"input": 2}])[0].evaluation[0].score == 2


# -- prompts ------------------------------------------------------------------------------------------------
def test_prompt_renders_system_messages_history_then_prompt(ai):
    m = define(ai, ["x", "y", "z"])
    p = ai.define_prompt(
        "greet",
        system="You greet {{ who.kind }}s.",
        prompt="Greet {{who.name}}.",
        messages=[Message(role="user", content="earlier")],
        config={"temperature": 1},
        input_schema={"type": "object", "required": ["who"]},
    )
    p.execute({"who": {"name": "Ada", "kind": "scientist"}}, messages=[Message(role="model", content="history")])
    sent = m.requests[0].messages
    assert [(x.role, x.text()) for x in sent] == [
        ("system", "You greet scientists."),
        ("user", "earlier"),
        ("model", "history"),
        ("user", "Greet Ada."),
    ]
    assert m.requests[0].config == {"temperature": 1}
    p({"who": {"name": "Bo"}}, config={"maxOutputTokens": 3})
    assert m.requests[1].config == {"maxOutputTokens": 3}  # replaced, not merged
    assert ai.lookup_prompt("greet") is p
    with pytest.raises(InputTypeMismatch):
        p.execute({})
    rendered = p.render({"who": {"name": "Cy"}})
    assert rendered.messages[-1].text() == "Greet Cy." and rendered.model is None


def test_data_prompt_and_variants(ai):
    define(ai, ['{"name": "Ada", "age": 36}'])
    from test_ai_formats import Person

    dp = ai.define_data_prompt("person", Person, variant="short", prompt=lambda inp: f"Invent {inp['n']}")
    out, resp = dp.execute({"n": 1})
    assert out == Person("Ada", 36) and ai.lookup_prompt("person", "short") is dp
    assert resp.request.messages[0].text() == "Invent 1"


# -- background models ------------------------------------------------------------------------------------------
def test_background_model_operations(ai):
    ops = {}

    def start(req):
        ops["1"] = req.messages[-1].text()
        return Operation(id="1", done=False)

    def check(op):
        return op.model_copy(update={"done": True, "output": {"text": ops[op.id].upper()}})

    ai.define_background_model("test/slow", start, check, info=ModelInfo(supports=ModelSupports(long_running=True)))
    op = ai.generate_operation(model="test/slow", prompt="video please")
    assert op.action == "/background-model/test/slow" and not op.done
    done = ai.check_model_operation(op)
    assert done.done and done.output == {"text": "VIDEO PLEASE"}
    define(ai, ["x"])
    from llamanative.ai import FailedPreconditionError

    with pytest.raises(FailedPreconditionError):
        ai.generate_operation(prompt="x")


# -- async twins ----------------------------------------------------------------------------------------------------
def test_async_twins(ai):
    define(ai, ["abc", "def"], piece=1)

    async def main():
        text = await ai.agenerate_text(prompt="p")
        chunks = [v.chunk.text() async for v in ai.agenerate_stream(prompt="p") if not v.done]
        return text, chunks

    assert asyncio.run(main()) == ("abc", ["d", "e", "f"])
