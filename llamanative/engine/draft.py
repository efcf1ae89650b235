"""The draft model of a runner: a second, smaller model that drafts tokens for ``draft-simple``.

It shares the target's vocabulary (llama.cpp checks it when a slot first
speculates with it) and gets a context of its own with one sequence per slot
of the generation context and as many tokens per sequence. The stepper keeps
its sequences in step with the slots' (``_core.Stepper.set_draft``); the runner
owns the model and the context and frees them after the stepper.
"""

from __future__ import annotations

from .. import _core
from .attention import FlashAttn


class DraftModel:
    """Load the draft GGUF at ``path`` for the generation context ``target`` and hand it to ``stepper``.

    Raises:
        FileNotFoundError, ModelLoadError, ContextCreateError: the draft model could not be loaded.
        ValueError: the draft context does not fit the stepper.
    """

    def __init__(
        self,
        path: str,
        target: _core.Context,
        stepper: _core.Stepper,
        *,
        n_gpu_layers: int,
        n_threads: int | None,
        flash_attn: FlashAttn,
    ) -> None:
        self.path = path
        self.model = _core.Model(path, n_gpu_layers=n_gpu_layers)
        try:
            self.ctx = _core.Context(
                self.model,
                n_ctx=target.n_ctx,
                n_batch=target.n_batch,
                n_ubatch=target.n_batch,
                n_seq_max=target.n_seq_max,
                n_threads=n_threads,
                flash_attn=flash_attn,
            )
        except BaseException:
            self.model.close()
            raise
        try:
            stepper.set_draft(self.ctx)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Free the context, then the model (after the stepper that drafted with them)."""
        self.ctx.close()
        self.model.close()
