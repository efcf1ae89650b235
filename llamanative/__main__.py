"""``llamanative`` (or ``python -m llamanative``): the command line; see :mod:`llamanative.cli`."""

from __future__ import annotations

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
