"""A runner whose worker fails is dropped and freed; its requests get a 500 and the next request reloads the model.

Faults are injected into a loaded runner. The public API offers no way to make a
decode fail, so each test reaches the runner through the Client's scheduler:
that is the fault-injection hook only, every request and check goes through the
public Client.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pytest

from llamanative import ChatRequest, Client
from llamanative.engine import CompletionJob, Runner
from llamanative.engine.sampling import SamplingParams
from llamanative.errors import DecodeError, StatusError

GREEDY = {"temperature": 0, "num_predict": 8}
HI = [{"role": "user", "content": "Say hi."}]


@pytest.fixture
def client(model_store) -> Iterator[Client]:
    """A Client of its own: the faults below break the runner they are injected into."""
    with Client(models_dir=model_store) as c:
        yield c


def loaded_runner(client: Client, name: str) -> Runner:
    """The runner serving ``name`` (the fault-injection hook: the scheduler that the Client owns)."""
    entry = client._scheduler.get(client.store.resolve(name).path)
    assert entry is not None, f"{name} is not loaded"
    return entry.runner


class FaultyStepper:
    """Stands in for a runner's Stepper: ``step`` raises ``error``; everything else goes to the real one."""

    def __init__(self, real: object, error: BaseException) -> None:
        self._real, self._error = real, error

    def step(self) -> object:
        raise self._error

    def __getattr__(self, name: str) -> object:
        return getattr(self._real, name)


def fail_step(runner: Runner, error: BaseException) -> None:
    seqs = runner._seqs
    assert seqs is not None
    seqs.stepper = FaultyStepper(seqs.stepper, error)  # type: ignore[assignment]


def fail_delivery(runner: Runner, error: BaseException) -> None:
    """The per-token hand-off in the worker's loop raises (outside the decode)."""
    assert runner._generation is not None

    def deliver(*args: object) -> None:
        raise error

    runner._generation._deliver = deliver  # type: ignore[method-assign]


def assert_dropped_and_freed(client: Client, name: str, old: Runner) -> None:
    assert old.failure is not None
    entry = client._scheduler.get(client.store.resolve(name).path)
    assert entry is None or entry.runner is not old, "the failed runner is still handed out"
    assert old.model.closed, "the failed runner's model was not freed"
    assert old.ctx.closed, "the failed runner's context was not freed"


FAULTS: dict[str, Callable[[Runner, BaseException], None]] = {"step": fail_step, "delivery": fail_delivery}


@pytest.mark.parametrize(
    ("where", "error"),
    [
        ("step", DecodeError(-3, "fatal error")),  # a decode that fails
        ("step", RuntimeError("the sampler failed")),  # sampling runs inside the step
        ("delivery", KeyError("bug in the worker loop")),
    ],
    ids=["decode", "sampler", "delivery"],
)
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_failed_worker_answers_500_and_the_model_reloads(client, where, error, stream):
    first = client.chat("smol", HI, options=GREEDY, keep_alive=-1)
    assert first.done
    runner = loaded_runner(client, "smol")
    FAULTS[where](runner, error)

    with pytest.raises(StatusError) as info:
        if stream:
            for _ in client.chat("smol", HI, options=GREEDY, stream=True, keep_alive=-1):
                pass
        else:
            client.chat("smol", HI, options=GREEDY, keep_alive=-1)
    assert info.value.status_code == 500
    assert info.value.__cause__ is error
    assert_dropped_and_freed(client, "smol", runner)

    again = client.chat("smol", HI, options=GREEDY, keep_alive=-1)
    assert again.done and again.message.content == first.message.content
    fresh = loaded_runner(client, "smol")
    assert fresh is not runner and fresh.failure is None
    assert again.load_duration > 0  # loaded afresh by this request


def test_failed_embedding_worker_answers_500_and_the_model_reloads(client):
    first = client.embed("mini", "a sentence", keep_alive=-1)
    runner = loaded_runner(client, "mini")
    error = RuntimeError("the embedding decode failed")

    def run(jobs: object) -> None:
        raise error

    runner._embedding.run = run  # type: ignore[method-assign]
    with pytest.raises(StatusError) as info:
        client.embed("mini", "a sentence", keep_alive=-1)
    assert info.value.status_code == 500
    assert info.value.__cause__ is error
    assert_dropped_and_freed(client, "mini", runner)

    again = client.embed("mini", "a sentence", keep_alive=-1)
    assert again.embeddings[0] == pytest.approx(first.embeddings[0], abs=1e-5)
    assert loaded_runner(client, "mini") is not runner


def test_a_failed_runner_refuses_new_jobs_with_a_500(client):
    """A request that took the runner before its worker failed submits afterwards: it gets the 500, not a raw error."""
    client.chat("smol", HI, options=GREEDY, keep_alive=-1)
    runner = loaded_runner(client, "smol")
    error = DecodeError(-3, "fatal error")
    fail_step(runner, error)
    with pytest.raises(StatusError):
        client.chat("smol", HI, options=GREEDY, keep_alive=-1)
    job = CompletionJob(np.array([1, 2, 3], dtype=np.int32), SamplingParams())
    with pytest.raises(StatusError) as info:
        runner.submit(job)  # what a request holding the runner does next
    assert info.value.status_code == 500
    assert info.value.__cause__ is error


def test_a_raising_callback_stops_only_its_own_request(client):
    """The callback runs on the caller's thread: its exception reaches the caller, the model stays loaded and usable."""
    client.chat("smol", HI, options=GREEDY, keep_alive=-1)
    runner = loaded_runner(client, "smol")

    class Stop(Exception):
        pass

    def fn(chunk: object) -> None:
        raise Stop

    with pytest.raises(Stop):
        client.chat(ChatRequest(model="smol", messages=HI, options={"temperature": 0, "num_predict": 64}), fn)
    after = client.chat("smol", HI, options=GREEDY, keep_alive=-1)
    assert after.done and after.message.content
    assert loaded_runner(client, "smol") is runner and runner.failure is None
