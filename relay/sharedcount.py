"""A count kept by several worker processes: the connections open across all of them.

One slot per worker in shared memory, each changed only by its worker and only under a POSIX record
lock. The lock is the kernel's: it is released when its holder dies, even by SIGKILL (a semaphore in
shared memory would stay taken and freeze every other worker). A dead worker's slot is zeroed by the
supervisor before its replacement starts, since its connections died with it.
"""

from __future__ import annotations

import fcntl
import mmap
import struct
import tempfile

_SLOT = struct.Struct("q")


class SharedCount:
    def __init__(self, slots: int):
        self.slots = slots
        # An unlinked file backs both the memory and the lock: inherited by fork, gone with the last holder.
        self._file = tempfile.TemporaryFile(prefix="relay-count-")
        self._file.truncate(_SLOT.size * slots)
        self._map = mmap.mmap(self._file.fileno(), _SLOT.size * slots)  # MAP_SHARED

    def add(self, slot: int, delta: int) -> int:
        """Changes this worker's slot; the total across all workers afterwards. Microseconds: the
        lock is held for a few loads and stores, never across an await."""
        fcntl.lockf(self._file, fcntl.LOCK_EX)
        try:
            values = struct.unpack_from(f"{self.slots}q", self._map)
            _SLOT.pack_into(self._map, _SLOT.size * slot, values[slot] + delta)
            return sum(values) + delta
        finally:
            fcntl.lockf(self._file, fcntl.LOCK_UN)

    def reset(self, slot: int) -> None:
        """A worker died: its connections are gone."""
        fcntl.lockf(self._file, fcntl.LOCK_EX)
        try:
            _SLOT.pack_into(self._map, _SLOT.size * slot, 0)
        finally:
            fcntl.lockf(self._file, fcntl.LOCK_UN)

    def total(self) -> int:
        return sum(struct.unpack_from(f"{self.slots}q", self._map))
