"""``Options``: model options, as the spec's ``api.Options`` (Runner + runtime).

Every field is optional; ``None`` means "not set". Options are layered
defaults → model parameters → request options::

    opts = default_options().merge(model_params).merge(request.options)

Load-time (Runner) options decide how the model is loaded; a change in
:meth:`Options.load_options` means the model must be reloaded. Runtime options
apply per request.

Types are checked as Go's ``Options.FromMap`` checks them: an integer option
takes an ``int`` (or a float with an integral value, as JSON numbers are), a
float option takes an ``int`` or ``float``, a bool option takes a ``bool``
only, ``stop`` takes a list of strings (a single string is taken as a list of
one). Bools are never numbers. Values outside the range the spec implies are
errors that name the option.

Unknown keys are ignored with a warning on the ``"llamanative"`` logger, as
Ollama's server does. The keys that ollama-python's ``Options`` still has but
the server ignores (``numa``, ``low_vram``, ``f16_kv``, ``logits_all``,
``vocab_only``, ``use_mlock``, ``embedding_only``, ``mirostat``,
``mirostat_tau``, ``mirostat_eta``, ``tfs_z``, ``penalize_newline``) are
accepted and ignored with a warning too.
"""

from __future__ import annotations

import logging
import math
import numbers
from collections.abc import Mapping
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from ..errors import StatusError
from .base import SubscriptableBaseModel

__all__ = [
    "LEGACY_OPTIONS",
    "LoadOptions",
    "Options",
    "REQUEST_ONLY",
    "RUNNER_OPTIONS",
    "default_options",
    "format_params",
]

_log = logging.getLogger("llamanative")

LEGACY_OPTIONS = frozenset(
    {
        "numa",
        "low_vram",
        "f16_kv",
        "logits_all",
        "vocab_only",
        "use_mlock",
        "embedding_only",
        "mirostat",
        "mirostat_tau",
        "mirostat_eta",
        "tfs_z",
        "penalize_newline",
    }
)
"""Option names that ollama-python accepts and the server ignores."""

# Option name -> (kind, check, what the check requires). kind is one of
# "int", "float", "bool", "string", "strings", "lora" (id/scale objects), "layers" ([first, last]),
# "endpoints" ("host:port" strings).
_INF = math.inf
_SPEC: dict[str, tuple[str, Any, str]] = {
    # Runner (load-time)
    "num_ctx": ("int", lambda v: v >= 1, "must be >= 1"),
    "num_batch": ("int", lambda v: v >= 1, "must be >= 1"),
    "num_gpu": ("int", lambda v: v >= -1, "must be -1 (auto) or >= 0"),
    "main_gpu": ("int", lambda v: v >= 0, "must be >= 0"),
    "use_mmap": ("bool", None, ""),
    "num_thread": ("int", lambda v: v >= 0, "must be >= 0 (0 = auto)"),
    # llama.cpp RPC servers holding layers (a llamanative extension, llama-server's --rpc)
    "rpc_servers": ("endpoints", None, ""),
    # runtime
    "num_keep": ("int", lambda v: v >= -1, "must be -1 (whole prompt) or >= 0"),
    "seed": ("int", None, ""),
    "num_predict": ("int", lambda v: v >= -2, "must be -1 (no limit), -2 (fill the context) or >= 0"),
    "top_k": ("int", lambda v: v >= 0, "must be >= 0"),
    "top_p": ("float", lambda v: 0 <= v <= 1, "must be between 0 and 1"),
    "min_p": ("float", lambda v: 0 <= v <= 1, "must be between 0 and 1"),
    "typical_p": ("float", lambda v: 0 <= v <= 1, "must be between 0 and 1"),
    "repeat_last_n": ("int", lambda v: v >= -1, "must be -1 (num_ctx) or >= 0"),
    "temperature": ("float", lambda v: 0 <= v < _INF, "must be >= 0"),
    "repeat_penalty": ("float", lambda v: 0 <= v < _INF, "must be >= 0"),
    "presence_penalty": ("float", math.isfinite, "must be a finite number"),
    "frequency_penalty": ("float", math.isfinite, "must be a finite number"),
    "stop": ("strings", None, ""),
    # LoRA adapters of the model and their scales, as llama-server's per-request "lora"
    "lora": ("lora", None, ""),
    # control vectors of the model, their scales, and the layers they apply to (llama-server's
    # --control-vector-scaled and --control-vector-layer-range)
    "control_vectors": ("lora", None, ""),
    "control_vector_layer_range": ("layers", None, ""),
    # speculative decoding (llama-server's --spec-* settings)
    "spec_type": ("string", None, ""),
    "spec_draft_max": ("int", lambda v: 1 <= v <= 1024, "must be between 1 and 1024"),
    "spec_draft_min": ("int", lambda v: 0 <= v <= 1024, "must be between 0 and 1024"),
    "spec_ngram_size_n": ("int", lambda v: 0 <= v <= 1024, "must be between 0 (default) and 1024"),
    "spec_ngram_size_m": ("int", lambda v: 0 <= v <= 1024, "must be between 0 (default) and 1024"),
    "spec_ngram_min_hits": ("int", lambda v: 0 <= v <= 65535, "must be between 0 (default) and 65535"),
}

REQUEST_ONLY = {
    "lora": "parameter 'lora' is a request option, not a model parameter: a model's adapters apply at "
    "scale 1.0 unless a request's options say otherwise",
    "control_vectors": "parameter 'control_vectors' is a request option, not a model parameter: a model's "
    "control vectors apply at scale 1.0 unless a request's options say otherwise",
    "control_vector_layer_range": "parameter 'control_vector_layer_range' is a request option, not a model "
    "parameter: a model's control vectors apply to every layer unless a request's options say otherwise",
}
"""Options a request may give but a model may not store (its adapters and control vectors are chosen per request),
with the error of a model parameter of that name."""

RUNNER_OPTIONS = ("num_ctx", "num_batch", "num_gpu", "main_gpu", "use_mmap", "num_thread", "rpc_servers")
"""The load-time (Runner) option names, in :class:`LoadOptions` order."""


class _OptionError(ValueError):
    """A bad option value; the message names the option, as Go's errors do."""


def _check(key: str, value: Any) -> Any:
    """``value`` converted to the option's type; ``_OptionError`` if it is wrong."""
    kind, ok, requirement = _SPEC[key]
    if value is None:
        return None
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise _OptionError(f'option "{key}" must be of type integer')
        if isinstance(value, numbers.Integral):
            value = int(value)
        elif math.isfinite(value) and float(value).is_integer():
            value = math.trunc(value)
        else:
            raise _OptionError(f'option "{key}" must be of type integer, got {value!r}')
    elif kind == "float":
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise _OptionError(f'option "{key}" must be of type float32')
        value = float(value)
    elif kind == "bool":
        if not isinstance(value, bool):
            raise _OptionError(f'option "{key}" must be of type boolean')
    elif kind == "string":
        if not isinstance(value, str):
            raise _OptionError(f'option "{key}" must be of type string')
    elif kind == "lora":
        value = _lora_value(key, value, "control vector" if key == "control_vectors" else "adapter")
    elif kind == "layers":
        value = _layer_range(key, value)
    elif kind == "endpoints":
        value = rpc_endpoints(key, value)
    else:  # a list of strings
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise _OptionError(f'option "{key}" must be of type array')
        if not all(isinstance(s, str) for s in value):
            raise _OptionError(f'option "{key}" must be an array of strings')
        value = list(value)
    if ok is not None and not ok(value):
        raise _OptionError(f'option "{key}" {requirement}, got {value!r}')
    return value


def _lora_value(key: str, value: Any, noun: str = "adapter") -> list[dict[str, Any]]:
    """``[{"id": int, "scale": float}, ...]`` from what a request gave (objects with ``id`` and ``scale``)."""
    what = f'option "{key}" must be an array of {{"id": <{noun} index>, "scale": <number>}} objects'
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise _OptionError(what)
    out: list[dict[str, Any]] = []
    for i, item in enumerate(value):
        if isinstance(item, BaseModel):
            item = item.model_dump()
        if not isinstance(item, Mapping) or set(item) != {"id", "scale"}:
            raise _OptionError(f"{what}; item {i} is {item!r}")
        index, scale = item["id"], item["scale"]
        if isinstance(index, bool) or not isinstance(index, numbers.Real) or not float(index).is_integer():
            raise _OptionError(f'option "{key}": item {i} has id {index!r}, not an integer')
        if isinstance(scale, bool) or not isinstance(scale, numbers.Real) or not math.isfinite(scale):
            raise _OptionError(f'option "{key}": item {i} has scale {scale!r}, not a finite number')
        index = int(float(index))
        if index < 0:
            raise _OptionError(f'option "{key}": item {i} has id {index!r}; {noun} ids start at 0')
        if any(e["id"] == index for e in out):
            raise _OptionError(f'option "{key}": {noun} {index} is given twice')
        out.append({"id": index, "scale": float(scale)})
    return out


def _layer_range(key: str, value: Any) -> list[int]:
    """``[first, last]`` (integers, ``1 <= first <= last``) from what a request gave."""
    what = f'option "{key}" must be an array of two layer numbers [first, last], 1 <= first <= last'
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)) or len(value) != 2:
        raise _OptionError(f"{what}, got {value!r}")
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) or not float(v).is_integer():
            raise _OptionError(f"{what}, got {value!r}")
        out.append(int(float(v)))
    if not 1 <= out[0] <= out[1]:
        raise _OptionError(f"{what}, got {value!r}")
    return out


def rpc_endpoints(key: str, value: Any) -> list[str]:
    """``host:port`` strings (a list, or one comma-separated string), each with a port in 1..65535."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(v, str) for v in items):
        raise _OptionError(f'option "{key}" must be an array of "host:port" strings, got {value!r}')
    out: list[str] = []
    for item in (part.strip() for v in items for part in v.split(",")):
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise _OptionError(f'option "{key}": {item!r} is not "host:port" with a port from 1 to 65535')
        if item not in out:
            out.append(item)
    return out


class LoadOptions(NamedTuple):
    """The load-time (Runner) options: a hashable key for deciding on a reload."""

    num_ctx: int | None
    num_batch: int | None
    num_gpu: int | None
    main_gpu: int | None
    use_mmap: bool | None
    num_thread: int | None
    rpc_servers: tuple[str, ...] | None


class Options(SubscriptableBaseModel):
    """Model options (``api.Options``); ``None`` = not set.

    >>> o = Options(temperature=0, stop="###")
    >>> o.temperature, o.stop
    (0.0, ['###'])
    >>> o.model_dump_json()
    '{"temperature":0.0,"stop":["###"]}'
    """

    model_config = ConfigDict(validate_assignment=True)

    # Runner: options that must be set when the model is loaded.
    num_ctx: int | None = None
    "Context window size in tokens (per sequence)."

    num_batch: int | None = None
    "Maximum number of tokens decoded in one batch."

    num_gpu: int | None = None
    "Number of layers to offload to the GPU; -1 = automatic, 0 = CPU only."

    main_gpu: int | None = None
    "The GPU used for small tensors and intermediate results."

    use_mmap: bool | None = None
    "Map the model file into memory instead of reading it; None = automatic."

    num_thread: int | None = None
    "Number of CPU threads; 0 = automatic."

    rpc_servers: list[str] | None = None
    """llama.cpp RPC servers (``"host:port"``, ``llamanative rpc-server``) to place layers on, before this
    machine's GPUs; ``num_gpu`` layers are offloaded to them. Default ``LLAMANATIVE_RPC_SERVERS``
    (comma-separated); ``[]`` uses none. A llamanative extension (llama-server's ``--rpc``)."""

    # Runtime: options used per request.
    num_keep: int | None = None
    "Number of prompt tokens kept when the context is shifted; -1 = all."

    seed: int | None = None
    "Random seed; -1 = a random seed."

    num_predict: int | None = None
    "Maximum number of tokens to generate; -1 = no limit, -2 = until the context is full."

    top_k: int | None = None
    "Sample from the k most likely tokens; 0 = disabled."

    top_p: float | None = None
    "Nucleus sampling: smallest token set with this cumulative probability; 1 = disabled."

    min_p: float | None = None
    "Drop tokens less likely than this fraction of the most likely one; 0 = disabled."

    typical_p: float | None = None
    "Locally typical sampling; 1 = disabled."

    repeat_last_n: int | None = None
    "How many recent tokens the penalties look at; 0 = disabled, -1 = num_ctx."

    temperature: float | None = None
    "Sampling temperature; 0 = greedy."

    repeat_penalty: float | None = None
    "Penalty for repeated tokens; 1 = disabled."

    presence_penalty: float | None = None
    "Penalty for tokens already present; 0 = disabled."

    frequency_penalty: float | None = None
    "Penalty proportional to how often a token appeared; 0 = disabled."

    stop: list[str] | None = None
    "Stop sequences: generation stops before any of them."

    lora: list[dict[str, Any]] | None = None
    """The model's LoRA adapters this request is decoded with, and their scales, as llama-server's ``lora``:
    ``[{"id": 0, "scale": 0.5}]``, where ``id`` is the adapter's index among the model's (the order of its
    ``ADAPTER`` lines). An adapter left out has scale 0; ``[]`` is the base model. Default (not set): every
    adapter at scale 1.0, as Ollama applies ``ADAPTER``. A request option only: not a stored parameter."""

    control_vectors: list[dict[str, Any]] | None = None
    """The model's control vectors this request is decoded with, and their scales (llama-server's
    ``--control-vector-scaled``): ``[{"id": 0, "scale": 0.8}]``, where ``id`` is the vector's index among the
    model's (the order of its ``CONTROLVECTOR`` lines); the vectors are summed. A vector left out has scale 0;
    ``[]`` is none. Default (not set): every vector at scale 1.0, as ``--control-vector``. A request option
    only: not a stored parameter."""

    control_vector_layer_range: list[int] | None = None
    """The layers the control vectors are added to, ``[first, last]``, both included, ``1 <= first <= last <=``
    the model's layer count (llama-server's ``--control-vector-layer-range``). Default: every layer. A request
    option only."""

    # Speculative decoding (llamanative's; llama-server's --spec-* settings). Output is unchanged by it.
    spec_type: str | None = None
    """Speculative decoding: ``"none"``, ``"auto"`` (n-gram drafts while they are mostly accepted), or
    n-gram type names, comma-separated (``ngram-map-k``, ``ngram-simple``, ``ngram-map-k4v``, ``ngram-mod``,
    ``ngram-cache``). Default: ``LLAMANATIVE_SPECULATIVE``, else none."""

    spec_draft_max: int | None = None
    "Most draft tokens verified per decode (default 32)."

    spec_draft_min: int | None = None
    "Drafts shorter than this are not verified (default 0)."

    spec_ngram_size_n: int | None = None
    "Length of the n-gram looked up in the context; 0 = llama.cpp's default of each type."

    spec_ngram_size_m: int | None = None
    """Length of the m-gram drafted after a match; 0 = ``spec_draft_max`` (at least the n-gram's length) for the
    ``ngram-simple``/``ngram-map-*`` types, llama.cpp's default (64) for ``ngram-mod``."""

    spec_ngram_min_hits: int | None = None
    "Times an n-gram must have occurred before it drafts; 0 = llama.cpp's default."

    # No omitempty here: None is "not set", and 0 is a real value (temperature=0 is greedy).

    @model_validator(mode="before")
    @classmethod
    def _drop_unknown(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            unknown = [k for k in data if k not in _SPEC]
            if unknown:
                for key in unknown:
                    if key in LEGACY_OPTIONS:
                        _log.warning("option %r is not supported by llamanative and is ignored", key)
                    else:
                        _log.warning("invalid option provided: %r", key)
                data = {k: v for k, v in data.items() if k in _SPEC}
        return data

    @field_validator("*", mode="before")
    @classmethod
    def _check_value(cls, value: Any, info: Any) -> Any:
        return _check(info.field_name, value)

    @classmethod
    def from_map(cls, values: Mapping[str, Any] | None) -> Options:
        """Options from a plain mapping, as Go's ``Options.FromMap``.

        Unknown keys are logged and ignored; ``None`` values are skipped.

        Raises:
            StatusError: 400, naming the option, for a value of the wrong
                type (``option "top_k" must be of type integer``) or out of range.
        """
        if values is None:
            return cls()
        if not isinstance(values, Mapping):
            raise StatusError.bad_request(f"options must be an object, not {type(values).__name__}")
        try:
            return cls.model_validate({k: v for k, v in values.items() if v is not None})
        except ValidationError as exc:
            raise StatusError.bad_request(_first_message(exc)) from exc

    def merge(self, other: Options | Mapping[str, Any] | None) -> Options:
        """A copy of these options with every option set in ``other`` taking precedence.

        >>> default_options().merge({"temperature": 0.2}).temperature
        0.2
        """
        if other is None:
            return self.model_copy()
        if not isinstance(other, Options):
            other = Options.from_map(other)
        update = {k: getattr(other, k) for k in other.model_fields_set if getattr(other, k) is not None}
        merged = self.model_copy(update=update)
        if merged.stop is not None:
            merged.stop = list(merged.stop)  # share no list with self or other
        return merged

    def load_options(self) -> LoadOptions:
        """The load-time options, hashable: a different key means the model must be reloaded."""
        rpc = None if self.rpc_servers is None else tuple(self.rpc_servers)
        return LoadOptions(
            self.num_ctx, self.num_batch, self.num_gpu, self.main_gpu, self.use_mmap, self.num_thread, rpc
        )

    def is_set(self, key: str) -> bool:
        """True if the option ``key`` has a value."""
        return key in _SPEC and getattr(self, key) is not None


def _first_message(exc: ValidationError) -> str:
    err = exc.errors()[0]
    original = (err.get("ctx") or {}).get("error")
    return str(original) if isinstance(original, Exception) else err["msg"]


def default_options() -> Options:
    """The reference defaults (Go ``api.DefaultOptions``).

    ``num_ctx`` is 4096 (Ollama's default for machines with < 24 GiB of
    VRAM); ``main_gpu``, ``use_mmap`` and ``stop`` stay unset (automatic).
    """
    return Options(
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
        num_ctx=4096,
        num_batch=512,
        num_gpu=-1,
        num_thread=0,
    )


_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def format_params(params: Mapping[str, list[str]]) -> dict[str, Any]:
    """Convert text parameter values (a Modelfile's ``PARAMETER`` lines, CLI ``/set``) to typed values.

    Go's ``api.FormatParams``: each option takes its first value, except
    ``stop``, which takes them all. Bools read as Go's ``strconv.ParseBool``.
    Legacy ollama-python options are dropped with a warning.

    >>> format_params({"temperature": ["0.5"], "num_ctx": ["8192"], "stop": ["a", "b"]})
    {'temperature': 0.5, 'num_ctx': 8192, 'stop': ['a', 'b']}

    Raises:
        StatusError: 400 for an unknown parameter (``unknown parameter 'x'``),
            a missing value, or a value that does not parse or is out of range.
    """
    out: dict[str, Any] = {}
    for key, values in params.items():
        if key in LEGACY_OPTIONS:
            _log.warning("parameter %r is not supported by llamanative and is ignored", key)
            continue
        if key not in _SPEC:
            raise StatusError.bad_request(f"unknown parameter '{key}'")
        if isinstance(values, str):
            values = [values]
        if not values:
            raise StatusError.bad_request(f"missing value for parameter '{key}'")
        kind = _SPEC[key][0]
        if key in REQUEST_ONLY:
            raise StatusError.bad_request(REQUEST_ONLY[key])
        text = values[0]
        try:
            if kind == "int":
                value: Any = int(text, 10)
            elif kind == "float":
                value = float(text)
            elif kind == "bool":
                if text not in _TRUE and text not in _FALSE:
                    raise ValueError(text)
                value = text in _TRUE
            else:
                value = list(values)
        except ValueError:
            raise StatusError.bad_request(f"invalid {kind} value {list(values)} for parameter '{key}'") from None
        try:
            out[key] = _check(key, value)
        except _OptionError as exc:
            raise StatusError.bad_request(str(exc)) from None
    return out
