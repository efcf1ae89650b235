"""The engine: owns llama.cpp contexts and the threads that drive them.

- :mod:`.scheduler` — which runners are loaded, keep_alive, eviction.
- :mod:`.runner` — one loaded model, one worker thread, one context.
- :mod:`.generation` — continuous batching of completion jobs over the slots.
- :mod:`.admission` — which slot a job takes, prefix sharing, parking.
- :mod:`.slots` — the sequence slots and the KV cells each holds.
- :mod:`.prompt_cache` — idle slots' sequences parked in RAM.
- :mod:`.embedding` — packed, pooled embedding decodes.
- :mod:`.attention` — the flash-attention setting of a generation context.
- :mod:`.sampling` — sampling parameters and the sampler chain.
- :mod:`.jobs` — what callers submit and the events they get back.
- :mod:`.system` — the llama.cpp commit and the compute devices.
- :mod:`.generate` — a plain single-sequence loop (demo and tests).
"""

from .generate import GenerationStep, generate_step
from .jobs import CompletionJob, EmbedJob, Failed, Finished, Piece, TokenLogprobs
from .runner import Runner, RunnerConfig
from .sampling import SamplingParams, make_sampler

__all__ = [
    "CompletionJob",
    "EmbedJob",
    "Failed",
    "Finished",
    "GenerationStep",
    "Piece",
    "Runner",
    "RunnerConfig",
    "SamplingParams",
    "TokenLogprobs",
    "generate_step",
    "make_sampler",
]
