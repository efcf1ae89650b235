"""llamanative on a Ray cluster (``pip install "llamanative[ray]"``): a corpus embedded by Ray Data actors,
llamanative's HTTP server as a Ray Serve application.

    import ray
    from llamanative.ray import embed_dataset, serve_app

    ds = embed_dataset(ray.data.read_parquet("corpus/"), "all-minilm", concurrency=4)
    ds.write_parquet("embedded/")

    from ray import serve
    serve.run(serve_app("smollm2", num_replicas=2))

- :func:`embed_dataset`: a ``ray.data.Dataset`` of texts gains a column of
  embeddings, computed by actors that each load the model once and embed a
  whole batch with one packed ``Client.embed`` call (numpy in, numpy out).
- :func:`serve_app` / :func:`serve_deployment`: the application of
  ``llamanative serve`` (Ollama's ``/api/*`` and OpenAI's ``/v1/*`` routes
  over one AsyncClient) in every replica of a Ray Serve deployment, scaled by
  Ray Serve's own options.

This package needs Ray (``ray[data,serve]>=2.40,<3``, the ``ray`` extra);
``llamanative`` itself never imports it. Every machine of the cluster needs
llamanative installed and the models in its store.
"""

from __future__ import annotations

try:
    import ray  # noqa: F401  (the optional extra: fail here, with the command that installs it)
    import ray.data  # noqa: F401
    import ray.serve  # noqa: F401
except ImportError as exc:
    raise ImportError('llamanative.ray needs Ray: pip install "llamanative[ray]" (ray[data,serve]>=2.40,<3)') from exc

from .data import embed_dataset
from .errors import ColumnError, ColumnTypeError
from .serve import serve_app, serve_deployment

__all__ = ["ColumnError", "ColumnTypeError", "embed_dataset", "serve_app", "serve_deployment"]
