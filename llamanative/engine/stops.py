"""Stop strings over a stream of text pieces.

A stop string may arrive split across tokens, so text that could be the
start of one is held back until the next piece decides. Nothing of a stop
string is ever emitted.
"""

from __future__ import annotations


class StopMatcher:
    """Feed pieces with :meth:`push`; it returns the text safe to emit.

    Args:
        stops: the stop strings (empty strings are ignored).
    """

    def __init__(self, stops: list[str] | tuple[str, ...] = ()) -> None:
        self._stops = tuple(s for s in stops if s)
        self._held = ""
        self.stopped = False

    def push(self, piece: str) -> str:
        """Add ``piece``; return what can be emitted now. After a stop, returns ``""``."""
        if self.stopped:
            return ""
        if not self._stops:
            return piece
        text = self._held + piece
        cut = min((i for i in (text.find(s) for s in self._stops) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped = True
            self._held = ""
            return text[:cut]
        keep = self._partial_suffix(text)
        self._held = text[len(text) - keep:] if keep else ""
        return text[: len(text) - keep]

    def flush(self) -> str:
        """At the end of generation: release held-back text (it was no stop string)."""
        out, self._held = ("" if self.stopped else self._held), ""
        return out

    def _partial_suffix(self, text: str) -> int:
        """Length of the longest end of ``text`` that is a proper prefix of a stop string."""
        best = 0
        for s in self._stops:
            for n in range(min(len(s) - 1, len(text)), best, -1):
                if text.endswith(s[:n]):
                    best = n
                    break
        return best
