"""Text embedders for the vector store and the rerankers.

A text embedder is any callable ``embed(texts: list[str]) -> array (n, d)``;
an ``ai`` :class:`~llamanative.ai.embedder.Embedder` is adapted to one.
:class:`ClientEmbedder` is the built-in one: a local embedding model (e.g.
all-MiniLM-L6-v2) run by a llamanative :class:`~llamanative.Client`, every
list of texts embedded in one batched ``Client.embed`` call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..embedder import Embedder
from ._compat import invalid_argument

__all__ = ["ClientEmbedder", "TextEmbedder", "as_text_embedder", "embed_texts", "normalize_rows"]


@runtime_checkable
class TextEmbedder(Protocol):
    def __call__(self, texts: Sequence[str]) -> Any: ...


class ClientEmbedder:
    """Embeds texts with ``client.embed(model, texts)``: one batched call per list of texts.

    Args:
        client: a :class:`llamanative.Client` (or anything with its ``embed``).
        model: the embedding model: a name in the client's store or a path to a GGUF file.
        options: model options for ``embed`` (e.g. ``{"num_thread": 2}``).
        truncate: cut over-long texts to the model's context (the default) instead of failing.
        dimensions: keep the first N dimensions (re-normalised).
        batch_size: at most this many texts per call (default: all in one call).
    """

    def __init__(
        self,
        client: Any,
        model: str,
        *,
        options: Any = None,
        truncate: bool = True,
        dimensions: int | None = None,
        batch_size: int | None = None,
    ) -> None:
        if batch_size is not None and batch_size < 1:
            raise invalid_argument("batch_size must be at least 1")
        self.client = client
        self.model = str(model)
        self.options = options
        self.truncate = truncate
        self.dimensions = dimensions
        self.batch_size = batch_size

    @property
    def name(self) -> str:
        return self.model

    def _call(self, texts: list[str]) -> np.ndarray:
        resp = self.client.embed(
            model=self.model, input=texts, options=self.options, truncate=self.truncate, dimensions=self.dimensions
        )
        return resp.as_array() if hasattr(resp, "as_array") else np.asarray(resp["embeddings"], dtype=np.float32)

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        step = self.batch_size or len(texts)
        parts = [self._call(texts[i : i + step]) for i in range(0, len(texts), step)]
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)

    def __repr__(self) -> str:
        return f"ClientEmbedder(model={self.model!r})"


def as_text_embedder(embedder: Any, model: str | None = None, options: Any = None) -> Callable[[Sequence[str]], Any]:
    """A text embedder from a callable, an ``ai`` :class:`~llamanative.ai.embedder.Embedder`,
    or a Client plus a model name.

    ``options`` go to the Client's ``embed`` (model options) or to the ``ai`` embedder.
    """
    if model is not None:
        return ClientEmbedder(embedder, model, options=options)
    if isinstance(embedder, Embedder):

        def embed(texts: Sequence[str]) -> np.ndarray:
            return embedder.embed(list(texts), options).as_array()

        embed.name = embedder.name  # type: ignore[attr-defined]
        return embed
    if options is not None:
        raise invalid_argument("options apply to a Client (with a model) or an ai Embedder")
    if not callable(embedder):
        if hasattr(embedder, "embed"):
            raise invalid_argument("a Client needs a model name: as_text_embedder(client, model)")
        raise invalid_argument(f"not an embedder: {type(embedder).__name__}")
    return embedder


def normalize_rows(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (all-zero rows stay zero)."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.maximum(norms, 1e-12)


def embed_texts(embedder: Callable[[Sequence[str]], Any], texts: Sequence[str]) -> np.ndarray:
    """``embedder(texts)`` as a float32 matrix with unit-norm rows, one row per text.

    Raises:
        ValueError: a text is empty, or the embedder returned the wrong shape or non-finite values.
    """
    texts = list(texts)
    for i, t in enumerate(texts):
        if not isinstance(t, str) or not t.strip():
            raise invalid_argument(f"text {i} is empty: only documents with text can be embedded")
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    out = embedder(texts)
    if hasattr(out, "as_array"):
        out = out.as_array()
    matrix = np.asarray(out, dtype=np.float32)
    if matrix.ndim != 2 or matrix.shape[0] != len(texts):
        raise invalid_argument(f"the embedder returned shape {matrix.shape} for {len(texts)} texts")
    if not np.isfinite(matrix).all():
        raise invalid_argument("the embedder returned NaN or Inf values")
    return np.ascontiguousarray(normalize_rows(matrix), dtype=np.float32)
