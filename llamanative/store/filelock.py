"""Exclusive advisory locks on an open file, on POSIX and on Windows.

POSIX uses ``fcntl.flock`` on the whole file; Windows uses ``msvcrt.locking``
on the file's first byte (a byte past the end of the file may be locked, so
an empty lock file works). Either way the lock belongs to the open file: it
is released by :func:`unlock` or when the descriptor is closed, and another
open of the same path, in this process or another, cannot take it meanwhile.

The platform's module is imported when a lock is first taken, not when this
module is: importing the store works on every platform.
"""

from __future__ import annotations

import os
import sys
import time

__all__ = ["lock", "try_lock", "unlock"]

_POLL_S = 0.02

if sys.platform == "win32":

    def try_lock(fd: int) -> bool:
        """Take the exclusive lock on ``fd`` unless another open file holds it; return whether it was taken."""
        import msvcrt

        os.lseek(fd, 0, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def unlock(fd: int) -> None:
        """Release the lock taken on ``fd``."""
        import msvcrt

        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

    def lock(fd: int) -> None:
        """Wait for the exclusive lock on ``fd`` and take it.

        Polls :func:`try_lock`: ``msvcrt``'s own blocking mode gives up after ten seconds.
        """
        while not try_lock(fd):
            time.sleep(_POLL_S)

else:

    def try_lock(fd: int) -> bool:
        """Take the exclusive lock on ``fd`` unless another open file holds it; return whether it was taken."""
        import fcntl

        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def unlock(fd: int) -> None:
        """Release the lock taken on ``fd``."""
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_UN)

    def lock(fd: int) -> None:
        """Wait for the exclusive lock on ``fd`` and take it."""
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX)
