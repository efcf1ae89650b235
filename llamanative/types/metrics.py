"""``Metrics``: timings and token counts of a generation (Go ``api.Metrics``).

Durations are integer **nanoseconds**, on the wire and in Python, as in the
spec and ollama-python. The fields sit at the top level of ``ChatResponse``
and ``GenerateResponse``, which inherit from :class:`Metrics`.
"""

from __future__ import annotations

from typing import Any

from .base import SubscriptableBaseModel
from .duration import format_go_duration

__all__ = ["Metrics"]


class Metrics(SubscriptableBaseModel):
    """Timings (ns) and token counts; ``None`` (or 0) = not measured.

    >>> m = Metrics(total_duration=1_500_000_000, eval_count=20, eval_duration=400_000_000)
    >>> print(m.summary())
    total duration:       1.5s
    eval count:           20 token(s)
    eval duration:        400ms
    eval rate:            50.00 tokens/s
    """

    total_duration: int | None = None
    "Time spent on the whole request, in nanoseconds."

    load_duration: int | None = None
    "Time spent loading the model, in nanoseconds."

    prompt_eval_count: int | None = None
    "Number of prompt tokens evaluated."

    prompt_eval_duration: int | None = None
    "Time spent evaluating the prompt, in nanoseconds."

    eval_count: int | None = None
    "Number of tokens generated."

    eval_duration: int | None = None
    "Time spent generating, in nanoseconds."

    draft_count: int | None = None
    """Tokens drafted by speculative decoding (``spec_type``) and verified by the model; not set without it.
    llamanative's own field (llama-server's ``timings.draft_n``)."""

    draft_accepted_count: int | None = None
    """Of ``draft_count``, the tokens the model accepted. They are part of ``eval_count``, which counts every
    generated token with or without speculation (llama-server's ``timings.draft_n_accepted``)."""

    _omitempty = frozenset(
        {
            "total_duration",
            "load_duration",
            "prompt_eval_count",
            "prompt_eval_duration",
            "eval_count",
            "eval_duration",
            "draft_count",
            "draft_accepted_count",
        }
    )

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        # Go embeds Metrics after the response's own fields: list them last in JSON too.
        own = [n for n in cls.model_fields if n not in Metrics.model_fields]
        cls._key_order = (*own, *Metrics.model_fields)

    def summary(self) -> str:
        """The statistics as ``ollama run --verbose`` prints them (Go ``Metrics.Summary``).

        One line per measured value: total and load duration, prompt eval
        count, duration and rate, eval count, duration and rate. Durations are
        in Go's format (``1.5s``, ``400ms``); rates in tokens/s with two decimals.
        """
        lines = []
        total, load = self.total_duration or 0, self.load_duration or 0
        prompt_count, prompt_ns = self.prompt_eval_count or 0, self.prompt_eval_duration or 0
        count, ns = self.eval_count or 0, self.eval_duration or 0
        if total > 0:
            lines.append(f"total duration:       {format_go_duration(total)}")
        if load > 0:
            lines.append(f"load duration:        {format_go_duration(load)}")
        if prompt_count > 0:
            lines.append(f"prompt eval count:    {prompt_count} token(s)")
        if prompt_ns > 0:
            lines.append(f"prompt eval duration: {format_go_duration(prompt_ns)}")
            lines.append(f"prompt eval rate:     {prompt_count / (prompt_ns / 1e9):.2f} tokens/s")
        if count > 0:
            lines.append(f"eval count:           {count} token(s)")
        if ns > 0:
            lines.append(f"eval duration:        {format_go_duration(ns)}")
            lines.append(f"eval rate:            {count / (ns / 1e9):.2f} tokens/s")
        if self.draft_count:
            accepted = self.draft_accepted_count or 0
            lines.append(
                f"draft tokens:         {self.draft_count} ({accepted} accepted, {accepted / self.draft_count:.0%})"
            )
        return "\n".join(lines)
