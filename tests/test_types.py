"""Tests of llamanative.types: pure Python, no native code and no model needed."""

from __future__ import annotations

import doctest
import enum
import importlib
import json
import logging
import math
import pickle
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pytest
from pydantic import BaseModel, ValidationError

from llamanative.errors import AuthorizationError, RequestError, ResponseError, StatusError
from llamanative.types.duration import Duration, format_go_duration, parse_go_duration
from llamanative.types.images import Image
from llamanative.types.messages import Message
from llamanative.types.metrics import Metrics
from llamanative.types.models import (
    ListModelResponse,
    ListResponse,
    Modalities,
    ModelDetails,
    ProcessModelResponse,
    ProcessResponse,
    ProgressResponse,
    PropsResponse,
    ShowResponse,
    TokenResponse,
    VersionResponse,
)
from llamanative.types.options import LoadOptions, Options, default_options, format_params
from llamanative.types.requests import (
    ChatRequest,
    CopyRequest,
    CreateRequest,
    DeleteRequest,
    EmbeddingRequest,
    EmbedRequest,
    GenerateRequest,
    PullRequest,
    ShowRequest,
)
from llamanative.types.responses import (
    ChatResponse,
    DebugInfo,
    EmbeddingResponse,
    EmbedResponse,
    GenerateResponse,
)
from llamanative.types.think import ThinkValue
from llamanative.types.tool_builder import tool_from_function
from llamanative.types.tools import Tool, ToolCall, ToolCallFunction, ToolProperty

SECOND = 10**9
WHEN = datetime(2024, 5, 1, 12, 0, 0, 500000, tzinfo=timezone.utc)


def wire(model: BaseModel) -> dict[str, Any]:
    """The JSON object a model serialises to."""
    return json.loads(model.model_dump_json())


def validation_message(exc_info: pytest.ExceptionInfo[ValidationError]) -> str:
    return "\n".join(f"{e['loc']}: {e['msg']}" for e in exc_info.value.errors())


# --- the package --------------------------------------------------------------


MODULES = [
    "base",
    "duration",
    "think",
    "options",
    "images",
    "audio",
    "tools",
    "tool_builder",
    "messages",
    "metrics",
    "requests",
    "responses",
    "models",
]


@pytest.mark.parametrize("name", MODULES)
def test_module_doctests(name):
    module = importlib.import_module(f"llamanative.types.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def test_package_exports_every_public_name():
    package = importlib.import_module("llamanative.types")
    assert getattr(package, "__file__", None), (
        "llamanative.types imports as a namespace package: the editable install predates "
        "llamanative/types/__init__.py; reinstall it (pip install -e .)"
    )
    missing = [name for name in package.__all__ if not hasattr(package, name)]
    assert missing == []
    for name in (
        "ChatResponse",
        "GenerateResponse",
        "Options",
        "Message",
        "Tool",
        "Image",
        "ResponseError",
        "RequestError",
        "Duration",
        "ThinkValue",
        "tool_from_function",
    ):
        assert name in package.__all__
    assert package.ResponseError is ResponseError
    assert package.EmbeddingsResponse is EmbeddingResponse


# --- SubscriptableBaseModel ---------------------------------------------------


def test_getitem_returns_set_fields_and_raises_keyerror_for_unknown_or_unset():
    msg = Message(role="user")
    assert msg["role"] == "user"
    with pytest.raises(KeyError):
        msg["nonexistent"]
    with pytest.raises(KeyError):  # unset Optional field: not "in", so not subscriptable
        msg["content"]


def test_contains_follows_ollama_python():
    msg = Message(role="user")
    assert "role" in msg
    assert "content" not in msg  # unset Optional field
    assert "nonexistent" not in msg
    msg.content = "hello"
    assert "content" in msg
    msg["tool_calls"] = []
    assert "tool_calls" in msg  # set, even though empty
    msg["tool_calls"] = None
    assert "tool_calls" in msg  # set explicitly, even to None
    assert "type" in Tool()  # unset, but its default is not None
    assert 3 not in msg


def test_setitem_and_get():
    msg = Message(role="user", content="")
    msg["role"] = "assistant"
    assert msg.role == "assistant"
    assert msg["content"] == ""  # an explicitly empty content is kept
    assert msg.get("thinking") is None  # unset Optional: None, not the default
    assert msg.get("nonexistent", "fallback") == "fallback"
    assert msg.get("role", "fallback") == "assistant"


def test_nested_dict_access_on_a_response():
    resp = ChatResponse.model_validate(
        {
            "model": "m",
            "created_at": "2024-05-01T12:00:00Z",
            "done": True,
            "message": {
                "role": "assistant",
                "content": "",
                "tool_calls": [{"function": {"name": "f", "arguments": {"x": 1}}}],
            },
        }
    )
    assert resp["message"]["tool_calls"][0]["function"]["name"] == "f"
    assert resp.message.tool_calls[0].function.arguments == {"x": 1}
    assert resp.get("message").get("content") == ""


def test_unknown_keys_are_ignored():
    resp = ChatResponse(model="m", message={"role": "assistant", "unknown": 1}, unknown_field=1)
    assert not hasattr(resp, "unknown_field")
    assert "unknown" not in wire(resp)["message"]


def test_json_names_reach_fields_through_dict_access():
    resp = ChatResponse(model="m", message={"role": "assistant"}, _debug_info={"rendered_template": "T"})
    assert resp["_debug_info"].rendered_template == "T"
    assert resp["debug_info"] is resp.debug_info
    assert "_debug_info" in resp
    req = GenerateRequest.model_validate({"model": "m", "_debug_render_only": True})
    assert req.debug_render_only is True
    assert wire(req)["_debug_render_only"] is True


# --- exact JSON of the responses ------------------------------------------------


def test_chat_response_json_field_names():
    resp = ChatResponse(
        model="m",
        created_at=WHEN,
        done=True,
        done_reason="stop",
        message=Message(
            role="assistant",
            content="Hi",
            thinking="hmm",
            tool_name=None,
            tool_calls=[ToolCall(id="call_1", function=ToolCallFunction(index=1, name="f"))],
        ),
        total_duration=5 * SECOND,
        load_duration=SECOND,
        prompt_eval_count=10,
        prompt_eval_duration=SECOND,
        eval_count=20,
        eval_duration=2 * SECOND,
        debug_info=DebugInfo(rendered_template="T", image_count=1),
        logprobs=[
            {"token": "Hi", "logprob": -0.5, "bytes": [72, 105], "top_logprobs": [{"token": "Hi", "logprob": -0.5}]}
        ],
    )
    data = wire(resp)
    assert list(data) == [
        "model",
        "created_at",
        "message",
        "done",
        "done_reason",
        "_debug_info",
        "logprobs",
        "total_duration",
        "load_duration",
        "prompt_eval_count",
        "prompt_eval_duration",
        "eval_count",
        "eval_duration",
    ]
    assert data["created_at"] == "2024-05-01T12:00:00.500000Z"
    assert data["message"] == {
        "role": "assistant",
        "content": "Hi",
        "thinking": "hmm",
        "tool_calls": [{"id": "call_1", "function": {"index": 1, "name": "f", "arguments": {}}}],
    }
    assert data["_debug_info"] == {"rendered_template": "T", "image_count": 1}
    assert data["logprobs"][0] == {
        "token": "Hi",
        "logprob": -0.5,
        "bytes": [72, 105],
        "top_logprobs": [{"token": "Hi", "logprob": -0.5}],
    }
    assert data["total_duration"] == 5 * SECOND


def test_omitempty_zero_values_are_left_out_but_required_fields_stay():
    resp = ChatResponse(
        model="m",
        created_at=WHEN,
        message={"role": "assistant", "content": "", "thinking": ""},
        done=False,
        done_reason="",
        load_duration=0,
        eval_count=0,
    )
    data = wire(resp)
    assert data == {
        "model": "m",
        "created_at": "2024-05-01T12:00:00.500000Z",
        "message": {"role": "assistant", "content": ""},
        "done": False,
    }
    # model_dump() keeps pydantic's defaults: every field, with the spec's names.
    dumped = resp.model_dump()
    assert dumped["load_duration"] == 0 and dumped["done_reason"] == "" and "_debug_info" in dumped


def test_models_pickle_and_copy():
    req = ChatRequest(model="m", keep_alive="5m", think="low", messages=[{"role": "user", "content": "x"}])
    again = pickle.loads(pickle.dumps(req))
    assert again == req and again.keep_alive == Duration("5m") and again.think == "low"
    assert req.model_copy(deep=True) == req


def test_chat_response_round_trips_through_json():
    resp = ChatResponse(
        model="m",
        created_at=WHEN,
        message={"role": "assistant", "content": "Hi"},
        done=True,
        eval_count=3,
        eval_duration=SECOND,
    )
    again = ChatResponse.model_validate_json(resp.model_dump_json())
    assert again == resp
    assert again.to_dict() == wire(resp)


def test_generate_response_json_field_names():
    resp = GenerateResponse(
        model="m",
        created_at=WHEN,
        created=1714564800,
        response="Hello",
        thinking="t",
        done=True,
        done_reason="stop",
        context=[1, 2, 3],
        tool_calls=[{"function": {"name": "f", "arguments": {}}}],
        debug_info={"rendered_template": "T"},
        choices=[{"text": "Hello", "index": 0, "finish_reason": "stop"}],
        system_fingerprint="fp",
        id="gen-1",
        object="text_completion",
        eval_count=2,
    )
    data = wire(resp)
    assert set(data) == {
        "model",
        "created_at",
        "created",
        "response",
        "thinking",
        "done",
        "done_reason",
        "context",
        "tool_calls",
        "_debug_info",
        "choices",
        "system_fingerprint",
        "id",
        "object",
        "eval_count",
    }
    assert data["created"] == 1714564800
    assert data["choices"] == [{"text": "Hello", "index": 0, "finish_reason": "stop"}]
    assert list(data)[-1] == "eval_count"  # metrics come last, as Go embeds them


def test_generate_response_content_and_is_done():
    ollama_style = GenerateResponse(model="m", response="Hi", done=False)
    assert ollama_style.content() == "Hi"
    assert ollama_style.is_done() is False
    assert ollama_style.done is False  # the field ollama-python code reads
    spec_style = GenerateResponse(choices=[{"text": "Hel"}, {"text": "lo", "finish_reason": "length"}])
    assert spec_style.content() == "Hello"
    assert spec_style.is_done() is True
    assert GenerateResponse(choices=[{"text": "x", "finish_reason": ""}]).is_done() is False
    assert GenerateResponse().content() == ""


def test_model_list_and_process_json_field_names():
    listing = ListResponse(
        models=[
            ListModelResponse(
                name="llama3.2:latest",
                model="llama3.2:latest",
                modified_at=WHEN,
                size=2_019_393_189,
                digest="a80c4f17",
                details=ModelDetails(
                    parent_model="",
                    format="gguf",
                    family="llama",
                    families=["llama"],
                    parameter_size="3.2B",
                    quantization_level="Q4_K_M",
                ),
            )
        ]
    )
    entry = wire(listing)["models"][0]
    assert set(entry) == {"name", "model", "modified_at", "size", "digest", "details"}
    assert set(entry["details"]) == {
        "parent_model",
        "format",
        "family",
        "families",
        "parameter_size",
        "quantization_level",
    }
    assert ListResponse.Model is ListModelResponse
    model = listing.models[0]
    assert model["model"] == "llama3.2:latest" and model["name"] == "llama3.2:latest"
    assert model.size.real == 2_019_393_189 and model.size // 2 == 1_009_696_594  # an int
    assert isinstance(model.modified_at, datetime)

    ps = ProcessResponse(
        models=[
            ProcessModelResponse(
                name="m",
                model="m",
                size=100,
                size_vram=60,
                digest="d",
                details={"family": "llama"},
                expires_at=WHEN + timedelta(minutes=5),
                context_length=4096,
            )
        ]
    )
    entry = wire(ps)["models"][0]
    assert set(entry) == {"name", "model", "size", "size_vram", "digest", "details", "expires_at", "context_length"}
    assert entry["expires_at"] == "2024-05-01T12:05:00.500000Z"
    assert ProcessResponse.Model is ProcessModelResponse
    assert ps.models[0].size_vram + 0 == 60


def test_show_response_model_info_and_modelinfo():
    resp = ShowResponse.model_validate(
        {
            "license": "MIT",
            "modelfile": "FROM x",
            "parameters": 'stop "<|end|>"',
            "template": "{{ .Prompt }}",
            "system": "S",
            "details": {"family": "llama"},
            "messages": [{"role": "user", "content": "hi"}],
            "model_info": {"general.architecture": "llama", "llama.context_length": 131072},
            "tensors": [{"name": "t", "type": "Q4_K", "shape": [2, 3]}],
            "capabilities": ["completion", "tools"],
            "modified_at": "2024-05-01T12:00:00.123456789+02:00",
        }
    )
    assert resp.modelinfo == {"general.architecture": "llama", "llama.context_length": 131072}
    assert resp["modelinfo"] is resp["model_info"] is resp.model_info
    assert "modelinfo" in resp and resp.get("modelinfo") == resp.model_info
    assert ShowResponse(modelinfo={"a": 1}).model_info == {"a": 1}  # ollama-python's name as input too
    assert resp.modified_at.utcoffset() == timedelta(hours=2)
    data = wire(resp)
    assert set(data) == {
        "license",
        "modelfile",
        "parameters",
        "template",
        "system",
        "details",
        "messages",
        "model_info",
        "tensors",
        "capabilities",
        "modified_at",
    }
    assert "modelinfo" not in data


def test_small_responses_json_field_names():
    assert wire(ProgressResponse(status="pulling abc", digest="sha256:abc", total=10, completed=5)) == {
        "status": "pulling abc",
        "digest": "sha256:abc",
        "total": 10,
        "completed": 5,
    }
    assert wire(ProgressResponse(status="success", total=0)) == {"status": "success"}
    props = PropsResponse(build_info="b1", model_path="/m.gguf", n_ctx=4096, modalities=Modalities(vision=True))
    assert wire(props) == {
        "build_info": "b1",
        "model_path": "/m.gguf",
        "n_ctx": 4096,
        "modalities": {"vision": True, "audio": False},
    }
    assert wire(TokenResponse(token="abc")) == {"token": "abc"}
    assert wire(VersionResponse(version="0.1.0")) == {"version": "0.1.0"}
    assert wire(EmbeddingResponse(embedding=[0.5, 1.5])) == {"embedding": [0.5, 1.5]}
    assert wire(
        EmbedResponse(model="m", embeddings=[[1.0]], total_duration=5, load_duration=0, prompt_eval_count=2)
    ) == {"model": "m", "embeddings": [[1.0]], "total_duration": 5, "prompt_eval_count": 2}


def test_naive_timestamps_become_aware():
    naive = datetime(2024, 5, 1, 12, 0, 0)
    resp = ChatResponse(model="m", created_at=naive, message={"role": "assistant"})
    assert resp.created_at.tzinfo is not None
    assert resp.created_at.replace(tzinfo=None) == naive  # taken as local time, not shifted
    text = wire(resp)["created_at"]
    assert datetime.fromisoformat(text.replace("Z", "+00:00")) == resp.created_at


# --- Duration -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds", "json_value"),
    [
        (300, 300.0, "5m0s"),
        (0, 0.0, "0s"),
        (0.5, 0.5, "500ms"),
        (-1, math.inf, -1),
        (-0.5, math.inf, -1),
        ("5m", 300.0, "5m0s"),
        ("1h30m", 5400.0, "1h30m0s"),
        ("300ms", 0.3, "300ms"),
        ("1.5h", 5400.0, "1h30m0s"),
        ("-1m", math.inf, -1),
        ("0", 0.0, "0s"),
        ("+10s", 10.0, "10s"),
        (".5s", 0.5, "500ms"),
        ("1h0m0s", 3600.0, "1h0m0s"),
        ("2h45m30.5s", 9930.5, "2h45m30.5s"),
        ("1500us", 0.0015, "1.5ms"),
        ("1µs", 1e-6, "1µs"),
        (timedelta(minutes=2), 120.0, "2m0s"),
    ],
)
def test_duration_parsing_table(value, seconds, json_value):
    d = Duration(value)
    assert d.seconds() == pytest.approx(seconds)
    assert d.to_json() == json_value
    assert d.is_forever() == (seconds == math.inf)
    assert Duration.validate(d.to_json()) == d  # dump, then read back: the same value


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("5 minutes", 'time: unknown unit " minutes" in duration "5 minutes"'),
        ("-1", 'time: missing unit in duration "-1"'),
        ("300", 'time: missing unit in duration "300"'),
        ("", 'time: invalid duration ""'),
        ("abc", 'time: invalid duration "abc"'),
        ("5x", 'time: unknown unit "x" in duration "5x"'),
        (".s", 'time: invalid duration ".s"'),
        ("9999999999h", 'time: invalid duration "9999999999h"'),
        (True, "keep_alive must be a number of seconds or a duration string"),
        (None, "keep_alive must be a number of seconds or a duration string"),
        ([5], "keep_alive must be a number of seconds or a duration string"),
        (float("nan"), "keep_alive must not be NaN"),
    ],
)
def test_duration_rejects_bad_values(value, message):
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        Duration(value)


def test_duration_forever_and_comparisons():
    forever = Duration.forever()
    assert forever.is_forever() and forever.seconds() == math.inf
    assert forever == Duration(-1) == Duration("-5m")
    assert forever.nanoseconds == 2**63 - 1
    assert Duration(1e12).is_forever()  # too large for int64 nanoseconds: never expires anyway
    assert Duration("1m") < Duration("90s") < forever
    assert len({Duration(60), Duration("1m"), Duration("60s")}) == 1
    assert Duration(60) != 60  # compare through .seconds()
    assert str(Duration("90m")) == "1h30m0s"
    assert repr(Duration("5m")) == "Duration('5m0s')" and repr(forever) == "Duration(-1)"
    assert Duration.from_nanoseconds(1500).to_json() == "1.5µs"


def test_duration_from_environment_setting():
    assert Duration.parse_env("10m").seconds() == 600
    assert Duration.parse_env("45").seconds() == 45  # OLLAMA_KEEP_ALIVE also takes plain seconds
    assert Duration.parse_env("-1").is_forever()
    assert Duration.parse_env(None).seconds() == 300
    assert Duration.parse_env("soon", default="1m").seconds() == 60


def test_go_duration_helpers_match_go():
    assert parse_go_duration("1h2m3.5s") == 3723 * SECOND + SECOND // 2
    assert parse_go_duration("-1.5s") == -1_500_000_000
    assert format_go_duration(2**63 - 1) == "2562047h47m16.854775807s"
    assert format_go_duration(-90 * SECOND) == "-1m30s"
    assert [format_go_duration(n) for n in (1, 999, 1000, 1_000_001, SECOND + 1)] == [
        "1ns",
        "999ns",
        "1µs",
        "1.000001ms",
        "1.000000001s",
    ]


def test_duration_as_a_pydantic_field():
    req = ChatRequest(model="m", keep_alive=0)
    assert req.keep_alive == Duration(0) and req.keep_alive.seconds() == 0
    assert wire(req)["keep_alive"] == "0s"
    assert wire(ChatRequest(model="m", keep_alive="-1m"))["keep_alive"] == -1
    again = ChatRequest.model_validate_json(ChatRequest(model="m", keep_alive="1h").model_dump_json())
    assert again.keep_alive == Duration("1h")
    assert "keep_alive" in ChatRequest.model_json_schema()["properties"]


# --- ThinkValue -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "is_bool", "is_string", "as_bool", "as_string"),
    [
        (True, True, False, True, "medium"),
        (False, True, False, False, ""),
        ("high", False, True, True, "high"),
        ("medium", False, True, True, "medium"),
        ("low", False, True, True, "low"),
        ("max", False, True, True, "max"),
    ],
)
def test_think_value_methods(value, is_bool, is_string, as_bool, as_string):
    t = ThinkValue.validate(value)
    assert (t.is_bool(), t.is_string(), t.bool(), t.string()) == (is_bool, is_string, as_bool, as_string)
    assert t.is_valid()
    assert bool(t) is as_bool
    assert t == value and hash(t) == hash(value)


@pytest.mark.parametrize("value", ["extreme", "HIGH", "", 1, None, 0.5])
def test_think_value_rejects_invalid_values(value):
    with pytest.raises(ValueError, match="think"):
        ThinkValue.validate(value)
    with pytest.raises(ValidationError, match="think"):
        ChatRequest(model="m", think=value) if value is not None else ChatRequest(model="m", think=[])


def test_think_value_struct_literal_reports_validity():
    assert ThinkValue("none").is_valid() is False
    assert ThinkValue("none").bool() is False
    assert ThinkValue("none").string() == "none"  # Go's String() returns any string as is
    assert ThinkValue(True) != 1  # not equal to a number, only to the bool


def test_think_value_in_requests():
    assert wire(ChatRequest(model="m", think="max"))["think"] == "max"
    assert wire(GenerateRequest(model="m", think=False))["think"] is False  # false is sent, not dropped
    assert "think" not in wire(ChatRequest(model="m"))


# --- Options --------------------------------------------------------------------


def test_default_options_values():
    opts = default_options()
    expected = dict(
        num_predict=-1,
        num_keep=4,
        temperature=0.8,
        top_k=40,
        top_p=0.9,
        min_p=0.0,
        typical_p=1.0,
        repeat_last_n=64,
        repeat_penalty=1.0,
        presence_penalty=0.0,
        frequency_penalty=0.0,
        seed=-1,
        num_batch=512,
        num_gpu=-1,
        num_thread=0,
        num_ctx=4096,
    )
    assert {k: getattr(opts, k) for k in expected} == expected
    assert opts.main_gpu is None and opts.use_mmap is None and opts.stop is None
    assert default_options() is not opts and default_options() == opts


def test_options_from_map_types():
    opts = Options.from_map(
        {"temperature": 1, "top_k": 40.0, "top_p": 0.5, "use_mmap": False, "stop": ["a"], "seed": None}
    )
    assert opts.temperature == 1.0 and isinstance(opts.temperature, float)  # int accepted for a float
    assert opts.top_k == 40 and isinstance(opts.top_k, int)  # a JSON number with an integral value
    assert opts.use_mmap is False and opts.stop == ["a"]
    assert opts.seed is None and "seed" not in opts.model_fields_set  # None values are skipped
    assert Options.from_map(None) == Options()


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"top_k": "40"}, 'option "top_k" must be of type integer'),
        ({"top_k": True}, 'option "top_k" must be of type integer'),
        ({"top_k": 1.5}, 'option "top_k" must be of type integer, got 1.5'),
        ({"temperature": "hot"}, 'option "temperature" must be of type float32'),
        ({"temperature": False}, 'option "temperature" must be of type float32'),
        ({"use_mmap": 1}, 'option "use_mmap" must be of type boolean'),
        ({"stop": 5}, 'option "stop" must be of type array'),
        ({"stop": ["a", 1]}, 'option "stop" must be an array of strings'),
        ({"num_predict": -3}, 'option "num_predict" must be -1 (no limit), -2 (fill the context) or >= 0, got -3'),
        ({"num_ctx": 0}, 'option "num_ctx" must be >= 1, got 0'),
        ({"top_p": 1.5}, 'option "top_p" must be between 0 and 1, got 1.5'),
        ({"min_p": -0.1}, 'option "min_p" must be between 0 and 1, got -0.1'),
        ({"temperature": -1}, 'option "temperature" must be >= 0, got -1.0'),
        ({"num_gpu": -2}, 'option "num_gpu" must be -1 (auto) or >= 0, got -2'),
    ],
)
def test_options_from_map_rejects_wrong_types_and_ranges(values, message):
    with pytest.raises(StatusError) as exc_info:
        Options.from_map(values)
    assert exc_info.value.status_code == 400
    assert exc_info.value.error == message
    assert isinstance(exc_info.value, ResponseError)


def test_options_unknown_and_legacy_keys_are_ignored_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="llamanative"):
        opts = Options.from_map({"temperature": 0.1, "foo": 1, "mirostat": 2, "numa": True})
    assert opts.model_dump(exclude_none=True) == {"temperature": 0.1}
    messages = [r.getMessage() for r in caplog.records if r.name == "llamanative"]
    assert any("invalid option provided" in m and "'foo'" in m for m in messages)
    assert any("'mirostat'" in m and "ignored" in m for m in messages)
    assert any("'numa'" in m for m in messages)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="llamanative"):
        Options(f16_kv=True, temperature=0.1)  # the ollama-python constructor form warns too
    assert any("'f16_kv'" in r.getMessage() for r in caplog.records)


def test_options_constructor_validates_with_field_names():
    with pytest.raises(ValidationError) as exc_info:
        Options(top_k="x")
    assert 'option "top_k" must be of type integer' in validation_message(exc_info)
    opts = Options(min_p=0.05, stop="###")
    assert opts.min_p == 0.05  # ollama-python's Options drops min_p; this one keeps it
    assert opts.stop == ["###"]
    with pytest.raises(ValidationError, match="top_p"):
        opts.top_p = 2  # assignment is validated too


def test_options_merge_layers_defaults_model_and_request():
    model_params = {"temperature": 0.6, "stop": ["<|end|>"], "num_ctx": 8192}
    request = Options(temperature=0, seed=42)
    merged = default_options().merge(model_params).merge(request).merge(None)
    assert merged.temperature == 0.0  # the request wins, even with a zero
    assert merged.seed == 42 and merged.num_ctx == 8192 and merged.stop == ["<|end|>"]
    assert merged.top_k == 40  # untouched default
    assert default_options().temperature == 0.8  # no layer was changed
    assert request.num_ctx is None
    merged.stop.append("x")
    assert request.stop is None and model_params["stop"] == ["<|end|>"]


def test_load_options_is_a_hashable_reload_key():
    base = default_options()
    key = base.load_options()
    assert isinstance(key, LoadOptions)
    assert key == LoadOptions(
        num_ctx=4096, num_batch=512, num_gpu=-1, main_gpu=None, use_mmap=None, num_thread=0, rpc_servers=None
    )
    assert {key: "runner"}[base.merge({"temperature": 0.1}).load_options()] == "runner"  # runtime change: same key
    assert base.merge({"num_ctx": 8192}).load_options() != key  # load-time change: reload


def test_format_params_converts_text_values():
    params = {"temperature": ["0.5"], "stop": ["a", "b"], "num_ctx": ["8192"], "use_mmap": ["false"], "seed": ["-1"]}
    assert format_params(params) == {
        "temperature": 0.5,
        "stop": ["a", "b"],
        "num_ctx": 8192,
        "use_mmap": False,
        "seed": -1,
    }
    assert format_params({"use_mmap": ["T"]}) == {"use_mmap": True}
    assert format_params({"mirostat": ["0"]}) == {}  # a legacy key is dropped, not an error


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"foo": ["1"]}, "unknown parameter 'foo'"),
        ({"num_ctx": ["4k"]}, "invalid int value ['4k'] for parameter 'num_ctx'"),
        ({"num_ctx": ["1.5"]}, "invalid int value ['1.5'] for parameter 'num_ctx'"),
        ({"temperature": ["hot"]}, "invalid float value ['hot'] for parameter 'temperature'"),
        ({"use_mmap": ["yes"]}, "invalid bool value ['yes'] for parameter 'use_mmap'"),
        ({"top_p": ["2"]}, 'option "top_p" must be between 0 and 1, got 2.0'),
        ({"top_k": []}, "missing value for parameter 'top_k'"),
    ],
)
def test_format_params_errors(params, message):
    with pytest.raises(StatusError) as exc_info:
        format_params(params)
    assert exc_info.value.status_code == 400
    assert exc_info.value.error == message


# --- tools ------------------------------------------------------------------------


class Unit(enum.Enum):
    CELSIUS = "celsius"
    FAHRENHEIT = "fahrenheit"


def forecast(
    city: str,
    unit: Unit,
    days: list[int],
    mode: Literal["fast", "slow"] = "fast",
    limit: int | None = None,
    count: int = 3,
    tags: list[str] | None = None,
    key: int | str = 0,
    flag: bool | None = None,
    note: Annotated[str, "A free note."] = "",
    *args: Any,
    **kwargs: Any,
) -> str:
    """Get a weather forecast.

    Uses the national service.

    Args:
        city (str): The city name,
            as written locally.
        unit: The temperature unit.
        days: Days ahead: 1 is tomorrow.
        key: A key.

    Returns:
        str: The forecast.
    """
    return ""


def test_tool_from_function_keeps_enums_literals_items_and_required():
    tool = tool_from_function(forecast)
    fn = tool.function
    assert tool.type == "function" and fn.name == "forecast"
    assert fn.description == "Get a weather forecast.\n\nUses the national service."
    params = fn.parameters
    assert list(params.properties) == ["city", "unit", "days", "mode", "limit", "count", "tags", "key", "flag", "note"]
    assert params.required == ["city", "unit", "days"]  # defaults and Optional are not required
    props = {name: p.to_dict() for name, p in params.properties.items()}
    assert props["city"] == {"type": "string", "description": "The city name, as written locally."}
    assert props["unit"] == {
        "type": "string",
        "description": "The temperature unit.",
        "enum": ["celsius", "fahrenheit"],
    }
    assert props["days"] == {"type": "array", "items": {"type": "integer"}, "description": "Days ahead: 1 is tomorrow."}
    assert props["mode"] == {"type": "string", "enum": ["fast", "slow"]}
    assert props["limit"] == {"type": "integer"}  # Optional: no "null" type, just not required
    assert props["tags"] == {"type": "array", "items": {"type": "string"}}
    assert props["key"] == {"type": ["integer", "string"], "description": "A key."}  # the order written
    assert props["flag"] == {"type": "boolean"}  # a string annotation is resolved
    assert props["note"] == {"type": "string", "description": "A free note."}  # from Annotated
    assert tool_from_function(forecast) == tool  # deterministic


def test_tool_from_function_docstring_edge_cases_from_ollama_python():
    def skewed(x: int, y: int) -> int:
        """
        Add two numbers together.
        Args:
            x (integer): : The first number




            y (integer ): The second number
        Returns:
            integer: The sum of x and y
        """

    def parens(a: int, b: int):
        """
        A function with parentheses and args.
        Args:
            a(integer) : First (:thing) number to add
            b(integer) :Second number to add
        """

    def no_doc(a, b): ...

    def with_yields(x: int):
        """
        A function with yields section.

        Args:
          x: the first number

        Yields:
          The sum of x and y
        """

    props = tool_from_function(skewed).function.parameters.properties
    assert props["x"].description == ": The first number" and props["y"].description == "The second number"
    props = tool_from_function(parens).function.parameters.properties
    assert props["a"].description == "First (:thing) number to add"
    assert props["b"].description == "Second number to add"
    tool = tool_from_function(no_doc)
    assert tool.function.description == ""
    assert {n: p.type for n, p in tool.function.parameters.properties.items()} == {"a": "string", "b": "string"}
    assert tool.function.parameters.required == ["a", "b"]
    tool = tool_from_function(with_yields)
    assert tool.function.description == "A function with yields section."
    assert tool.function.parameters.properties["x"].description == "the first number"


def test_tool_from_function_with_no_parameters_and_bad_input():
    def now() -> str:
        """The current time."""

    tool = tool_from_function(now)
    assert wire(tool) == {
        "type": "function",
        "function": {
            "name": "now",
            "description": "The current time.",
            "parameters": {"type": "object", "properties": {}},
        },
    }
    with pytest.raises(TypeError):
        tool_from_function("not a function")


# The cases of Go's api/types_typescript_test.go, then llamanative's extensions.
@pytest.mark.parametrize(
    ("prop", "expected"),
    [
        ({"type": "string"}, "string"),
        ({"type": "number"}, "number"),
        ({"type": "integer"}, "number"),
        ({"type": "boolean"}, "boolean"),
        ({"type": "array"}, "any[]"),
        ({"type": "object"}, "Record<string, any>"),
        ({"type": "null"}, "null"),
        ({"type": ["string", "number"]}, "string | number"),
        ({"type": ["string", "null"]}, "string | null"),
        ({"anyOf": [{"type": "string"}, {"type": "number"}]}, "string | number"),
        ({"anyOf": [{"type": ["string", "null"]}, {"type": "number"}]}, "string | null | number"),
        (
            {"anyOf": [{"type": "boolean"}, {"anyOf": [{"type": "string"}, {"type": "number"}]}]},
            "boolean | string | number",
        ),
        ({"type": []}, "any"),
        ({}, "any"),
        ({"type": "unknown_type"}, "any"),
        ({"type": ["string", "array", "null"]}, "string | any[] | null"),
        # extensions: typed array items and enums
        ({"type": "array", "items": {"type": "string"}}, "string[]"),
        ({"type": "array", "items": {"type": ["string", "number"]}}, "(string | number)[]"),
        ({"type": "array", "items": {"type": "array", "items": {"type": "integer"}}}, "number[][]"),
        ({"type": "string", "enum": ["celsius", "fahrenheit"]}, '"celsius" | "fahrenheit"'),
        ({"type": ["integer", "null"], "enum": [1, 2]}, "1 | 2 | null"),
    ],
)
def test_tool_property_to_typescript_type(prop, expected):
    assert ToolProperty.model_validate(prop).to_typescript_type() == expected


def test_property_type_is_a_string_or_a_list():
    assert wire(ToolProperty(type=["string"])) == {"type": "string"}  # a list of one is a string, as in Go
    assert wire(ToolProperty(type=["string", "null"])) == {"type": ["string", "null"]}
    assert ToolProperty(type="string").types() == ["string"]
    with pytest.raises(ValidationError):
        ToolProperty(type=5)


def test_tool_str_is_json_and_nested_names_work():
    tool = Tool(
        function=Tool.Function(
            name="f",
            parameters=Tool.Function.Parameters(
                properties={"b": Tool.Function.Parameters.Property(type="string"), "a": {"type": "integer"}},
                **{"$defs": {"X": {"type": "string"}}},
            ),
        )
    )
    assert str(tool) == (
        '{"type":"function","function":{"name":"f","parameters":{"type":"object",'
        '"$defs":{"X":{"type":"string"}},"properties":{"b":{"type":"string"},'
        '"a":{"type":"integer"}}}}}'
    )
    assert Tool.model_validate_json(str(tool)) == tool
    assert tool.function.parameters["$defs"] == {"X": {"type": "string"}}


def test_tool_call_arguments_keep_order_and_accept_json_text():
    call = Message.ToolCall(
        id="call_abc", function=Message.ToolCall.Function(name="f", arguments={"z": 1, "a": 2, "m": 3})
    )
    assert list(call.function.arguments) == ["z", "a", "m"]
    assert json.dumps(wire(call)["function"]["arguments"]) == '{"z": 1, "a": 2, "m": 3}'
    parsed = ToolCallFunction(name="f", arguments='{"y": 1, "x": [1, 2]}')
    assert list(parsed.arguments) == ["y", "x"]
    assert ToolCallFunction(name="f", arguments=None).arguments == {}
    with pytest.raises(ValidationError, match="not valid JSON"):
        ToolCallFunction(name="f", arguments="{oops")
    with pytest.raises(ValidationError, match="JSON object"):
        ToolCallFunction(name="f", arguments="[1, 2]")


def test_message_fields_and_role():
    msg = Message(role="Tool", content="42", tool_name="add", tool_call_id="call_1")
    assert msg.role == "tool"  # lower-cased, as the spec's Message.UnmarshalJSON does
    assert wire(msg) == {"role": "tool", "content": "42", "tool_name": "add", "tool_call_id": "call_1"}
    assert Message(role="my_custom_role").role == "my_custom_role"


# --- Image ------------------------------------------------------------------------


def test_image_inputs_serialise_to_base64(tmp_path):
    path = tmp_path / "cat.png"
    path.write_bytes(b"\x89PNG fake")
    encoded = "iVBORyBmYWtl"
    assert Image(value=b"\x89PNG fake").model_dump() == encoded
    assert Image(value=path).model_dump() == encoded
    assert Image(value=str(path)).model_dump() == encoded
    assert Image(encoded).model_dump() == encoded  # base64 text passes through
    assert Image(encoded).to_bytes() == b"\x89PNG fake"
    assert Image("dGVzdCBiYXNlNjQgc3RyaW5n" * 1000).model_dump() == "dGVzdCBiYXNlNjQgc3RyaW5n" * 1000
    msg = Message(role="user", images=[str(path), b"\x89PNG fake", Image(path)])
    assert wire(msg)["images"] == [encoded] * 3


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("some_path/that/does/not/exist.png", "File some_path/that/does/not/exist.png does not exist"),
        ("photo.JPG", "File photo.JPG does not exist"),
        (Path("/nonexistent/cat.webp"), "File /nonexistent/cat.webp does not exist"),
        ("not an image", "Invalid image data, expected base64 string or path to image file"),
        ("%%%", "Invalid image data, expected base64 string or path to image file"),
    ],
)
def test_image_errors(value, message):
    with pytest.raises(ValueError, match=message):
        Image(value=value)
    with pytest.raises(ValidationError, match=message):  # reported at the request, before any work
        GenerateRequest(model="m", prompt="hi", images=[value])


# --- requests ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "cls",
    [
        ChatRequest,
        GenerateRequest,
        EmbedRequest,
        EmbeddingRequest,
        ShowRequest,
        PullRequest,
        CreateRequest,
        DeleteRequest,
    ],
)
def test_requests_need_a_model(cls):
    with pytest.raises(ValidationError) as exc_info:
        cls(model="")
    assert "('model',): Value error, model is required" in validation_message(exc_info)
    with pytest.raises(ValidationError, match="model is required"):
        cls(model="   ")
    with pytest.raises(ValidationError, match="model"):
        cls()


def test_request_defaults_and_wire_json():
    req = ChatRequest(model="m", messages=[{"role": "user", "content": "Hi"}])
    assert req.stream is True and "stream" in req
    assert wire(req) == {"model": "m", "stream": True, "messages": [{"role": "user", "content": "Hi"}]}
    assert wire(GenerateRequest(model="m", prompt="Hi", stream=False, raw=False)) == {
        "model": "m",
        "stream": False,
        "prompt": "Hi",
    }
    assert PullRequest(model="m").stream is True
    assert GenerateRequest(model="m", stream=None).stream is True  # Go: a nil Stream means true


@pytest.mark.parametrize("fmt", ["", "json", {"type": "object"}, '{"type": "object"}'])
def test_request_format_accepts_json_and_schemas(fmt):
    req = GenerateRequest(model="m", format=fmt)
    assert req.format == (json.loads(fmt) if isinstance(fmt, str) and fmt.startswith("{") else fmt)


def test_request_format_takes_a_pydantic_model_class():
    class Answer(BaseModel):
        city: str

    assert ChatRequest(model="m", format=Answer).format == Answer.model_json_schema()


@pytest.mark.parametrize("fmt", ["xml", "JSON", 5, ["json"], "{not json"])
def test_request_bad_format(fmt):
    with pytest.raises(ValidationError) as exc_info:
        ChatRequest(model="m", format=fmt)
    assert "invalid format" in validation_message(exc_info)
    assert 'expected "json" or a valid JSON Schema object' in validation_message(exc_info)


def test_request_top_logprobs_range():
    assert ChatRequest(model="m", logprobs=True, top_logprobs=20).top_logprobs == 20
    assert GenerateRequest(model="m", top_logprobs=0).top_logprobs == 0
    for bad in (21, -1):
        with pytest.raises(ValidationError) as exc_info:
            ChatRequest(model="m", top_logprobs=bad)
        expected = "('top_logprobs',): Value error, top_logprobs must be between 0 and 20"
        assert expected in validation_message(exc_info)
    with pytest.raises(ValidationError, match="top_logprobs"):
        GenerateRequest(model="m", top_logprobs=True)


@pytest.mark.parametrize("keep_alive", ["5 minutes", "-1", "forever", True])
def test_request_bad_keep_alive(keep_alive):
    with pytest.raises(ValidationError) as exc_info:
        GenerateRequest(model="m", keep_alive=keep_alive)
    assert exc_info.value.errors()[0]["loc"] == ("keep_alive",)


def test_request_options_are_validated_once():
    req = ChatRequest(model="m", options={"temperature": 0, "num_ctx": 2048})
    assert isinstance(req.options, Options) and req.options.temperature == 0.0
    assert wire(req)["options"] == {"num_ctx": 2048, "temperature": 0.0}
    with pytest.raises(ValidationError) as exc_info:
        ChatRequest(model="m", options={"top_k": "many"})
    assert exc_info.value.errors()[0]["loc"] == ("options", "top_k")
    assert ChatRequest(model="m", options=Options(seed=1)).options.seed == 1


def test_generate_request_checks():
    with pytest.raises(ValidationError, match="raw mode does not support template, system, or context"):
        GenerateRequest(model="m", prompt="x", raw=True, system="s")
    assert GenerateRequest(model="m", prompt="x", raw=True).raw is True
    assert GenerateRequest(model="m", context=np.array([1, 2, 3])).context == [1, 2, 3]
    with pytest.raises(ValidationError, match="token ids"):
        GenerateRequest(model="m", context=[1, -2])
    with pytest.raises(ValidationError):
        GenerateRequest(model="m", context=["a"])


def test_chat_request_tools_take_functions_dicts_and_tools():
    def add(a: int, b: int) -> int:
        """Add two numbers.

        Args:
            a: First.
            b: Second.
        """
        return a + b

    as_dict = {"type": "function", "function": {"name": "sub", "parameters": {"type": "object", "properties": {}}}}
    req = ChatRequest(model="m", tools=[add, as_dict, Tool(function={"name": "mul"})])
    assert [t.function.name for t in req.tools] == ["add", "sub", "mul"]
    assert req.tools[0].function.parameters.required == ["a", "b"]
    assert ChatRequest(model="m", tool_choice={"type": "function", "function": {"name": "add"}}).tool_choice
    with pytest.raises(ValidationError, match="tool_choice"):
        ChatRequest(model="m", tool_choice="sometimes")
    with pytest.raises(ValidationError):
        ChatRequest(model="m", tools=add)  # a list is required


def test_chat_request_messages_keep_empty_content():
    req = ChatRequest(model="m", messages=[Message(role="assistant", content="", tool_calls=[]), {"role": "user"}])
    assert req.messages[0].content == "" and req.messages[0].tool_calls == []  # ollama-python drops these
    assert wire(req)["messages"][0] == {"role": "assistant", "content": ""}


def test_embed_request_checks():
    assert EmbedRequest(model="m", input="a").input == "a"
    assert EmbedRequest(model="m", input=("a", "b")).input == ["a", "b"]
    assert EmbedRequest(model="m").input is None  # loads the model only
    for bad in ([1, 2], 5, ["a", None]):
        with pytest.raises(ValidationError, match="invalid input type"):
            EmbedRequest(model="m", input=bad)
    with pytest.raises(ValidationError, match="dimensions must be >= 0"):
        EmbedRequest(model="m", input="a", dimensions=-1)
    assert wire(EmbedRequest(model="m", input="a", truncate=False, dimensions=0)) == {
        "model": "m",
        "input": "a",
        "truncate": False,
    }


def test_model_management_requests():
    assert ShowRequest(name="old-name").model == "old-name"  # the spec's deprecated field
    create = CreateRequest(model="new", from_="base", parameters=Options(temperature=0.2), license=["MIT", "X"])
    assert wire(create) == {
        "model": "new",
        "stream": True,
        "from": "base",
        "license": ["MIT", "X"],
        "parameters": {"temperature": 0.2},
    }
    assert CreateRequest.model_validate({"model": "n", "from": "b"}).from_ == "b"
    with pytest.raises(ValidationError, match='option "top_k" must be of type integer'):
        CreateRequest(model="n", parameters={"top_k": "x"})
    assert wire(CopyRequest(source="a", destination="b")) == {"source": "a", "destination": "b"}
    assert CopyRequest(source="a", destination="b")["source"] == "a"  # subscriptable, unlike ollama-python's
    with pytest.raises(ValidationError, match="destination is required"):
        CopyRequest(source="a", destination="")


# --- metrics ----------------------------------------------------------------------


def test_metrics_summary_text():
    metrics = Metrics(
        total_duration=2_345_678_901,
        load_duration=12_345_678,
        prompt_eval_count=26,
        prompt_eval_duration=130_000_000,
        eval_count=298,
        eval_duration=4_123_456_789,
    )
    assert metrics.summary() == (
        "total duration:       2.345678901s\n"
        "load duration:        12.345678ms\n"
        "prompt eval count:    26 token(s)\n"
        "prompt eval duration: 130ms\n"
        "prompt eval rate:     200.00 tokens/s\n"
        "eval count:           298 token(s)\n"
        "eval duration:        4.123456789s\n"
        "eval rate:            72.27 tokens/s"
    )


def test_metrics_summary_skips_unmeasured_values_and_works_on_responses():
    assert Metrics().summary() == ""
    resp = ChatResponse(model="m", message={"role": "assistant"}, done=True, eval_count=10, eval_duration=SECOND // 2)
    assert resp.summary().splitlines() == [
        "eval count:           10 token(s)",
        "eval duration:        500ms",
        "eval rate:            20.00 tokens/s",
    ]


# --- embeddings -------------------------------------------------------------------


def test_embed_response_as_array_is_zero_copy_when_given_an_array():
    matrix = np.arange(12, dtype=np.float32).reshape(3, 4) / 10
    resp = EmbedResponse.from_array(matrix, model="m", total_duration=5, prompt_eval_count=9)
    assert resp.as_array() is matrix
    assert np.shares_memory(resp.as_array(), matrix)
    assert resp.embeddings[1] == pytest.approx([0.4, 0.5, 0.6, 0.7])
    assert resp["model"] == "m" and resp.prompt_eval_count == 9
    resp.embeddings = [[1.0, 2.0]]  # replaced: the array no longer matches, so it is rebuilt
    assert resp.as_array().tolist() == [[1.0, 2.0]]


def test_embed_response_as_array_from_lists_and_conversions():
    resp = EmbedResponse(model="m", embeddings=[[1, 2], [3, 4]])
    array = resp.as_array()
    assert array.dtype == np.float32 and array.shape == (2, 2)
    assert EmbedResponse(model="m").as_array().shape == (0, 0)
    converted = EmbedResponse.from_array(np.ones((2, 3), dtype=np.float64))
    assert converted.as_array().dtype == np.float32  # converted once, then kept
    assert converted.as_array() is converted.as_array()
    with pytest.raises(ValueError, match="2-D"):
        EmbedResponse.from_array(np.ones(3, dtype=np.float32))
    # Equality compares the fields, not the cached arrays.
    assert EmbedResponse.from_array(np.ones((2, 2), np.float32), model="m") == EmbedResponse(
        model="m", embeddings=[[1.0, 1.0], [1.0, 1.0]]
    )


# --- errors -----------------------------------------------------------------------


def test_status_error_is_a_response_error():
    err = StatusError.not_found('model "llama9" not found, try pulling it first')
    assert isinstance(err, ResponseError)
    assert (err.status_code, err.status) == (404, "404 Not Found")
    assert err.error == err.error_message == 'model "llama9" not found, try pulling it first'
    assert str(err) == 'model "llama9" not found, try pulling it first (status code: 404)'
    assert StatusError.bad_request("x").status_code == 400
    assert StatusError.internal("x").status_code == 500
    assert StatusError(503).error == "503 Service Unavailable"  # no message: the status
    with pytest.raises(ResponseError) as exc_info:  # the ollama-python idiom catches every StatusError
        raise StatusError.not_found("gone")
    assert exc_info.value.status_code == 404


def test_response_error_keeps_ollama_python_behaviour():
    err = ResponseError('{"error": "model is required"}', 400)
    assert err.error == "model is required" and err.status_code == 400
    assert str(err) == "model is required (status code: 400)"
    assert ResponseError("plain").status_code == -1
    assert RequestError("no model").error == "no model"


def test_errors_pickle():
    for err in (
        StatusError(400, error_message="bad"),
        ResponseError("x", 418),
        RequestError("r"),
        AuthorizationError(401, "401 Unauthorized", "https://example.com/signin"),
    ):
        copy = pickle.loads(pickle.dumps(err))
        assert type(copy) is type(err) and str(copy) == str(err)
    auth = pickle.loads(pickle.dumps(AuthorizationError(401, "unauthorized", "https://example.com/signin")))
    assert auth.signin_url == "https://example.com/signin" and isinstance(auth, ResponseError)
