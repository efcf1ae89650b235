"""AsyncClient keeps its event loop free: a request's CPU work runs in the loop's default executor.

Validating the request, rendering and tokenizing the conversation, dropping
its oldest messages and parsing each token's output are recorded by the
thread they run on; none is the loop's. A step that blocks does not block the
loop, and a stream cancelled while a step runs waits for that step before it
lets go of the model. (How much the loop lags under load is measured by
``benchmarks/async_loop_lag.py``, not here.)
"""

from __future__ import annotations

import asyncio
import threading

import pytest
from test_client import ask

from llamanative import AsyncClient
from llamanative.client import async_client
from llamanative.prompting import pipeline
from llamanative.prompting.parse import OutputParser

OPTS = {"temperature": 0, "num_predict": 16}


@pytest.fixture
def aclient(model_store, qwen3_style_path):
    c = AsyncClient(models_dir=model_store)
    asyncio.run(c.create("qwen-style-loop", from_=str(qwen3_style_path)))
    yield c
    asyncio.run(c.delete("qwen-style-loop"))
    asyncio.run(c.close())


def record(monkeypatch, owner, name: str, threads: list[int]) -> None:
    real = getattr(owner, name)

    def spy(*args, **kwargs):
        threads.append(threading.get_ident())
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, spy)


def test_request_work_runs_off_the_loop_thread(aclient, monkeypatch):
    rendered: list[int] = []
    parsed: list[int] = []
    validated: list[int] = []
    record(monkeypatch, pipeline.PromptPipeline, "chat", rendered)
    record(monkeypatch, OutputParser, "feed", parsed)
    record(monkeypatch, async_client, "validate", validated)
    # a conversation longer than the context: the oldest turns are dropped, each drop a new rendering
    turn = [*ask("Tell me about it."), {"role": "assistant", "content": "It is a long story. " * 8}]
    history = turn * 40

    async def main():
        loop_thread = threading.get_ident()
        chunks = [
            c
            async for c in await aclient.chat(
                "qwen-style-loop", [*history, *ask("And now?")], stream=True, options={**OPTS, "num_ctx": 512}
            )
        ]
        whole = await aclient.chat("qwen-style-loop", ask("Hi"), options=OPTS)
        return loop_thread, chunks, whole

    loop_thread, chunks, whole = asyncio.run(main())
    assert chunks[-1].done and whole.done and chunks[-1].prompt_eval_count < 512
    assert rendered and parsed and validated
    assert loop_thread not in set(rendered) | set(parsed) | set(validated)


def test_a_blocked_step_leaves_the_loop_running_and_a_cancel_waits_for_it(aclient, monkeypatch):
    started, release = threading.Event(), threading.Event()
    real = pipeline.PromptPipeline.chat

    def slow_chat(self, *args, **kwargs):
        started.set()
        assert release.wait(10), "the test never released the rendering"
        return real(self, *args, **kwargs)

    monkeypatch.setattr(pipeline.PromptPipeline, "chat", slow_chat)

    async def main():
        async def consume():
            async for _ in await aclient.chat("qwen-style-loop", ask("Hi"), stream=True, options=OPTS):
                pass

        task = asyncio.create_task(consume())
        assert await asyncio.to_thread(started.wait, 10)
        ticks = 0
        for _ in range(5):  # the loop runs other tasks while the rendering is blocked
            await asyncio.sleep(0.01)
            ticks += 1
        task.cancel()
        await asyncio.sleep(0.05)
        waiting = not task.done()  # the cancelled stream waits for its running step
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        monkeypatch.setattr(pipeline.PromptPipeline, "chat", real)
        after = await aclient.chat("qwen-style-loop", ask("Hi"), options=OPTS)  # the model is still usable
        return ticks, waiting, after

    ticks, waiting, after = asyncio.run(main())
    assert ticks == 5 and waiting and after.done
