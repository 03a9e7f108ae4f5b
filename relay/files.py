"""Files the relay shares with operator commands run as root.

`sudo relay bounces add ...` writes events into the relay's spool directories and JSON-lines file. A file
it creates there would be root's, and the relay, running as its own user (`User=relay`), could no longer
write to it: every later event would be dropped. So a file created by root in a directory the relay owns
is given to the directory's owner, the relay's user.
"""

from __future__ import annotations

import os
import select


def give_to_directory_owner(fd: int, directory) -> None:
    """When running as root, make the open file `fd` belong to the owner (user and group) of `directory`."""
    if os.geteuid() != 0:
        return
    owner = os.stat(directory)
    if os.fstat(fd).st_uid != owner.st_uid:
        os.fchown(fd, owner.st_uid, owner.st_gid)


def write_all(fd: int, data) -> None:
    """Write all of `data` to `fd`: os.write may take part of it (a pipe, a signal, a nearly full disk),
    and a descriptor inherited non-blocking (a stdout) is waited on until it takes more. An OSError
    (ENOSPC) leaves what was written before it written."""
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:
            select.select([], [fd], [])
