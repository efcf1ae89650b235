"""The server under concurrent load: the mix of ``benchmarks/serve_load.py``, smaller, on an in-process server.

8 connections, 80 requests of the benchmark's mix (streamed chats on both
APIs, embeddings on both, streams abandoned after a few chunks or cut before
their answer, requests built to fail) against Uvicorn in a thread of the test
process (``tests/http_server.py``). Asserted: no unexpected error and every
answer that was read to its end complete. No timing or memory figures: those
are the benchmark's (``python benchmarks/serve_load.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

pytest.importorskip("starlette")

from http_server import running  # noqa: E402
from serve_load import KINDS, make_store, run_load  # noqa: E402

from llamanative import AsyncClient  # noqa: E402
from llamanative.server import create_app  # noqa: E402

CONNECTIONS = 8
REQUESTS = 80


@pytest.fixture(scope="module")
def url(tmp_path_factory, smollm2_path, minilm_path) -> Iterator[str]:
    store = tmp_path_factory.mktemp("load-store")
    make_store(store, {"chat": (smollm2_path, {"num_thread": 1}), "embed": (minilm_path, {"num_thread": 1})})
    client = AsyncClient(models_dir=store)
    try:
        with running(create_app(client)) as base:
            yield base
    finally:
        asyncio.run(client.close())


def test_concurrent_mix_has_no_unexpected_errors_and_complete_answers(url):
    tally = asyncio.run(run_load(url, "chat", "embed", CONNECTIONS, REQUESTS, seed=1))
    assert tally.done == REQUESTS
    assert not tally.unexpected, tally.examples
    assert not tally.incomplete, tally.examples
    # The mix was the mix: every kind ran, the abandoned streams and the misuse among them.
    ran = {kind for kind, _ in tally.outcomes} | {kind for kind, _ in tally.expected}
    assert ran == {kind for kind, _ in KINDS}
    assert tally.expected  # the requests built to fail failed as built


def test_server_still_answers_after_the_load(url):
    """The abandoned streams freed their slots: a new chat runs to its end on a fresh connection."""
    tally = asyncio.run(run_load(url, "chat", "embed", 1, 6, seed=2))
    assert not tally.unexpected and not tally.incomplete, tally.examples
