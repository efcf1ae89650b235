"""Chat-template rendering: random conversations and tools, the GGUFs' templates and common's built-ins.

Four targets, one a input:

- ``PromptPipeline.chat`` (what ``Client.chat`` calls) on vocab-only models:
  SmolLM2 with its own Jinja template, Gemma 3 (no template: ``common``'s
  ChatML fallback) and SmolLM2's header carrying the tests' Qwen3-style
  template (tools and thinking). Random messages (roles, content, thinking,
  tool calls, tool results), tools, ``tool_choice``, ``format``, ``think``,
  a context length that forces the oldest messages out.
- ``ChatTemplates(None, source).apply`` with a template made of a base
  template, the markers ``common`` picks its format-specific handlers by
  (Hermes, Qwen3-Coder, GPT-OSS, Mistral, Kimi, DeepSeek, ...) and random
  Jinja fragments (recursion, errors, filters, slicing), and a raw request;
  the output parser ``common`` returns then reads random model output
  (``ChatParser``).
- ``chat_apply_template``: llama.cpp's built-in (non-Jinja) formats by name.
- ``template_caps`` of the generated template.

Contract: ``PromptPipeline.chat`` gives a prompt or a typed error
(``StatusError`` 400); ``ChatTemplates`` gives a result, a ``ValueError``
(a bad template or request) or a ``RuntimeError`` (the template failed on
this conversation), as its docstring says; nothing crashes or hangs.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import atheris
from contract import call, check, has_surrogates
from gguf_header import KV, STRING, read_header, write_file
from models import model_path, qwen3_style_template, vocab_model

from llamanative import _core
from llamanative.prompting.pipeline import PromptPipeline
from llamanative.prompting.render import template_caps
from llamanative.types import Message, ThinkValue, Tool

TARGETS = [
    "llamanative/prompting/pipeline.py",
    "llamanative/prompting/render.py",
    "llamanative/prompting/messages.py",
    "llamanative/prompting/generic_tools.py",
]
ROLES = ["system", "user", "assistant", "tool", "User", "developer", "", "ipython", "function"]
WORDS = [
    "Hi",
    "<|im_start|>",
    "<|im_end|>",
    "<tool_call>",
    "</tool_call>",
    "<think>",
    "</think>",
    "{{ x }}",
    "{% if %}",
    "\n",
    "[TOOL_CALLS]",
    "<|channel|>",
    '{"name": "f", "arguments": {}}',
    "é",
    "😀",
    "\x00",
    "",
]
MARKERS = [
    "<tool_call>",
    "<function=",
    "<parameter=",
    "[TOOL_CALLS]",
    "[ARGS]",
    "[SYSTEM_PROMPT]",
    "[CALL_ID]",
    "<|channel|>",
    "in message.content or",
    "<|tool_calls_section_begin|>",
    "<|tool_call_begin|>",
    ">>>all",
    ">>>${recipient}",
    "<|START_TEXT|>",
    "<|START_ACTION|>",
    "List of tools: [",
    "<|tool_list_start|>",
    "<|role_sep|>",
    "<|message_sep|>",
    "]<]minimax[>[",
    "<invoke name=",
    "dsml_token",
    "DSML",
    "function_calls",
    "'<|tool_call>call:'",
    "Tool usage guidelines:",
    '<function name="',
    '<param name="',
    "<think>",
    "</think>",
    "<|python_tag|>",
    "<|eom_id|>",
    "<atem:function_calls>",
    "<|eom|>",
    "<|open|>",
    "<|close|>",
    "<|end_of_msg|>",
    "<role>ASSISTANT</role>",
    "<arg_key>",
    "You have access to the following functions in JSONSchema format",
    "<|im_start|>",
    "<start_of_turn>",
    "enable_thinking",
    "reasoning_content",
    "tool_calls",
    "<|tool▁calls▁begin|>",
]
FRAGMENTS = [
    "{{ messages | tojson }}",
    "{{ tools | tojson(indent=2) }}",
    "{{ raise_exception('no') }}",
    "{{ messages[0]['content'][::-1] }}",
    "{{ messages[0].content[1:3] }}",
    "{{ (messages | length) // 0 }}",
    "{{ 1 / 0 }}",
    "{% set ns = namespace(a=1) %}{{ ns.a }}",
    "{{ strftime_now('%Y-%m-%d') }}",
    "{% macro r(n) %}{{ r(n + 1) }}{% endmacro %}{{ r(0) }}",
    "{{ x.y.z }}",
    "{{ none.a }}",
    "{{ [] | first }}",
    "{% for m in messages %}{{ m.tool_calls[0].function.arguments | tojson }}{% endfor %}",
    "{{ messages[-1].content | trim | upper | replace('a', 'b') }}",
    "{% if messages %}{% endif",
    "{{ bos_token ~ eos_token }}",
    "{{ '%s' % 5 }}",
    "{{ range(2000) | join }}",
    "{{ 'x' * 2000 }}",
    "{%- for t in tools %}{{ t.function.parameters.properties | items | list }}{% endfor %}",
    "{{ add_generation_prompt }}",
    "{% generation %}x{% endgeneration %}",
    "{{ messages[99] }}",
    "{{ '\\xff' }}",
]
BUILTINS = [
    "chatml",
    "llama2",
    "llama2-sys",
    "mistral-v1",
    "mistral-v3",
    "mistral-v7",
    "phi3",
    "phi4",
    "zephyr",
    "gemma",
    "orion",
    "openchat",
    "vicuna",
    "deepseek",
    "deepseek2",
    "deepseek3",
    "command-r",
    "llama3",
    "chatglm3",
    "chatglm4",
    "minicpm",
    "exaone3",
    "exaone4",
    "rwkv-world",
    "granite",
    "gigachat",
    "megrez",
    "yandex",
    "bailing",
    "llama4",
    "smolvlm",
    "hunyuan-moe",
    "gpt-oss",
    "kimi-k2",
    "seed_oss",
    "grok-2",
    "pangu-embedded",
    "solar-open",
    "no-such-format",
    "",
]
BASE = (
    "{%- for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{%- endfor %}"
    "{%- if add_generation_prompt %}<|im_start|>assistant\n{%- endif %}"
)

_pipelines: dict[str, PromptPipeline] = {}
_sources: list[str] = []


def setup() -> None:
    _core.set_log_level("CRITICAL")
    for name in ("smollm2", "gemma3"):
        _pipelines[name] = PromptPipeline(vocab_model(name))
    # SmolLM2's header with the Qwen3-style template, the tensor data a sparse hole: a vocab-only model.
    header = read_header(model_path("smollm2"))
    header.kvs = [kv for kv in header.kvs if kv.key != b"tokenizer.chat_template"]
    header.kvs.append(KV(b"tokenizer.chat_template", STRING, qwen3_style_template().encode()))
    shm = "/dev/shm"
    path = Path(tempfile.mkdtemp(prefix="fuzz-chat-", dir=shm if os.path.isdir(shm) else None)) / "qwen3-style.gguf"
    write_file(path, header.encode(), header.data_size)
    _pipelines["qwen3_style"] = PromptPipeline(_core.Model(path, vocab_only=True))
    _sources.extend([BASE, qwen3_style_template(), vocab_model("smollm2").chat_template or BASE])


def _text(fdp: atheris.FuzzedDataProvider) -> str:
    if fdp.ConsumeIntInRange(0, 3) == 0:
        return fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, 40))
    return "".join(fdp.PickValueInList(WORDS) for _ in range(fdp.ConsumeIntInRange(0, 5)))


def _json_value(fdp: atheris.FuzzedDataProvider, depth: int = 0):
    kind = fdp.ConsumeIntInRange(0, 6 if depth < 3 else 3)
    if kind == 0:
        return _text(fdp)
    if kind == 1:
        return fdp.ConsumeIntInRange(-(2**70), 2**70)
    if kind == 2:
        return fdp.PickValueInList([None, True, False, 1.5, float("nan"), float("inf")])
    if kind == 3:
        return fdp.ConsumeFloat()
    if kind == 4:
        return [_json_value(fdp, depth + 1) for _ in range(fdp.ConsumeIntInRange(0, 3))]
    return {_text(fdp): _json_value(fdp, depth + 1) for _ in range(fdp.ConsumeIntInRange(0, 3))}


def _message(fdp: atheris.FuzzedDataProvider) -> dict:
    m: dict = {"role": fdp.PickValueInList(ROLES)}
    if fdp.ConsumeIntInRange(0, 5):
        m["content"] = _text(fdp) if fdp.ConsumeIntInRange(0, 7) else _json_value(fdp)
    if fdp.ConsumeIntInRange(0, 4) == 0:
        m["thinking"] = _text(fdp)
    if fdp.ConsumeIntInRange(0, 3) == 0:
        m["tool_calls"] = [
            {
                "function": {"name": _text(fdp), "arguments": _json_value(fdp)},
                **({"id": _text(fdp)} if fdp.ConsumeBool() else {}),
            }
            for _ in range(fdp.ConsumeIntInRange(0, 3))
        ]
    if fdp.ConsumeIntInRange(0, 4) == 0:
        m["tool_name"] = _text(fdp)
    return m


def _schema(fdp: atheris.FuzzedDataProvider, depth: int = 0) -> dict:
    kind = fdp.PickValueInList(["string", "integer", "number", "boolean", "object", "array", "null"])
    s: dict = {"type": kind}
    if kind == "object" and depth < 2:
        s["properties"] = {_text(fdp) or "p": _schema(fdp, depth + 1) for _ in range(fdp.ConsumeIntInRange(0, 3))}
        if fdp.ConsumeBool():
            s["required"] = list(s["properties"])
    elif kind == "array" and depth < 2:
        s["items"] = _schema(fdp, depth + 1)
    elif kind == "string" and fdp.ConsumeBool():
        s["enum"] = [_text(fdp) for _ in range(fdp.ConsumeIntInRange(0, 3))]
    return s


def _tool(fdp: atheris.FuzzedDataProvider) -> dict:
    fn: dict = {"name": fdp.PickValueInList(["get_weather", "f", "", "a b", "ü", "x" * 70, _text(fdp)])}
    if fdp.ConsumeBool():
        fn["description"] = _text(fdp)
    if fdp.ConsumeIntInRange(0, 3):
        fn["parameters"] = _schema(fdp) if fdp.ConsumeIntInRange(0, 4) else _json_value(fdp)
    return {"type": fdp.PickValueInList(["function", "function", "other"]), "function": fn}


def _typed(cls, raw):
    """``cls.model_validate(raw)``: None when the request types refuse it (as the client would)."""
    obj, err = call(cls.model_validate, raw)
    return obj


def _pipeline_chat(fdp: atheris.FuzzedDataProvider) -> None:
    pipe = _pipelines[fdp.PickValueInList(list(_pipelines))]
    messages = [m for m in (_typed(Message, _message(fdp)) for _ in range(fdp.ConsumeIntInRange(0, 6))) if m]
    tools = [t for t in (_typed(Tool, _tool(fdp)) for _ in range(fdp.ConsumeIntInRange(0, 3))) if t]
    choice = fdp.PickValueInList([None, "auto", "none", "required", {"type": "function", "function": {"name": "f"}}])
    fmt = fdp.PickValueInList([None, "json", "", "xml", 5, None, "schema"])
    if fmt == "schema":
        fmt = _schema(fdp)
    think_raw = fdp.PickValueInList([None, True, False, "low", "medium", "high", "max"])
    think = None if think_raw is None else ThinkValue(think_raw)
    texts = [m.content or "" for m in messages] + [m.thinking or "" for m in messages]
    bad_text = any(has_surrogates(t) for t in texts)
    prompt, err = call(
        pipe.chat,
        messages,
        system=fdp.PickValueInList([None, "Be brief.", _text(fdp)]),
        tools=tools,
        tool_choice=choice,
        format=fmt,
        think=think,
        n_ctx=fdp.PickValueInList([4096, 64, 16, 1]),
        truncate=fdp.ConsumeBool(),
        allow=(UnicodeEncodeError,) if bad_text else (),
    )
    if prompt is None:
        return
    check(prompt.tokens.ndim == 1 and len(prompt.tokens) > 0, "an empty prompt")


def _template(fdp: atheris.FuzzedDataProvider) -> str:
    src = fdp.PickValueInList(_sources)
    extra = []
    for _ in range(fdp.ConsumeIntInRange(0, 3)):
        extra.append("{# " + fdp.PickValueInList(MARKERS) + " #}")
    for _ in range(fdp.ConsumeIntInRange(0, 2)):
        extra.append(fdp.PickValueInList(FRAGMENTS))
    if fdp.ConsumeIntInRange(0, 5) == 0:
        extra.append(fdp.ConsumeUnicodeNoSurrogates(30))
    at = fdp.ConsumeIntInRange(0, len(src))
    return src[:at] + "".join(extra) + src[at:]


def _raw_template(fdp: atheris.FuzzedDataProvider) -> None:
    source = _template(fdp)
    tmpl, err = call(_core.ChatTemplates, None, source)
    if tmpl is None:
        check(isinstance(err, ValueError), f"ChatTemplates failed with {err!r}")
        return
    call(tmpl.caps)
    request: dict = {"messages": [_message(fdp) for _ in range(fdp.ConsumeIntInRange(0, 4))]}
    for m in request["messages"]:
        if "thinking" in m:
            m["reasoning_content"] = m.pop("thinking")
        for tc in m.get("tool_calls", []):
            tc["type"] = "function"
    if fdp.ConsumeBool():
        request["tools"] = [_tool(fdp) for _ in range(fdp.ConsumeIntInRange(0, 2))]
    for key, values in (
        ("tool_choice", ["auto", "none", "required", 5]),
        ("enable_thinking", [True, False, "yes"]),
        ("add_generation_prompt", [True, False]),
        ("continue_final_message", [True, "content", "reasoning_content", "x"]),
        ("reasoning_format", ["auto", "none", "deepseek", "nope"]),
        ("parallel_tool_calls", [True, False]),
        ("grammar", ['root ::= "a"', ""]),
        ("chat_template_kwargs", [{"reasoning_effort": "high"}, {"enable_thinking": False}, []]),
    ):
        if fdp.ConsumeIntInRange(0, 3) == 0:
            request[key] = fdp.PickValueInList(values)
    if fdp.ConsumeIntInRange(0, 3) == 0:
        request["json_schema"] = _schema(fdp)
    out, err = call(tmpl.apply, request, allow=(RuntimeError, UnicodeEncodeError))
    if out is not None:
        parser, _ = call(_core.ChatParser, out)
        if parser is not None:
            # RuntimeError: the output does not match the format (what OutputParser falls back on)
            call(parser.parse, fdp.ConsumeUnicodeNoSurrogates(200), partial=fdp.ConsumeBool(), allow=(RuntimeError,))


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    op = fdp.ConsumeIntInRange(0, 5)
    if op <= 2:
        _pipeline_chat(fdp)
    elif op <= 3:
        _raw_template(fdp)
    elif op == 4:
        messages = [
            {"role": fdp.PickValueInList(ROLES), "content": _text(fdp)} for _ in range(fdp.ConsumeIntInRange(0, 5))
        ]
        name = fdp.PickValueInList(BUILTINS) if fdp.ConsumeIntInRange(0, 3) else _template(fdp)
        bad = any(has_surrogates(m["content"]) for m in messages)
        call(
            _core.chat_apply_template,
            name,
            messages,
            add_assistant=fdp.ConsumeBool(),
            allow=(UnicodeEncodeError,) if bad else (),
        )
    else:
        call(template_caps, _template(fdp))
