"""Rerank inputs: query-document pairs as llama-server's ``/rerank`` tokenizes them, packed for one embed job.

A pair is formatted as ``format_prompt_rerank`` in llama.cpp's
``tools/server/server-common.cpp`` does it, so that the scores are the same:

- a model with a ``rerank`` chat template (``tokenizer.chat_template.rerank``,
  e.g. Qwen3 rerankers) gets that template with ``{query}`` and
  ``{document}`` replaced, tokenized without added special tokens and with
  special tokens parsed;
- otherwise the query and the document are tokenized without special tokens
  and joined as ``[BOS] query [EOS] [SEP] document [EOS]``, each special
  token only where the vocabulary adds it (``add_bos``/``add_eos``/
  ``add_sep``), EOS falling back to SEP: ``[CLS] query [SEP] document [SEP]``
  for a BERT vocabulary.

The documents are tokenized in one native call and the pairs assembled with
array operations: nothing of Python runs per pair (but the template's text
replacement, for a templated model).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from .. import _core
from ..errors import StatusError

# llama.cpp's enum llama_pooling_type, as a GGUF stores it.
_POOLING_NAMES = {0: "none", 1: "mean", 2: "cls", 3: "last", 4: "rank"}


def pooling_of(model: _core.Model) -> str | None:
    """The pooling type the model's GGUF declares ("mean", "rank", ...), or None (a generative model)."""
    md = model.metadata
    value = md.get(f"{md.get('general.architecture', '')}.pooling_type")
    if value is None:
        return None
    return _POOLING_NAMES.get(int(value), str(value))


def check_reranker(model: _core.Model, name: str) -> None:
    """Raise StatusError 400 unless ``model`` is a reranker (rank pooling), saying what it is instead."""
    pooling = pooling_of(model)
    if pooling == "rank":
        return
    what = "a generative model" if pooling is None else f"an embedding model (pooling {pooling!r})"
    raise StatusError.bad_request(
        f'"{name}" does not support reranking: it is {what}; a reranker is a cross-encoder whose GGUF '
        f"declares rank pooling"
    )


def rerank_inputs(
    model: _core.Model, query: str, documents: list[str], limit: int, truncate: bool
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int64]]:
    """The pairs (``query``, ``documents[i]``) packed as (tokens, offsets), each cut to ``limit`` tokens.

    Raises:
        StatusError: 400 for a pair over ``limit`` tokens when not ``truncate``.
    """
    vocab = model.vocab
    template = model.chat_templates.get("rerank")
    if template is not None:
        texts = [template.replace("{query}", query).replace("{document}", d) for d in documents]
        tokens, offsets = vocab.tokenize_many(texts, add_special=False, parse_special=True)
    else:
        tokens, offsets = _joined_pairs(vocab, query, documents)
    lengths = np.diff(offsets)
    over = np.flatnonzero(lengths > limit)
    if over.size:
        if not truncate:
            i = int(over[0])
            raise StatusError.bad_request(
                f"document {i}: the query and document exceed the context length ({int(lengths[i])} > {limit} tokens)"
            )
        # Keep the first `limit` tokens of each pair (position within its pair < limit).
        within = np.arange(len(tokens)) - np.repeat(offsets[:-1], lengths)
        tokens = tokens[within < limit]
        offsets = np.concatenate(([0], np.cumsum(np.minimum(lengths, limit)))).astype(np.int64)
    return tokens, offsets


def _joined_pairs(
    vocab: _core.Vocab, query: str, documents: list[str]
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int64]]:
    """``head + document_i + tail`` for every document, where head is ``[BOS] query [EOS] [SEP]`` and tail ``[EOS]``."""
    eos = vocab.eos if vocab.eos >= 0 else vocab.sep
    head_parts: list[list[int]] = []
    if vocab.add_bos:
        head_parts.append([vocab.bos])
    head_parts.append(vocab.tokenize(query, add_special=False, parse_special=False).tolist())
    if vocab.add_eos:
        head_parts.append([eos])
    if vocab.add_sep:
        head_parts.append([vocab.sep])
    head = np.array([t for part in head_parts for t in part], dtype=np.int32)
    tail = np.array([eos] if vocab.add_eos else [], dtype=np.int32)
    doc_tokens, doc_offsets = vocab.tokenize_many(documents, add_special=False, parse_special=False)
    doc_lengths = np.diff(doc_offsets)
    n, h, t = len(documents), len(head), len(tail)
    lengths = doc_lengths + h + t
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    out = np.empty(int(offsets[-1]), dtype=np.int32)
    starts = offsets[:-1]
    if h:
        out[(starts[:, None] + np.arange(h)).ravel()] = np.tile(head, n)
    if t:
        out[((starts + h + doc_lengths)[:, None] + np.arange(t)).ravel()] = np.tile(tail, n)
    # Document token j of pair i goes to starts[i] + h + (j - doc_offsets[i]).
    shift = np.repeat(starts + h - doc_offsets[:-1], doc_lengths)
    out[np.arange(len(doc_tokens)) + shift] = doc_tokens
    return out, offsets
