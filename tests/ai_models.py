"""Small model functions for the ``ai`` tests, defined the way users define models.

A *scripted* model answers each call with the next message of a script (a
function of the request may also be given); when streaming it sends each
text part in pieces of ``piece`` characters. It records the requests it got.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from llamanative.ai import (
    Genkit,
    Message,
    ModelInfo,
    ModelRequest,
    ModelResponse,
    ModelResponseChunk,
    ModelSupports,
    Part,
    ToolRequest,
)

FULL = ModelInfo(
    supports=ModelSupports(
        multiturn=True, tools=True, system_role=True, tool_choice=True, constrained="all", media=True
    )
)
NO_CONSTRAINED = ModelInfo(supports=ModelSupports(multiturn=True, tools=True, system_role=True, tool_choice=True))


def call(name: str, input: Any = None, ref: str | None = None) -> Part:
    """A tool-request part."""
    return Part(tool_request=ToolRequest(name=name, input=input, ref=ref))


def text(t: str) -> Part:
    return Part(text=t)


class Scripted:
    """A model function answering from a script: items are lists of parts, messages, or functions of the request."""

    def __init__(
        self, script: Sequence[Any], *, piece: int = 3, finish_reason: str = "stop", repeat_last: bool = False
    ) -> None:
        self.script = list(script)
        self.piece = piece
        self.finish_reason = finish_reason
        self.repeat_last = repeat_last
        self.requests: list[ModelRequest] = []

    @property
    def calls(self) -> int:
        return len(self.requests)

    def __call__(self, request: ModelRequest, on_chunk: Callable[[ModelResponseChunk], None] | None) -> ModelResponse:
        self.requests.append(request)
        i = len(self.requests) - 1
        if i >= len(self.script):
            if not self.repeat_last:
                raise AssertionError(f"model called {i + 1} times, script has {len(self.script)} answers")
            i = len(self.script) - 1
        item = self.script[i]
        if callable(item):
            item = item(request)
        if isinstance(item, str):
            item = [text(item)]
        msg = (
            item
            if isinstance(item, Message)
            else Message(
                role="model", content=[text(p) if isinstance(p, str) else p.model_copy(deep=True) for p in item]
            )
        )
        if on_chunk is not None:
            for p in msg.content:
                if p.is_text():
                    for k in range(0, len(p.text), self.piece):
                        on_chunk(ModelResponseChunk(content=[text(p.text[k : k + self.piece])]))
        return ModelResponse(message=msg, finish_reason=self.finish_reason)


def define(
    ai: Genkit, script: Sequence[Any], name: str = "test/scripted", info: ModelInfo = FULL, **kw: Any
) -> Scripted:
    """Define a scripted model on ``ai`` and return its function (for its recorded requests)."""
    fn = Scripted(script, **kw)
    ai.define_model(name, fn, info=info)
    return fn
