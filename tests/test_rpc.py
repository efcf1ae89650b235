"""One model over several processes with llama.cpp's RPC backend: ``llamanative rpc-server`` and ``rpc=``.

The servers are real ``llamanative rpc-server`` processes on 127.0.0.1
(started and stopped here); where network namespaces can be made, one more
runs in a namespace of its own behind a veth pair, so that the traffic
crosses a real network stack.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from near_tie import assert_chat_same_or_near_tie

import llamanative
from llamanative import Client, ResponseError, _core
from llamanative.errors import RpcConnectError
from llamanative.store.modelfile import parse_modelfile
from llamanative.types import format_params

GREEDY = {"temperature": 0, "num_predict": 24, "seed": 0}
PROMPT = [{"role": "user", "content": "Name three colours of the rainbow."}]
# Outside the checkout, so that the installed package (with its compiled _core) is the one imported.
SERVER_CWD = Path(__file__).resolve().parent.parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One ``llamanative rpc-server`` process."""

    def __init__(self, host: str = "127.0.0.1", port: int | None = None, prefix: list[str] | None = None) -> None:
        self.host = host
        self.port = port or free_port()
        self.endpoint = f"{host}:{self.port}"
        argv = [sys.executable, "-m", "llamanative", "rpc-server", "--host", host, "--port", str(self.port)]
        argv += ["--threads", "1"]
        self.proc = subprocess.Popen(
            [*(prefix or []), *argv],
            stdout=subprocess.DEVNULL,  # a line per connection: a pipe nobody reads would fill up
            stderr=subprocess.PIPE,
            text=True,
            cwd=SERVER_CWD,
            env={k: v for k, v in os.environ.items() if not k.startswith("LLAMANATIVE_RPC")},
        )
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rpc-server exited with {self.proc.returncode}: {self.proc.stderr.read()}")
            try:
                _core.rpc_probe(self.endpoint, 2.0)
                return
            except RpcConnectError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise
                time.sleep(0.2)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.kill()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture(scope="module")
def servers() -> Iterator[list[Server]]:
    pair = [Server(), Server()]
    yield pair
    for s in pair:
        s.stop()


@pytest.fixture
def fresh_client(model_store) -> Iterator[Client]:
    """A Client of its own: its models (and their connections to the servers) are closed after the test."""
    with Client(models_dir=model_store) as c:
        yield c


def chat(client: Client, **options):
    return client.chat("smol", messages=PROMPT, options={**GREEDY, **options}, logprobs=True, top_logprobs=5)


# -- the native layer ---------------------------------------------------------------------------------------
def test_a_server_s_devices_are_registered_and_listed(servers):
    names = _core.rpc_add_server(servers[0].endpoint)
    assert names and all(n.startswith("RPC") for n in names)
    assert _core.rpc_add_server(servers[0].endpoint) == names  # twice: the same devices
    assert _core.rpc_servers()[servers[0].endpoint] == names
    listed = {d["name"]: d for d in _core.devices()}
    for name in names:
        assert listed[name]["backend"] == "RPC"
        assert listed[name]["description"] == servers[0].endpoint
        assert listed[name]["memory_total"] > 0


def test_layers_split_over_two_servers_and_the_cpu(servers, smollm2_path):
    n_layer = _core.read_gguf_metadata(smollm2_path, arrays=False)["llama.block_count"]
    with _core.Model(smollm2_path, rpc=[s.endpoint for s in servers], n_gpu_layers=20) as model:
        assert model.rpc == tuple(s.endpoint for s in servers)
        placed = model.placement()
        assert placed[0] == {
            "device": "CPU",
            "backend": "CPU",
            "description": "this machine's CPU",
            "layers": n_layer + 1 - 20,
        }
        remote = placed[1:]
        assert [p["description"] for p in remote] == [s.endpoint for s in servers]
        assert all(p["backend"] == "RPC" and p["layers"] > 0 for p in remote)
        assert sum(p["layers"] for p in remote) == 20
    # Given proportions: all offloaded layers on the second server.
    with _core.Model(smollm2_path, rpc=[s.endpoint for s in servers], tensor_split=[0, 1]) as model:
        assert [(p["description"], p["layers"]) for p in model.placement()] == [(servers[1].endpoint, n_layer + 1)]


def test_a_model_without_rpc_stays_local_after_servers_were_added(servers, smollm2_path):
    _core.rpc_add_server(servers[0].endpoint)
    with _core.Model(smollm2_path) as model:
        assert model.rpc == ()
        assert {p["backend"] for p in model.placement()} <= {"CPU", "CUDA", "Vulkan", "Metal", "HIP", "SYCL"}


def test_bad_endpoints_are_typed_errors(smollm2_path):
    for bad in ("localhost", "127.0.0.1:", "127.0.0.1:99999", ":50052", "host:port", "[::1]:50052", "::1:50052"):
        with pytest.raises(ValueError):
            _core.Model(smollm2_path, rpc=[bad])
    with pytest.raises(TypeError):
        _core.Model(smollm2_path, rpc=[50052])
    with pytest.raises(RpcConnectError) as info:
        _core.Model(smollm2_path, rpc=[f"127.0.0.1:{free_port()}"])  # nothing listens
    assert "cannot connect" in str(info.value) and info.value.endpoint.startswith("127.0.0.1:")


def test_something_that_is_not_an_rpc_server_is_refused(smollm2_path):
    """A listener that answers nonsense (here: closes at once) or nothing is refused before ggml connects."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    endpoint = f"127.0.0.1:{listener.getsockname()[1]}"
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with pytest.raises(RpcConnectError, match="did not answer as a ggml RPC server"):
            _core.Model(smollm2_path, rpc=[endpoint])
    finally:
        stop.set()
        thread.join()
        listener.close()
    silent = socket.socket()  # accepts (the kernel does) and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(4)
    try:
        with pytest.raises(RpcConnectError, match="did not answer the handshake"):
            _core.rpc_probe(f"127.0.0.1:{silent.getsockname()[1]}", 0.5)
    finally:
        silent.close()


# -- through the Client -------------------------------------------------------------------------------------
def test_greedy_chat_over_two_servers_equals_the_local_run(servers, fresh_client):
    local = chat(fresh_client)
    split = chat(fresh_client, rpc_servers=[s.endpoint for s in servers], num_gpu=20)
    assert split.eval_count == local.eval_count
    # The servers' CPU backend computes on the GGUF's layout, this process's may use repacked or AMX
    # weights: a greedy flip at a near-tie is the only difference allowed.
    assert_chat_same_or_near_tie(local, split, "chat over two RPC servers")
    (m,) = [p for p in fresh_client.ps().models if p.devices and any(d.backend == "RPC" for d in p.devices)]
    remote = [d for d in m.devices if d.backend == "RPC"]
    assert sorted(d.description for d in remote) == sorted(s.endpoint for s in servers)
    assert all(d.size > 0 and d.layers > 0 for d in remote)
    assert m.size_vram == 0  # nothing in this machine's GPU memory


def test_the_environment_variable_places_every_model(servers, model_store, monkeypatch):
    monkeypatch.setenv("LLAMANATIVE_RPC_SERVERS", f"{servers[0].endpoint}, {servers[1].endpoint}")
    with Client(models_dir=model_store) as c:
        c.generate("smol", "Hello", options={"num_predict": 2, "temperature": 0})
        (m,) = c.ps().models
        assert sorted(d.description for d in m.devices if d.backend == "RPC") == sorted(s.endpoint for s in servers)
        # An empty list in the request overrides it: a local model (a reload).
        c.generate("smol", "Hello", options={"num_predict": 2, "temperature": 0, "rpc_servers": []})
        assert all(d.backend != "RPC" for m in c.ps().models for d in m.devices)


def test_bad_rpc_options_are_400s(fresh_client, monkeypatch):
    for bad in ("nohost", ["127.0.0.1:0"], [1234]):
        with pytest.raises(ResponseError) as info:
            fresh_client.generate("smol", "Hi", options={"rpc_servers": bad, "num_predict": 1})
        assert info.value.status_code == 400
    monkeypatch.setenv("LLAMANATIVE_RPC_SERVERS", "127.0.0.1")
    with pytest.raises(ResponseError) as info:
        fresh_client.generate("smol", "Hi", options={"num_predict": 1})
    assert info.value.status_code == 400 and "LLAMANATIVE_RPC_SERVERS" in info.value.error


def test_rpc_servers_as_a_parameter_and_a_modelfile_line(servers, fresh_client, smollm2_path):
    assert format_params({"rpc_servers": [f"{servers[0].endpoint},{servers[1].endpoint}"]}) == {
        "rpc_servers": [servers[0].endpoint, servers[1].endpoint]
    }
    mf = parse_modelfile(f"FROM {smollm2_path}\nPARAMETER rpc_servers {servers[0].endpoint}\n")
    fresh_client.create("smol-rpc", **mf.create_kwargs())
    assert servers[0].endpoint in fresh_client.show("smol-rpc").parameters
    fresh_client.generate("smol-rpc", "Hi", options={"num_predict": 1})
    (m,) = [m for m in fresh_client.ps().models if m.name.startswith("smol-rpc")]
    assert [d.description for d in m.devices if d.backend == "RPC"] == [servers[0].endpoint]
    fresh_client.delete("smol-rpc")


def test_a_server_that_is_down_is_a_502(fresh_client):
    with pytest.raises(ResponseError) as info:
        fresh_client.generate("smol", "Hi", options={"rpc_servers": [f"127.0.0.1:{free_port()}"], "num_predict": 1})
    assert info.value.status_code == 502 and "cannot connect" in info.value.error


def test_a_server_that_dies_mid_generation_is_a_typed_error_not_a_crash(fresh_client):
    server = Server()
    try:
        stream = fresh_client.generate(
            "smol",
            "Write a long story about the sea.",
            options={"rpc_servers": [server.endpoint], "num_predict": 400, "temperature": 0},
            stream=True,
        )
        outcome: list[BaseException | str] = []

        def read() -> None:
            try:
                for i, part in enumerate(stream):
                    if i == 2:
                        server.kill()
                    if part.done:
                        outcome.append(f"finished: {part.done_reason}")
            except BaseException as exc:
                outcome.append(exc)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(120)
        assert not reader.is_alive(), "the stream hangs after its RPC server died"
        (err,) = outcome
        assert isinstance(err, ResponseError), err
        assert err.status_code == 502 and "broke" in err.error
        assert server.endpoint in err.error
    finally:
        server.stop()
    # The process and its other models are unharmed; the dead server is refused up front.
    assert fresh_client.generate("smol", "Hi", options={"num_predict": 2}).done
    with pytest.raises(ResponseError) as info:
        fresh_client.generate("smol", "Hi", options={"rpc_servers": [server.endpoint], "num_predict": 1})
    assert info.value.status_code == 502
    # A server started again at the same address is used again.
    again = Server(port=server.port)
    try:
        out = fresh_client.generate("smol", "Hi", options={"rpc_servers": [again.endpoint], "num_predict": 2})
        assert out.done
    finally:
        again.stop()


# -- the command ----------------------------------------------------------------------------------------------
def test_rpc_server_warns_on_an_address_other_than_loopback():
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "llamanative", "rpc-server", "--host", "0.0.0.0", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=SERVER_CWD,
    )
    try:
        _wait_listening(f"127.0.0.1:{port}", proc)
    finally:
        proc.kill()
        err = proc.communicate(timeout=30)[1]
    assert "WARNING" in err and "no authentication" in err


def test_rpc_server_bad_arguments():
    for args in (["--port", "0"], ["--threads", "-1"]):
        out = subprocess.run(
            [sys.executable, "-m", "llamanative", "rpc-server", *args],
            capture_output=True,
            text=True,
            cwd=SERVER_CWD,
            timeout=60,
        )
        assert out.returncode == 1 and out.stderr.startswith("Error: "), out.stderr
    out = subprocess.run(
        [sys.executable, "-m", "llamanative", "rpc-server", "--device", "NoSuchDevice", "--port", str(free_port())],
        capture_output=True,
        text=True,
        cwd=SERVER_CWD,
        timeout=60,
    )
    assert out.returncode == 1 and "no device named 'NoSuchDevice'" in out.stderr


def _wait_listening(endpoint: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, "rpc-server exited"
        try:
            _core.rpc_probe(endpoint, 2.0)
            return
        except RpcConnectError:
            assert time.monotonic() < deadline, "rpc-server does not answer"
            time.sleep(0.2)


# -- across a real network stack ----------------------------------------------------------------------------
@pytest.fixture
def namespaced_server() -> Iterator[Server]:
    """A server in a network namespace of its own, reached through a veth pair (skipped where namespaces
    cannot be made: they need root or CAP_NET_ADMIN)."""
    ip = shutil.which("ip")
    if ip is None or os.geteuid() != 0:
        pytest.skip("network namespaces need the ip command and root")
    tag = uuid.uuid4().hex[:6]
    ns, outer, inner = f"lln{tag}", f"lo{tag}", f"li{tag}"
    octet = int(tag[:2], 16) % 200 + 20
    here, there = f"10.{octet}.77.1", f"10.{octet}.77.2"
    setup = [
        ["netns", "add", ns],
        ["link", "add", outer, "type", "veth", "peer", "name", inner],
        ["link", "set", inner, "netns", ns],
        ["addr", "add", f"{here}/30", "dev", outer],
        ["link", "set", outer, "up"],
        ["netns", "exec", ns, ip, "addr", "add", f"{there}/30", "dev", inner],
        ["netns", "exec", ns, ip, "link", "set", inner, "up"],
        ["netns", "exec", ns, ip, "link", "set", "lo", "up"],
    ]
    try:
        for step in setup:
            done = subprocess.run([ip, *step], capture_output=True, text=True)
            if done.returncode != 0:
                pytest.skip(f"cannot make a network namespace here: ip {' '.join(step)}: {done.stderr.strip()}")
        try:
            server = Server(host=there, prefix=[ip, "netns", "exec", ns])
        except (RuntimeError, RpcConnectError) as exc:  # the same server runs on loopback in the tests above
            pytest.skip(f"a process in a network namespace cannot serve here: {exc}")
        yield server
        server.stop()
    finally:
        subprocess.run([ip, "link", "del", outer], capture_output=True)
        subprocess.run([ip, "netns", "del", ns], capture_output=True)


def test_greedy_chat_through_a_server_in_another_network_namespace(namespaced_server, fresh_client):
    local = chat(fresh_client)
    remote = chat(fresh_client, rpc_servers=[namespaced_server.endpoint])
    assert_chat_same_or_near_tie(local, remote, "chat through a veth pair")
    (m,) = [m for m in fresh_client.ps().models if m.devices and any(d.backend == "RPC" for d in m.devices)]
    assert [d.description for d in m.devices if d.backend == "RPC"] == [namespaced_server.endpoint]


def test_version_and_protocol_are_exposed():
    assert llamanative._core.RPC_PROTOCOL.count(".") == 1
    assert llamanative._core.RPC_DEFAULT_PORT == 50052
