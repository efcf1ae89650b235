# ggml's RPC backend: devices of other machines (or processes), served over
# TCP by `llamanative rpc-server` (ggml_backend_rpc_start_server), on which a
# Model places layers (Model(rpc=[...])).
#
# The RPC plugin is loaded like every backend (libggml-rpc, _backends.py); its
# two entry points are reached through ggml_backend_reg_get_proc_address, as
# llama.cpp's common/arg.cpp does, since a plugin is not linked.
#
# ggml's client aborts the process on a server it cannot reach, and connects
# whenever something asks an RPC device a question (its memory, a buffer)
# while no model holds a connection. So before any such question, while no
# open Model uses the server, this module connects itself and runs the
# protocol's handshake (HELLO) with a timeout: a server that is down, busy
# with another client, not an RPC server or of another protocol version is a
# typed RpcConnectError here, never a call into ggml. A connection that breaks
# later, in the middle of a call, is recorded by the plugin instead of
# aborting (src/ggml_fixes/rpc_no_abort.h); _rpc_check raises RpcLostError
# after each call that can reach a server.

import ipaddress as _ipaddress
import socket as _socket
import struct as _struct

cdef extern from "ggml-rpc.h":
    int RPC_PROTO_MAJOR_VERSION
    int RPC_PROTO_MINOR_VERSION
    int GGML_RPC_MAX_SERVERS

cdef extern from *:
    """
    #ifdef LLAMANATIVE_HAVE_RPC
    extern "C" unsigned long llamanative_rpc_failures(void);
    static inline unsigned long lln_rpc_failures(void) { return llamanative_rpc_failures(); }
    #else
    static inline unsigned long lln_rpc_failures(void) { return 0; }
    #endif
    """
    unsigned long lln_rpc_failures() nogil

ctypedef llama.ggml_backend_reg_t (*_rpc_add_server_t)(const char * endpoint) noexcept nogil
ctypedef void (*_rpc_start_server_t)(const char * endpoint, const char * cache_dir, size_t n_threads,
                                     size_t n_devices, llama.ggml_backend_dev_t * devices) noexcept nogil

# The handshake, as ggml-rpc.cpp writes it: | cmd (1 byte) | size (8 bytes, LE) | request |, answered by
# | size (8 bytes) | major, minor, patch, padding (1 byte each) | conn_caps[24] |. Capabilities all zero
# ask for the plain TCP transport.
_RPC_CMD_HELLO = 14
_RPC_CONN_CAPS_SIZE = 24
_RPC_HELLO_RSP_SIZE = 4 + _RPC_CONN_CAPS_SIZE
RPC_DEFAULT_PORT = 50052
RPC_PROTOCOL = f"{RPC_PROTO_MAJOR_VERSION}.{RPC_PROTO_MINOR_VERSION}"

# Re-entrant: a Model collected while the lock is held (the garbage collector runs at any
# allocation) gives its count back under the same lock.
_rpc_lock = _threading.RLock()
_rpc_devices = {}  # endpoint -> tuple of its device names ("RPC0", ...), registered with ggml
_rpc_users = {}  # endpoint -> open Models placed on it (they hold ggml's connection to it)
_rpc_lost = set()  # endpoints whose connection broke: probed again before any use, whatever holds them


def parse_rpc_endpoint(endpoint) -> tuple:
    """``"host:port"`` as ``(host, port)``: an IPv4 address or a host name, as ggml's RPC transport takes
    them (it connects over IPv4 only, and would abort on an endpoint it cannot parse).

    Raises:
        ValueError: not ``host:port``, an IPv6 address, or a port outside 1..65535.
    """
    if not isinstance(endpoint, str):
        raise TypeError(f"an RPC endpoint is a 'host:port' string, got {type(endpoint).__name__}")
    text = endpoint.strip()
    host, sep, port_text = text.rpartition(":")
    if ":" in host or "[" in host:
        raise ValueError(f"bad RPC endpoint {endpoint!r}: ggml's RPC transport takes IPv4 addresses and host "
                         f"names, not IPv6")
    if not sep or not host or not port_text.isdigit() or any(c.isspace() for c in host):
        raise ValueError(f"bad RPC endpoint {endpoint!r}: expected 'host:port', e.g. '127.0.0.1:{RPC_DEFAULT_PORT}'")
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise ValueError(f"bad RPC endpoint {endpoint!r}: the port must be between 1 and 65535")
    return host, port


def rpc_is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host.lower() == "localhost":
        return True
    try:
        return _ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def rpc_probe(endpoint: str, timeout: float = 5.0) -> tuple:
    """Connect to an RPC server and run the protocol's handshake; return its version ``(major, minor, patch)``.

    The connection is closed again: a server serves one client at a time,
    and this one is then free for the next.

    Raises:
        ValueError: a malformed endpoint.
        RpcConnectError: nothing listens there, the server did not answer the
            handshake within ``timeout`` seconds (it serves another client, or
            is not an RPC server), or it speaks another major protocol version.
    """
    host, port = parse_rpc_endpoint(endpoint)
    try:
        # IPv4, as ggml's client connects (gethostbyname): a name that resolves to IPv6 only is refused here.
        family, kind, proto, _name, address = _socket.getaddrinfo(host, port, _socket.AF_INET,
                                                                  _socket.SOCK_STREAM)[0]
        sock = _socket.socket(family, kind, proto)
        sock.settimeout(timeout)
        try:
            sock.connect(address)
        except BaseException:
            sock.close()
            raise
    except _socket.timeout:
        raise RpcConnectError(f"cannot connect to the RPC server at {endpoint} within {timeout:g} s", endpoint) from None
    except OSError as exc:
        raise RpcConnectError(f"cannot connect to the RPC server at {endpoint}: {exc.strerror or exc} "
                              f"(start one with `llamanative rpc-server --port {port}`)", endpoint) from exc
    answer = b""
    try:
        with sock:
            sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
            sock.sendall(bytes([_RPC_CMD_HELLO]) + _struct.pack("<Q", _RPC_CONN_CAPS_SIZE)
                         + bytes(_RPC_CONN_CAPS_SIZE))
            while len(answer) < 8 + _RPC_HELLO_RSP_SIZE:
                part = sock.recv(8 + _RPC_HELLO_RSP_SIZE - len(answer))
                if not part:
                    break
                answer += part
    except _socket.timeout:
        raise RpcConnectError(
            f"the RPC server at {endpoint} did not answer the handshake within {timeout:g} s: it serves one "
            f"client at a time (is another process connected to it?), or it is not an RPC server", endpoint) from None
    except OSError as exc:
        raise RpcConnectError(f"{endpoint} did not answer as a ggml RPC server (protocol {RPC_PROTOCOL}) does: "
                              f"{exc.strerror or exc}", endpoint) from exc
    if len(answer) < 8 + _RPC_HELLO_RSP_SIZE or _struct.unpack_from("<Q", answer)[0] != _RPC_HELLO_RSP_SIZE:
        raise RpcConnectError(f"{endpoint} did not answer as a ggml RPC server (protocol {RPC_PROTOCOL}) does",
                              endpoint)
    major, minor, patch = answer[8], answer[9], answer[10]
    if major != RPC_PROTO_MAJOR_VERSION or minor > RPC_PROTO_MINOR_VERSION:
        raise RpcConnectError(
            f"the RPC server at {endpoint} speaks protocol {major}.{minor}.{patch}, this build "
            f"{RPC_PROTOCOL}: every side must run the same llamanative (or llama.cpp) build", endpoint)
    return (major, minor, patch)


cdef llama.ggml_backend_reg_t _rpc_reg() except NULL:
    _require_backends()
    cdef llama.ggml_backend_reg_t reg = llama.ggml_backend_reg_by_name(b"RPC")
    if reg == NULL:
        raise RpcConnectError("this build has no RPC backend (libggml-rpc was not built or not loaded: "
                              "llamanative.backend_load_log() tells which)", None)
    return reg


def rpc_supported() -> bool:
    """Whether the RPC backend plugin is loaded (built with ``GGML_RPC``, the default)."""
    _require_backends()
    return llama.ggml_backend_reg_by_name(b"RPC") != NULL


def rpc_add_server(endpoint: str, *, double timeout=5.0) -> list:
    """Register the devices of the RPC server at ``endpoint`` with ggml; return their names.

    Names are ggml's: ``"RPC0"``, ``"RPC1"``... in the order servers and
    their devices are added in this process; :func:`devices` lists them with
    the endpoint as description. Adding a server twice returns its devices
    again. While no open :class:`Model` uses the server it is probed first
    (:func:`rpc_probe`). An endpoint that is not on the loopback interface
    is logged as a warning: the protocol has neither authentication nor
    encryption.

    Raises:
        ValueError: a malformed endpoint.
        RpcConnectError: see :func:`rpc_probe`; or there is no RPC backend,
            or the server has no device, or ggml's limit of
            ``GGML_RPC_MAX_SERVERS`` servers is reached.
    """
    host, _port = parse_rpc_endpoint(endpoint)
    cdef llama.ggml_backend_reg_t reg = _rpc_reg()
    cdef llama.ggml_backend_reg_t server
    cdef _rpc_add_server_t add
    cdef unsigned long mark
    cdef bytes bendpoint = endpoint.encode()
    cdef const char * cendpoint = bendpoint
    with _rpc_lock:
        known = _rpc_devices.get(endpoint)
        if _rpc_users.get(endpoint, 0) == 0 or endpoint in _rpc_lost:
            rpc_probe(endpoint, timeout)
            if _rpc_users.get(endpoint, 0) == 0:
                _rpc_lost.discard(endpoint)  # nothing holds the broken connection: ggml connects anew
        if known is not None:
            return list(known)
        if len(_rpc_devices) >= GGML_RPC_MAX_SERVERS:
            raise RpcConnectError(f"at most {GGML_RPC_MAX_SERVERS} RPC servers can be used in one process", endpoint)
        if not rpc_is_loopback(host):
            _native_logger.warning(
                "RPC server %s is not on this machine: ggml's RPC protocol has no authentication and no "
                "encryption; use it on a trusted network only", endpoint)
        add = <_rpc_add_server_t> llama.ggml_backend_reg_get_proc_address(reg, b"ggml_backend_rpc_add_server")
        if add == NULL:
            raise RpcConnectError("the RPC backend has no ggml_backend_rpc_add_server", endpoint)
        mark = lln_rpc_failures()
        with nogil:
            server = add(cendpoint)
        if lln_rpc_failures() != mark:
            raise RpcLostError(f"the connection to the RPC server at {endpoint} broke while its devices were "
                               f"listed", endpoint)
        if server == NULL:
            raise RpcConnectError(f"the RPC server at {endpoint} has no device to offer", endpoint)
        llama.ggml_backend_register(server)
        names = tuple(llama.ggml_backend_dev_name(llama.ggml_backend_reg_dev_get(server, i)).decode()
                      for i in range(llama.ggml_backend_reg_dev_count(server)))
        _rpc_devices[endpoint] = names
        return list(names)


def rpc_servers() -> dict:
    """The RPC servers registered in this process: endpoint -> its device names."""
    with _rpc_lock:
        return {endpoint: list(names) for endpoint, names in _rpc_devices.items()}


def rpc_failures() -> int:
    """How many calls to RPC servers failed on a broken connection in this process (0 while all are well)."""
    return lln_rpc_failures()


cdef object _rpc_endpoint_of(llama.ggml_backend_dev_t dev):
    """The endpoint of an RPC device, None for any other device."""
    if llama.ggml_backend_reg_name(llama.ggml_backend_dev_backend_reg(dev)) != b"RPC":
        return None
    return llama.ggml_backend_dev_description(dev).decode()


cdef bint _rpc_reachable(str endpoint):
    """Whether asking an RPC device of ``endpoint`` a question cannot make ggml abort: a Model holds a
    connection to it, or the handshake succeeds now."""
    with _rpc_lock:
        if _rpc_users.get(endpoint, 0) > 0 and endpoint not in _rpc_lost:
            return True
    try:
        rpc_probe(endpoint, 2.0)
    except RpcConnectError:
        return False
    return True


cdef _rpc_use(tuple endpoints, int delta):
    """Count Models open on each of ``endpoints`` (+1 at load, -1 at close)."""
    with _rpc_lock:
        for endpoint in endpoints:
            _rpc_users[endpoint] = max(0, _rpc_users.get(endpoint, 0) + delta)


cdef int _rpc_check(unsigned long mark, tuple endpoints, str op) except -1:
    """Raise RpcLostError when a call to an RPC server broke since ``mark`` (lln_rpc_failures())."""
    if lln_rpc_failures() == mark:
        return 0
    with _rpc_lock:
        _rpc_lost.update(endpoints)
    flush_native_log()  # what ggml's dispatcher thread said about the connection
    where = ", ".join(endpoints) if endpoints else "an RPC server"
    raise RpcLostError(
        f"the connection to {where} broke during {op} (the server stopped or the network failed): the "
        f"results of this call are lost and the model cannot be used any more; close it and load it again "
        f"once the server runs", endpoints[0] if endpoints else None)


def rpc_serve(endpoint: str, *, cache_dir=None, int n_threads=0, devices=None) -> None:
    """Serve this process's devices to RPC clients at ``endpoint``; returns only if the server cannot start.

    ggml's own server (``ggml_backend_rpc_start_server``, what llama.cpp's
    ``rpc-server`` runs): one client at a time, each connection a session
    whose buffers are freed when it closes. ``cache_dir`` keeps large
    tensors the clients upload, keyed by hash, so a model's second load
    sends hashes instead of weights. ``devices``: names from
    :func:`devices` (default: every GPU, else the CPU); ``n_threads`` for
    the CPU backend (0: the CPUs available). The GIL is released; run it
    in a thread of its own and end the process to stop it.

    Raises:
        ValueError: a malformed endpoint, an unknown device, or an RPC device.
        RpcConnectError: there is no RPC backend.
    """
    parse_rpc_endpoint(endpoint)
    cdef llama.ggml_backend_reg_t reg = _rpc_reg()
    cdef _rpc_start_server_t start = <_rpc_start_server_t> llama.ggml_backend_reg_get_proc_address(reg, b"ggml_backend_rpc_start_server")
    if start == NULL:
        raise RpcConnectError("the RPC backend has no ggml_backend_rpc_start_server", endpoint)
    cdef vector[llama.ggml_backend_dev_t] devs
    cdef llama.ggml_backend_dev_t dev
    cdef size_t i
    if devices:
        for name in devices:
            dev = llama.ggml_backend_dev_by_name(str(name).encode())
            if dev == NULL:
                known = [d["name"] for d in _all_devices()]
                raise ValueError(f"no device named {name!r}; devices here: {', '.join(known)}")
            if _rpc_endpoint_of(dev) is not None:
                raise ValueError(f"{name} is a remote (RPC) device: a server serves its own devices")
            devs.push_back(dev)
    else:
        for i in range(llama.ggml_backend_dev_count()):
            dev = llama.ggml_backend_dev_get(i)
            if (llama.ggml_backend_dev_get_type(dev) in (llama.GGML_BACKEND_DEVICE_TYPE_GPU,
                                                          llama.GGML_BACKEND_DEVICE_TYPE_IGPU)
                    and _rpc_endpoint_of(dev) is None):
                devs.push_back(dev)
        if devs.empty():
            dev = llama.ggml_backend_dev_by_type(llama.GGML_BACKEND_DEVICE_TYPE_CPU)
            if dev == NULL:
                raise ValueError("no CPU device is loaded")
            devs.push_back(dev)
    cdef size_t threads = n_threads if n_threads > 0 else _cpu_limit().cpus
    cdef bytes bendpoint = endpoint.encode()
    cdef const char * cendpoint = bendpoint
    cdef bytes bcache = _os.fsencode(cache_dir) if cache_dir is not None else b""
    cdef const char * ccache = <const char *> bcache if cache_dir is not None else NULL
    if cache_dir is not None:
        _os.makedirs(cache_dir, exist_ok=True)
    with nogil:
        start(cendpoint, ccache, threads, devs.size(), devs.data())
