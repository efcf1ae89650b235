"""From the API's Options to the engine's RunnerConfig, SamplingParams and CompletionJob.

Precedence, as Ollama: built-in defaults, then the model's stored
parameters, then the request's options.
"""

from __future__ import annotations

import os
from typing import Any

from ..engine import CompletionJob, RunnerConfig, SamplingParams
from ..engine.adapters import AdapterSet, adapter_set, default_set
from ..engine.attention import flash_attn_setting
from ..engine.speculation import SpecParams, resolve
from ..errors import StatusError
from ..prompting import Prompt
from ..types import ChatRequest, Duration, GenerateRequest, Options, default_options
from ..types.options import rpc_endpoints

# Parallel sequence slots per loaded model (continuous batching).
DEFAULT_NUM_PARALLEL = 4


def effective_options(model_params: dict | None, request: Options | dict | None) -> Options:
    """Defaults < the model's parameters layer < the request's options."""
    return default_options().merge(Options.from_map(model_params)).merge(request)


def runner_config(opts: Options) -> RunnerConfig:
    """The load-time part of ``opts``: a different result means a reload."""
    n_parallel = int(os.environ.get("LLAMANATIVE_NUM_PARALLEL", DEFAULT_NUM_PARALLEL))
    return RunnerConfig(
        n_ctx=opts.num_ctx or 4096,
        n_batch=opts.num_batch or 512,
        n_parallel=max(1, n_parallel),
        n_gpu_layers=-1 if opts.num_gpu is None else opts.num_gpu,
        main_gpu=opts.main_gpu or 0,
        use_mmap=True if opts.use_mmap is None else opts.use_mmap,
        n_threads=opts.num_thread or 0,
        flash_attn=flash_attn_setting(),
        rpc=tuple(opts.rpc_servers if opts.rpc_servers is not None else rpc_servers_setting()),
    )


def rpc_servers_setting() -> list[str]:
    """``LLAMANATIVE_RPC_SERVERS``: comma-separated ``host:port`` RPC servers for every model (default none).

    Raises:
        StatusError: 400 for a malformed endpoint.
    """
    try:
        return rpc_endpoints("LLAMANATIVE_RPC_SERVERS", os.environ.get("LLAMANATIVE_RPC_SERVERS", ""))
    except ValueError as exc:
        raise StatusError.bad_request(str(exc)) from exc


def sampling_params(opts: Options, **grammar: Any) -> SamplingParams:
    """The per-request sampler settings of ``opts`` (plus grammar fields from the prompting layer)."""
    given: dict[str, Any] = {
        "temperature": opts.temperature,
        "top_k": opts.top_k,
        "top_p": opts.top_p,
        "typical_p": opts.typical_p,
        "repeat_last_n": opts.repeat_last_n,
        "repeat_penalty": opts.repeat_penalty,
        "presence_penalty": opts.presence_penalty,
        "frequency_penalty": opts.frequency_penalty,
    }
    return SamplingParams(
        **{k: v for k, v in given.items() if v is not None},  # the defaults layer sets them all
        min_p=opts.min_p or 0.0,
        seed=-1 if opts.seed is None else opts.seed,
        **grammar,
    )


def keep_alive_seconds(value: Duration | None) -> float:
    """Seconds to keep a model loaded: the request's value, else ``LLAMANATIVE_KEEP_ALIVE``, else 5 minutes."""
    d = value if value is not None else Duration.parse_env(os.environ.get("LLAMANATIVE_KEEP_ALIVE"))
    return d.seconds()


def top_count(logprobs: bool | None, top_logprobs: int | None) -> int:
    """The engine's setting: -1 = no logprobs, else how many alternatives per token."""
    if not logprobs:
        return -1
    return top_logprobs or 0


def spec_params(opts: Options, has_draft: bool = False) -> SpecParams | None:
    """The job's speculative decoding: ``spec_type``, else ``LLAMANATIVE_SPECULATIVE``, else ``draft-simple``
    for a model stored with a draft model (``has_draft``), else none.

    Raises:
        StatusError: 400 for an unknown or unsupported type, bounds out of range, or ``draft-simple`` for a
            model without a draft model.
    """
    spec_type = opts.spec_type
    source = "option spec_type"
    if spec_type is None:
        spec_type, source = os.environ.get("LLAMANATIVE_SPECULATIVE", ""), "LLAMANATIVE_SPECULATIVE"
        if not spec_type and has_draft:
            spec_type, source = "draft-simple", "the model's draft model"
    if "draft-simple" in spec_type and not has_draft:
        raise StatusError.bad_request(
            f"{source}: draft-simple needs a draft model, and this model has none; "
            "create it with a draft (Client.create(..., draft=PATH), a Modelfile's DRAFT line)"
        )
    try:
        return resolve(
            spec_type,
            n_max=opts.spec_draft_max,
            n_min=opts.spec_draft_min,
            ngram_n=opts.spec_ngram_size_n,
            ngram_m=opts.spec_ngram_size_m,
            min_hits=opts.spec_ngram_min_hits,
        )
    except ValueError as exc:
        raise StatusError.bad_request(f"{source}: {exc}") from exc


def lora_set(opts: Options, n_adapters: int) -> tuple[tuple[int, float], ...]:
    """The LoRA adapters a request is decoded with: its ``lora`` option (adapters it leaves out at scale 0,
    as llama-server), else all ``n_adapters`` of the model at scale 1.0 (as Ollama applies ``ADAPTER``).

    Raises:
        StatusError: 400 for an id the model has no adapter for.
    """
    if opts.lora is None:
        return default_set(n_adapters).lora
    for entry in opts.lora:
        if entry["id"] >= n_adapters:
            have = f"{n_adapters} LoRA adapter(s) (ids 0..{n_adapters - 1})" if n_adapters else "no LoRA adapters"
            raise StatusError.bad_request(f'option "lora": there is no adapter {entry["id"]}; the model has {have}')
    return adapter_set((entry["id"], entry["scale"]) for entry in opts.lora).lora


def adapters_of(opts: Options, n_adapters: int, n_cvecs: int = 0, n_layer: int = 0) -> AdapterSet:
    """The LoRA adapters (:func:`lora_set`) and control vectors a request is decoded with: its
    ``control_vectors`` option (vectors it leaves out at scale 0), else all ``n_cvecs`` of the model at scale
    1.0 (as llama-server's ``--control-vector``), on the layers of ``control_vector_layer_range`` (default every
    one of the model's ``n_layer``).

    Raises:
        StatusError: 400 for an id the model has no adapter or control vector for, or layers it does not have.
    """
    lora = lora_set(opts, n_adapters)
    if opts.control_vectors is None:
        cvec = default_set(0, n_cvecs).cvec
    else:
        for entry in opts.control_vectors:
            if entry["id"] >= n_cvecs:
                have = f"{n_cvecs} control vector(s) (ids 0..{n_cvecs - 1})" if n_cvecs else "no control vectors"
                raise StatusError.bad_request(
                    f'option "control_vectors": there is no control vector {entry["id"]}; the model has {have}'
                )
        cvec = tuple((entry["id"], entry["scale"]) for entry in opts.control_vectors)
    first, last = opts.control_vector_layer_range or (1, n_layer)
    if last > n_layer:
        raise StatusError.bad_request(
            f'option "control_vector_layer_range": [{first}, {last}] ends after the model\'s {n_layer} layers'
        )
    return adapter_set(lora, cvec, (first, last))


def completion_job(
    req: ChatRequest | GenerateRequest,
    opts: Options,
    prompt: Prompt,
    per_token: bool = True,
    n_adapters: int = 0,
    *,
    has_draft: bool = False,
    n_cvecs: int = 0,
    n_layer: int = 0,
) -> CompletionJob:
    """The engine job for a chat or generate request: sampler, limits, stops, context shift, logprobs,
    whether the caller takes the text token by token, which of the model's ``n_adapters`` LoRA
    adapters and ``n_cvecs`` control vectors (over its ``n_layer`` layers) it is decoded with, and its
    speculative decoding (``has_draft``: the model has a draft model)."""
    return CompletionJob(
        prompt.tokens,
        sampling_params(opts, **prompt.grammar),
        -1 if opts.num_predict is None else opts.num_predict,
        tuple(opts.stop or ()) + prompt.stops,
        shift=req.shift is not False,
        n_keep=4 if opts.num_keep is None else opts.num_keep,
        logprobs=top_count(req.logprobs, req.top_logprobs),
        per_token=per_token,
        media=prompt.media,
        spec=spec_params(opts, has_draft),
        adapters=adapters_of(opts, n_adapters, n_cvecs, n_layer),
    )
