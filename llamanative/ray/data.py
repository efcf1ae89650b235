"""``embed_dataset``: a Ray Data dataset of texts gains a column of embeddings, computed by a pool of actors.

Each actor holds one :class:`~llamanative.Client` with the model loaded once
(when the actor starts) and embeds every batch it is given with one
``Client.embed`` call: the texts of the batch go to the engine as one packed
job and come back as the engine's float32 matrix (``EmbedResponse.as_array``),
so there is no Python work per row beyond handing the batch's strings over.
The vectors are those of an in-process ``embed`` of the same texts (same
model, options, ``truncate`` and ``dimensions``): L2-normalised float32.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
import ray
from ray.data import ActorPoolStrategy, Dataset

from ..errors import StatusError
from ..types import Options
from .errors import ColumnError, ColumnTypeError

__all__ = ["DEFAULT_BATCH_SIZE", "embed_dataset"]

DEFAULT_BATCH_SIZE = 256
"Rows per ``Client.embed`` call (one packed engine job); a few times the engine's 64-sequence decode is plenty."


def embed_dataset(
    ds: Dataset,
    model: str,
    *,
    column: str = "text",
    output_column: str = "embedding",
    batch_size: int = DEFAULT_BATCH_SIZE,
    concurrency: int | tuple[int, int] = 1,
    num_cpus: float = 1,
    truncate: bool = True,
    dimensions: int | None = None,
    options: Options | Mapping[str, Any] | None = None,
    models_dir: str | os.PathLike[str] | None = None,
    **ray_remote_args: Any,
) -> Dataset:
    """``ds`` with one more column, ``output_column``: the embedding of each row's ``column`` by ``model``.

    The dataset is lazy, as every Ray Data transform: nothing runs until it
    is consumed (``take_all``, ``iter_batches``, ``write_parquet`` ...). Each
    row keeps its other columns, so a text and its vector always travel
    together. Ray Data keeps the rows of a block in order; the blocks come
    back in the input's order when the context says so
    (``ray.data.DataContext.get_current().execution_options.preserve_order =
    True`` before the dataset is made; Ray's default is False, for
    throughput). The values are those of an in-process
    ``Client.embed(model, texts, truncate=..., dimensions=..., options=...)``.

    Args:
        ds: a dataset with a string column ``column``.
        model: a model of the store (``all-minilm``, a name given to ``create``), the same on every node.
        column: the column of texts (default ``"text"``).
        output_column: the new column: one float32 vector a row, of the model's embedding size (or
            ``dimensions``) (default ``"embedding"``).
        batch_size: rows per ``embed`` call (default 256). Larger batches amortise the call; each batch is
            held in an actor's memory with its vectors (1.5 KiB a row for a 384-dimension model).
        concurrency: actors, each with the model loaded: a number (default 1), or ``(min, max)`` for a pool
            that Ray Data scales between the two.
        num_cpus: CPUs that Ray reserves for each actor (default 1). The actor's engine computes with that
            many threads (at least one) unless ``options`` sets ``num_thread``, so actors on one machine do
            not compete for its cores; one actor a machine with ``num_cpus`` = its cores is the other
            extreme.
        truncate: cut texts longer than the model's context (default True); False makes such a text an
            error of its batch (a ``StatusError`` 400).
        dimensions: keep the first N values of each vector and re-normalise (default: all).
        options: model options (``num_ctx``, ``num_batch``, ``num_thread`` ...), as ``Client.embed`` takes them.
        models_dir: the model store on every node (default: ``LLAMANATIVE_MODELS``, else the user's cache dir).
        **ray_remote_args: more keywords of ``Dataset.map_batches`` (``num_gpus``, ``memory``, ``resources``,
            ``runtime_env``, ``scheduling_strategy`` ...).

    Returns:
        The new (lazy) dataset.

    Raises:
        TypeError: ``model``, ``column`` or ``output_column`` is not a string, or ``ds`` is not a Dataset.
        ValueError: ``batch_size`` or ``concurrency`` is not a positive count, or ``dimensions`` is not.
        ColumnError: ``column`` is not in the dataset, or ``output_column`` already is (when the schema is
            known; otherwise the first batch raises it).
        ColumnTypeError: ``column`` does not hold strings (a ``TypeError`` too; from the batch that holds one
            when the schema does not tell).
        StatusError: a bad option (400), or a model that is not in the store (404, found by a small Ray task
            on a node of the cluster, before any actor starts).

    An error inside an actor (a null among the texts, an over-long text with
    ``truncate=False``, a model that does not load) reaches the consumer of
    the dataset as Ray Data's ``UserCodeException`` (in a
    ``ray.exceptions.RayTaskError``) or an ``ActorDiedError``, whose message
    holds the llamanative error's type, message and traceback: Ray does not
    re-raise an actor's exception class there.
    """
    if not isinstance(ds, Dataset):
        raise TypeError(f"ds must be a ray.data.Dataset, not {type(ds).__name__}")
    for name, value in (("model", model), ("column", column), ("output_column", output_column)):
        if not isinstance(value, str) or not value:
            raise TypeError(f"{name} must be a non-empty string, not {value!r}")
    if output_column == column:
        raise ColumnError(f"output_column {output_column!r} is the text column: give the embeddings their own", column)
    _check_count("batch_size", batch_size)
    if dimensions is not None:
        _check_count("dimensions", dimensions)
    opts = Options().merge(options).model_dump(exclude_none=True)  # a bad option is a 400 here, not in an actor
    compute = _actor_pool(concurrency)
    check_schema(ds, column, output_column)
    store = None if models_dir is None else os.fspath(models_dir)
    check_model(model, store)
    return ds.map_batches(
        EmbedBatches,
        batch_size=batch_size,
        batch_format="numpy",
        compute=compute,
        num_cpus=num_cpus,
        fn_constructor_kwargs={
            "model": model,
            "column": column,
            "output_column": output_column,
            "truncate": truncate,
            "dimensions": dimensions,
            "options": opts,
            "models_dir": store,
        },
        **ray_remote_args,
    )


class EmbedBatches:
    """The ``map_batches`` function of :func:`embed_dataset`: one Client, with the model loaded, per actor.

    Constructed by Ray in each actor; the constructor loads the model (so a
    model that is not in the store fails the actor's start, a ``StatusError``
    404) and keeps it loaded for the actor's life (``keep_alive=-1``).
    """

    def __init__(
        self,
        *,
        model: str,
        column: str,
        output_column: str,
        truncate: bool,
        dimensions: int | None,
        options: dict[str, Any],
        models_dir: str | None,
    ) -> None:
        from ..client import Client

        self._column = column
        self._output_column = output_column
        opts = dict(options)
        opts.setdefault("num_thread", actor_threads())
        self._client = Client(models_dir=models_dir)
        self._request: dict[str, Any] = {
            "model": model,
            "truncate": truncate,
            "dimensions": dimensions,
            "options": opts,
            "keep_alive": -1,
        }
        # Loads the model now; the probe's vector gives the width of an empty batch's output.
        self._width = self._embed(["width"]).shape[1]

    def _embed(self, texts: list[str]) -> npt.NDArray[np.float32]:
        return self._client.embed(input=texts, **self._request).as_array()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``batch`` with the embeddings of its texts as ``output_column`` (rows x width, float32).

        Raises:
            ColumnError: the batch has no text column, or already has the output column.
            ColumnTypeError: a value of the text column is not a string.
        """
        texts = batch_texts(batch, self._column, self._output_column)
        if not texts:
            matrix = np.empty((0, self._width), dtype=np.float32)
        elif texts == [""]:
            # embed([""]) is the client's load-only call (no vectors): embed the empty text as one of a pair.
            matrix = np.ascontiguousarray(self._embed(["", ""])[:1])
        else:
            matrix = self._embed(texts)
        if matrix.shape[0] != len(texts):
            raise RuntimeError(f"{matrix.shape[0]} embeddings for {len(texts)} texts")
        batch[self._output_column] = matrix
        return batch

    def __del__(self) -> None:
        client = getattr(self, "_client", None)
        if client is not None:
            client.close()


def batch_texts(batch: Mapping[str, np.ndarray], column: str, output_column: str) -> list[str]:
    """The strings of ``batch[column]`` as a list (one C-level ``tolist``; a type check of each value).

    Raises:
        ColumnError: ``column`` is not in the batch, or ``output_column`` already is.
        ColumnTypeError: a value is not a string (a null, a number, bytes).
    """
    check_columns(list(batch), column, output_column)
    values = batch[column]
    if values.ndim != 1 or values.dtype.kind not in "UO":
        raise ColumnTypeError(
            f"column {column!r} must hold strings, not {values.dtype} values of shape {values.shape[1:] or ()}", column
        )
    texts = values.tolist()
    if values.dtype.kind == "O":
        bad = next((i for i, t in enumerate(texts) if type(t) is not str), None)
        if bad is not None:
            what = "null" if texts[bad] is None else f"a {type(texts[bad]).__name__}"
            raise ColumnTypeError(f"column {column!r} must hold strings: a row of it holds {what}", column)
    return texts


def check_columns(names: list[str], column: str, output_column: str) -> None:
    """Raises ColumnError unless ``column`` is one of ``names`` and ``output_column`` is not."""
    if column not in names:
        raise ColumnError(f"the dataset has no column {column!r} (its columns: {sorted(names)})", column)
    if output_column in names:
        message = f"the dataset already has a column {output_column!r}: choose another output_column"
        raise ColumnError(message, output_column)


def check_schema(ds: Dataset, column: str, output_column: str) -> None:
    """The column checks of :func:`batch_texts` on ``ds``'s schema, when Ray knows it without running anything.

    Raises:
        ColumnError, ColumnTypeError: as :func:`batch_texts`.
    """
    schema = ds.schema(fetch_if_missing=False)
    if schema is None:
        return
    names = list(schema.names)
    check_columns(names, column, output_column)
    kind = schema.types[names.index(column)]
    if not _is_string_type(kind):
        raise ColumnTypeError(f"column {column!r} must hold strings, not {kind}", column)


def check_model(model: str, models_dir: str | None) -> None:
    """Raise the store's error for ``model`` here, on the caller's side, if a node of the cluster lacks it.

    The lookup runs as a Ray task (no CPU reserved), in the store of whichever node runs it, as an actor
    would; it reads the store's manifests only (no model is loaded).

    Raises:
        StatusError: 404 when ``model`` is not in that store (400 for an invalid name).
    """
    error = ray.get(_model_error.remote(model, models_dir))
    if error is not None:
        code, message = error
        raise StatusError(code, error_message=message)


@ray.remote(num_cpus=0)
def _model_error(model: str, models_dir: str | None) -> tuple[int, str] | None:
    """``(status code, message)`` of the store's lookup of ``model``, None when it is there."""
    from ..client import Client

    with Client(models_dir=models_dir) as client:
        try:
            client.store.resolve(model)
        except StatusError as exc:
            return exc.status_code, exc.error
    return None


def _is_string_type(kind: Any) -> bool:
    """Whether a schema's column type is text: Arrow's string types, or a numpy/pandas object or unicode column
    (whose values only a batch can tell)."""
    if kind is object or kind is str:
        return True
    if isinstance(kind, np.dtype):
        return kind.kind in "UO"
    return str(kind) in ("string", "large_string", "string_view")


def actor_threads() -> int:
    """Compute threads for this actor's engine: the CPUs Ray assigned it (at least 1), else 0 (the engine's own
    default, the CPUs the process may use)."""
    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU")
    return max(1, math.floor(cpus)) if cpus else 0


def _actor_pool(concurrency: int | tuple[int, int]) -> ActorPoolStrategy:
    """Ray Data's actor pool for ``concurrency``: a fixed size, or ``(min, max)``.

    Raises:
        ValueError: not a positive count, or not a pair with 1 <= min <= max.
    """
    if isinstance(concurrency, tuple):
        if len(concurrency) != 2:
            raise ValueError(f"concurrency must be a number of actors or (min, max), not {concurrency!r}")
        low, high = concurrency
        _check_count("concurrency's min", low)
        _check_count("concurrency's max", high)
        if low > high:
            raise ValueError(f"concurrency's min ({low}) is above its max ({high})")
        return ActorPoolStrategy(min_size=low, max_size=high)
    _check_count("concurrency", concurrency)
    return ActorPoolStrategy(size=concurrency)


def _check_count(name: str, value: Any) -> None:
    """Raises ValueError unless ``value`` is an int >= 1 (TypeError for a non-integer)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, not {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, not {value}")
