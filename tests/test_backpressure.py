"""Back-pressure: a stream that is held but not read stops generating; a dropped one frees its slot; close() returns.

Each test reads the runner's slots through the Client's scheduler (the inspection
hook: ``Runner.slot_states``); every request goes through the public Client or
AsyncClient. Progress is measured in pieces handed out and in eval counts, never
in wall-clock time: the waits below only bound how long a failing test takes.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from llamanative import AsyncClient, Client, GenerateResponse
from llamanative.engine import Runner
from llamanative.engine.jobs import HIGH_WATER
from llamanative.engine.runner import SlotState
from llamanative.errors import StatusError

NUM_PREDICT = 600
# Counting: a long greedy answer without near-ties, so an answer whose steps ran
# beside another request's cells still agrees with one that ran alone.
PROMPT = "Count from 1 to 1000: 1, 2, 3, 4, 5,"
OTHER = "Count from 100 to 1: 100, 99, 98,"  # another long answer, for the request that runs meanwhile
LONG = {"temperature": 0, "num_predict": NUM_PREDICT}
SHORT = {"temperature": 0, "num_predict": 100}
GIVE_UP_S = 300  # a failing test ends here instead of hanging


def held(client: Client, **kwargs) -> Iterator[GenerateResponse]:
    return client.generate("smol", PROMPT, raw=True, stream=True, options=LONG, **kwargs)


def runner_of(client: Client) -> Runner:
    entry = client._scheduler.get(client.store.resolve("smol").path)
    assert entry is not None, "smol is not loaded"
    return entry.runner


def paused_slot(runner: Runner) -> SlotState | None:
    return next((s for s in runner.slot_states() if s.paused), None)


def wait_for(what: str, found: Callable[[], object]) -> object:
    deadline = time.monotonic() + GIVE_UP_S
    while not (value := found()):
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting until {what}: {found()!r}")
        time.sleep(0.01)
    return value


def assert_stopped_near_the_high_water_mark(state: SlotState) -> None:
    # Paused once more than HIGH_WATER pieces are unread; one step adds at most one piece.
    assert state.busy and state.paused
    assert HIGH_WATER < state.unread <= HIGH_WATER + 1, state


@pytest.fixture(scope="module")
def reference(client) -> list[GenerateResponse]:
    """The unthrottled stream, read as it comes."""
    chunks = list(held(client))
    assert chunks[-1].done and chunks[-1].eval_count == NUM_PREDICT
    return chunks


def texts(chunks: list[GenerateResponse]) -> list[str]:
    return [c.response for c in chunks]


def test_a_held_stream_stops_near_the_high_water_mark_and_resumes_with_the_same_answer(client, reference):
    stream = held(client)
    first = next(stream)
    state = wait_for("the held stream's slot pauses", lambda: paused_slot(runner_of(client)))
    assert_stopped_near_the_high_water_mark(state)
    rest = list(stream)  # reading resumes it
    assert texts([first, *rest]) == texts(reference)
    assert rest[-1].eval_count == reference[-1].eval_count == NUM_PREDICT
    assert not any(s.busy for s in runner_of(client).slot_states())


def cpu_ticks(thread: threading.Thread) -> int:
    """User + system CPU time of ``thread`` in clock ticks (Linux)."""
    with open(f"/proc/self/task/{thread.native_id}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of the line)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads a thread's CPU time from /proc")
def test_a_worker_whose_every_slot_is_paused_sleeps(client):
    stream = held(client)
    next(stream)
    runner = runner_of(client)
    wait_for("the held stream's slot pauses", lambda: paused_slot(runner))
    (worker,) = [t for t in threading.enumerate() if t.name == f"llamanative-runner:{runner.path}"]
    before = cpu_ticks(worker)
    time.sleep(1.0)  # a window to measure in: a worker that polled would spend CPU in it
    assert cpu_ticks(worker) - before <= 1, "the worker spends CPU while every slot waits for its reader"
    assert worker.is_alive()
    stream.close()


def test_another_request_runs_to_completion_while_a_held_stream_waits(client, reference):
    stream = held(client)
    first = next(stream)
    runner = runner_of(client)
    before = wait_for("the held stream's slot pauses", lambda: paused_slot(runner))
    other = client.generate("smol", OTHER, raw=True, options=SHORT)
    assert other.done_reason == "length" and other.eval_count == SHORT["num_predict"]
    # The held stream did not move while the other request took its 100 steps.
    assert paused_slot(runner) == before
    assert_stopped_near_the_high_water_mark(before)
    rest = list(stream)
    assert rest[-1].done and rest[-1].eval_count == NUM_PREDICT
    assert texts([first, *rest]) == texts(reference)


def test_a_paused_stream_shifts_its_context_when_it_runs_again(client):
    # 300 tokens after the prompt in a 256-token context: the slot shifts after its pause.
    options = {**LONG, "num_predict": 300, "num_ctx": 256}
    unthrottled = list(client.generate("smol", PROMPT, raw=True, stream=True, options=options))
    stream = client.generate("smol", PROMPT, raw=True, stream=True, options=options)
    first = next(stream)
    state = wait_for("the held stream's slot pauses", lambda: paused_slot(runner_of(client)))
    assert_stopped_near_the_high_water_mark(state)
    rest = list(stream)
    assert texts([first, *rest]) == texts(unthrottled)
    assert rest[-1].eval_count == 300 > runner_of(client).n_ctx  # more than the context holds: it shifted


@pytest.mark.parametrize("collect", [True, False], ids=["gc.collect", "refcount"])
@pytest.mark.parametrize("kind", ["generate", "chat"])
def test_a_dropped_stream_frees_its_slot(client, kind, collect):
    if kind == "generate":
        stream = held(client)
    else:
        messages = [{"role": "user", "content": PROMPT}]
        stream = client.chat("smol", messages, stream=True, options=LONG)
    next(stream)
    runner = runner_of(client)
    wait_for("the held stream's slot pauses", lambda: paused_slot(runner))
    enabled = gc.isenabled()
    gc.disable()  # "refcount": dropping it must be enough, no cycle may keep it
    try:
        del stream
        if collect:
            gc.collect()
        # The next request's steps drop the cancelled job first.
        assert client.generate("smol", "Hi", options={"temperature": 0, "num_predict": 4}).done
        assert not any(s.busy for s in runner.slot_states()), runner.slot_states()
        assert not runner.busy
    finally:
        if enabled:
            gc.enable()


def test_a_dropped_ai_stream_frees_its_slot(client):
    from llamanative.ai import Genkit

    ai = Genkit(model="llamanative/smol", client=client)
    stream = ai.generate_stream(prompt=PROMPT, config={"maxOutputTokens": NUM_PREDICT, "temperature": 0})
    next(stream)
    runner = runner_of(client)
    wait_for("the held stream's slot pauses", lambda: paused_slot(runner))  # the ai layer reads one chunk ahead
    del stream
    gc.collect()
    # The ai layer's thread sees the close at its next hand-over and closes the Client's stream.
    wait_for("the slot is free", lambda: not any(s.busy for s in runner.slot_states()))
    assert client.generate("smol", "Hi", options={"temperature": 0, "num_predict": 4}).done


def test_close_returns_with_held_streams_and_they_end_with_a_503(model_store):
    c = Client(models_dir=model_store)
    paused = held(c)
    next(paused)
    runner = runner_of(c)
    wait_for("the held stream's slot pauses", lambda: paused_slot(runner))
    reading = c.chat("smol", [{"role": "user", "content": PROMPT}], stream=True, options=LONG)
    next(reading)  # running, not paused yet
    closer = threading.Thread(target=c.close, daemon=True)
    closer.start()
    closer.join(GIVE_UP_S)
    assert not closer.is_alive(), "close() waited for streams that nobody reads"
    for stream in (paused, reading):
        with pytest.raises(StatusError) as e:
            for _ in stream:
                pass
        assert e.value.status_code == 503
    assert runner.model.closed and runner.ctx.closed


def test_async_client_held_stream_drop_and_close(model_store, reference):
    async def main() -> None:
        c = AsyncClient(models_dir=model_store)

        async def wait_paused() -> SlotState:
            deadline = time.monotonic() + GIVE_UP_S
            while (state := paused_slot(runner_of(c._client))) is None:
                if time.monotonic() > deadline:
                    pytest.fail("gave up waiting until the held stream's slot pauses")
                await asyncio.sleep(0.01)
            return state

        def stream():
            return c.generate("smol", PROMPT, raw=True, stream=True, options=LONG)

        # Held: it stops near the mark while another request completes, then resumes to the same answer.
        s = await stream()
        first = await anext(s)
        before = await wait_paused()
        assert_stopped_near_the_high_water_mark(before)
        other = await c.generate("smol", OTHER, raw=True, options=SHORT)
        assert other.done_reason == "length" and other.eval_count == SHORT["num_predict"]
        assert paused_slot(runner_of(c._client)) == before
        rest = [chunk async for chunk in s]
        assert texts([first, *rest]) == texts(reference)

        # Dropped: the loop closes it and the job is cancelled.
        s = await stream()
        await anext(s)
        await wait_paused()
        del s
        gc.collect()
        await c.generate("smol", "Hi", options={"temperature": 0, "num_predict": 4})
        runner = runner_of(c._client)
        deadline = time.monotonic() + GIVE_UP_S
        while any(st.busy for st in runner.slot_states()):
            assert time.monotonic() < deadline, runner.slot_states()
            await asyncio.sleep(0.01)

        # Closed with a held stream: close() returns and the stream ends with a 503.
        s = await stream()
        await anext(s)
        await wait_paused()
        await asyncio.wait_for(c.close(), GIVE_UP_S)
        with pytest.raises(StatusError) as e:
            await anext(s)
        assert e.value.status_code == 503

    asyncio.run(main())
