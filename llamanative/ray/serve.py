"""``serve_app``: the application of ``llamanative serve`` in every replica of a Ray Serve deployment.

Each replica runs :func:`llamanative.server.create_app` (Ollama's ``/api/*``
and OpenAI's ``/v1/*`` routes over one :class:`~llamanative.AsyncClient`,
every request of the replica batched by its engine) as the deployment's ASGI
ingress, the way Ray Serve documents for an ASGI application that is not
built inside the deployment class: ``serve.ingress(builder)`` with a builder
function, which each replica calls when it starts. Ray Serve's proxy sends
every HTTP request to one replica; replicas, autoscaling and resources are
Ray Serve's own deployment options.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ray import serve

from ..server.limits import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_QUEUED, DEFAULT_TIMEOUT_S

__all__ = ["DEFAULT_DEPLOYMENT_NAME", "ReplicaApp", "serve_app", "serve_deployment"]

DEFAULT_DEPLOYMENT_NAME = "llamanative"

ASGIApp = Callable[..., Any]


def serve_deployment(
    model: str | Sequence[str] | None = None,
    *,
    models_dir: str | os.PathLike[str] | None = None,
    api_key: str | None = None,
    origins: Sequence[str] = (),
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_queued: int = DEFAULT_MAX_QUEUED,
    request_timeout_s: float | None = DEFAULT_TIMEOUT_S,
    name: str = DEFAULT_DEPLOYMENT_NAME,
    **deployment_options: Any,
) -> serve.Deployment:
    """A Ray Serve deployment whose replicas each serve llamanative's HTTP API (``.bind()`` makes the app).

    Args:
        model: models of the store to load when a replica starts (a name or several), so that the first
            request does not wait for a load; a replica whose model does not load fails to start. None (the
            default): models load on their first request, as with ``llamanative serve``.
        models_dir: the model store of every replica (default: ``LLAMANATIVE_MODELS``, else the user's cache
            dir, on the replica's node).
        api_key: when set, every route but ``/`` needs ``Authorization: Bearer <api_key>``.
        origins: origins allowed by CORS (as ``llamanative serve --origins``); empty: none.
        max_body_bytes: largest request body in bytes (default 100 MiB; blob uploads exempt).
        max_queued: model requests a replica admits at once, running or waiting (default 512; one more is a
            503 with ``Retry-After``).
        request_timeout_s: seconds a model request may run before it is cancelled (default 600; None or 0: no
            limit).
        name: the deployment's name (default ``"llamanative"``).
        **deployment_options: Ray Serve's ``serve.deployment`` options: ``num_replicas`` (a number or
            ``"auto"``), ``autoscaling_config``, ``ray_actor_options`` (``num_cpus``, ``num_gpus``,
            ``runtime_env`` ...), ``max_ongoing_requests``, ``health_check_period_s`` ...; the deployment's
            ``.options()`` changes them later.

    Returns:
        The deployment (``serve.Deployment``).

    Raises:
        TypeError: ``model`` is not a string or a sequence of strings; from Ray Serve, an option it does not
            take.
        ValueError: from Ray Serve, an option's value that it refuses.
    """
    models = _model_names(model)
    app_options: dict[str, Any] = {
        "api_key": api_key,
        "origins": tuple(origins),
        "max_body_bytes": max_body_bytes,
        "max_queued": max_queued,
        "request_timeout_s": request_timeout_s,
    }
    store = None if models_dir is None else os.fspath(models_dir)

    def build_app() -> ReplicaApp:
        # Called by Ray Serve in each replica, when it starts: the client and its engine live there.
        return ReplicaApp.create(models, store, app_options)

    ingress = serve.ingress(build_app)()
    return serve.deployment(name=name, **deployment_options)(ingress)


def serve_app(model: str | Sequence[str] | None = None, **kwargs: Any) -> serve.Application:
    """The Ray Serve application of :func:`serve_deployment` (its deployment bound): ``serve.run`` it.

    ``serve.run(serve_app("smollm2", num_replicas=2), route_prefix="/")``
    serves Ollama's and OpenAI's routes at Ray Serve's HTTP address
    (``serve.start(http_options=...)``; 127.0.0.1:8000 by default). Takes
    :func:`serve_deployment`'s arguments.
    """
    return serve_deployment(model, **kwargs).bind()


class ReplicaApp:
    """llamanative's server application with the replica's lifespan: load ``models`` at start, close the
    client at shutdown.

    Every HTTP request goes to the application of :func:`llamanative.server.create_app`; the ASGI
    ``lifespan`` messages, which Ray Serve sends when the replica starts and stops, are answered here.
    """

    def __init__(self, app: ASGIApp, client: Any, models: Sequence[str]) -> None:
        self.app = app
        self.client = client
        self.models = tuple(models)

    @classmethod
    def create(cls, models: Sequence[str], models_dir: str | None, options: Mapping[str, Any]) -> ReplicaApp:
        """A new AsyncClient on ``models_dir`` and the server application over it."""
        from ..client import AsyncClient
        from ..server import create_app

        client = AsyncClient(models_dir=models_dir)
        return cls(create_app(client, **options), client, models)

    async def startup(self) -> None:
        """Load every model of :attr:`models` (the client's load idiom: an empty prompt), one after the other.

        Raises:
            StatusError: a model that is not in the store (404) or does not load (500).
        """
        for name in self.models:
            await self.client.generate(model=name, prompt="")

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:  # the replica fails to start, with the reason in its log
                    await send({"type": "lifespan.startup.failed", "message": f"{type(exc).__name__}: {exc}"})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.client.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


def _model_names(model: str | Sequence[str] | None) -> tuple[str, ...]:
    """``model`` as a tuple of names.

    Raises:
        TypeError: not a string, a sequence of non-empty strings, or None.
    """
    if model is None:
        return ()
    names = (model,) if isinstance(model, str) else tuple(model) if isinstance(model, Sequence) else None
    if names is None or not all(isinstance(n, str) and n for n in names):
        raise TypeError(f"model must be a model name or a sequence of them, not {model!r}")
    return names
