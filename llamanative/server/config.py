"""Where the server listens and which origins it serves: ``LLAMANATIVE_HOST`` and ``LLAMANATIVE_ORIGINS``.

Both take Ollama's syntax (``OLLAMA_HOST``, ``OLLAMA_ORIGINS``):

- host: ``host``, ``host:port``, ``:port``, ``[v6]:port``, ``http://host:port``,
  ``https://host`` (then port 443, ``http://`` alone 80); the default is
  ``127.0.0.1:11434``. An empty host (``:8080``) is 127.0.0.1, as
  ollama-python reads it: binding every interface needs saying so (``0.0.0.0``).
- origins: a comma-separated list; ``*`` in an origin matches any text
  (``http://localhost:*``, ``chrome-extension://*``), ``*`` alone any origin.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 11434


@dataclass(frozen=True)
class Address:
    host: str
    port: int

    @property
    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False  # a host name: it may resolve to anything

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_host(value: str | None) -> Address:
    """``LLAMANATIVE_HOST``'s value as an address (the defaults for what it leaves out).

    >>> parse_host(None), parse_host("0.0.0.0"), parse_host(":8080")
    (Address(host='127.0.0.1', port=11434), Address(host='0.0.0.0', port=11434), Address(host='127.0.0.1', port=8080))
    >>> parse_host("http://[::1]:9000"), parse_host("https://example.com")
    (Address(host='::1', port=9000), Address(host='example.com', port=443))

    Raises:
        ValueError: a port that is not a number from 0 to 65535.
    """
    text = (value or "").strip()
    port = DEFAULT_PORT
    scheme, sep, rest = text.partition("://")
    if not sep:
        rest = text
    elif scheme == "http":
        port = 80
    elif scheme == "https":
        port = 443
    hostport = rest.split("/", 1)[0]
    host = hostport
    m = re.fullmatch(r"\[([^\]]*)\](?::(.*))?", hostport)
    if m:
        host, port_text = m.group(1), m.group(2)
    elif hostport.count(":") == 1:
        host, port_text = hostport.split(":")
    else:
        port_text = None  # a bare IPv6 address or a host without a port
    if port_text:
        if not port_text.isdigit() or int(port_text) > 65535:
            raise ValueError(f"invalid port {port_text!r} in host {value!r}")
        port = int(port_text)
    return Address(host or DEFAULT_HOST, port)


def parse_origins(value: str | Iterable[str] | None) -> tuple[str, ...]:
    """A comma-separated origin list (or a list of them, each of which may hold commas) as a tuple."""
    if value is None:
        return ()
    parts = [value] if isinstance(value, str) else list(value)
    return tuple(o.strip() for part in parts for o in part.split(",") if o.strip())


def origins_regex(origins: Iterable[str]) -> str:
    """One regular expression that matches exactly the given origin patterns (``*`` matches any text)."""
    return "|".join("".join(".*" if c == "*" else re.escape(c) for c in o) for o in origins)
