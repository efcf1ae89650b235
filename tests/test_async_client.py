"""AsyncClient: the same API as coroutines; streams are async iterators on the caller's loop."""

from __future__ import annotations

import asyncio
import threading

import pytest
from test_client import ask

from llamanative import AsyncClient, ChatRequest, StatusError

GREEDY = {"temperature": 0, "num_predict": 12}


@pytest.fixture(scope="module")
def aclient(model_store):
    """An AsyncClient on the shared store of the test models (conftest.py's ``model_store``)."""
    c = AsyncClient(models_dir=model_store)
    yield c
    asyncio.run(c.close())


def test_async_chat_stream_and_join(aclient):
    async def main():
        full = await aclient.chat("smol", ask("What is 2+2?"), options=GREEDY)
        parts = [p async for p in await aclient.chat("smol", ask("What is 2+2?"), options=GREEDY, stream=True)]
        return full, parts

    full, parts = asyncio.run(main())
    assert full.done and parts[-1].done
    assert "".join(p.message.content for p in parts) == full.message.content


def test_async_streams_run_on_the_loop_thread_concurrently(aclient):
    threads = set()

    async def one(prompt):
        out = []
        async for part in await aclient.chat("smol", ask(prompt), options=GREEDY, stream=True):
            threads.add(threading.get_ident())
            out.append(part.message.content)
        return "".join(out)

    async def main():
        return await asyncio.gather(*(one(p) for p in ["Hi", "Name a fruit.", "Count to three."]))

    answers = asyncio.run(main())
    assert all(answers)
    assert threads == {threading.get_ident()}  # chunks are produced on the caller's loop thread


def test_async_callback_break_and_errors(aclient):
    async def main():
        seen = []
        last = await aclient.chat(ChatRequest(model="smol", messages=ask("Hi"), options=GREEDY), seen.append)
        stream = await aclient.generate("smol", "Count: 1, 2,", raw=True, options={"num_predict": 200}, stream=True)
        async for i, _ in _aenumerate(stream):
            if i == 2:
                break
        await stream.aclose()
        with pytest.raises(StatusError) as e:
            await aclient.chat("missing-model", ask("x"))
        emb = await aclient.embed("mini", ["a", "b"])
        return seen, last, e.value.status_code, emb

    seen, last, code, emb = asyncio.run(main())
    assert seen[-1] is last and last.done and code == 404 and emb.as_array().shape == (2, 384)


async def _aenumerate(it):
    i = 0
    async for x in it:
        yield i, x
        i += 1
