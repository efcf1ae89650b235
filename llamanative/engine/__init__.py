"""The engine: owns llama.cpp contexts and the threads that drive them.

- :mod:`.runner` — one loaded model, one worker thread, continuous batching.
- :mod:`.scheduler` — which runners are loaded, keep_alive, eviction.
- :mod:`.prompt_cache` — idle slots' sequences parked in RAM.
- :mod:`.attention` — the flash-attention setting of a generation context.
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
