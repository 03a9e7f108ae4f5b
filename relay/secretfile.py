"""Reading the secrets the config and the policies name by path: `upstream.password_file`,
`events[].secret_file`, `bounces_in.key_file`, a DKIM `key:` of domains.yaml.

One reader for all of them (review20 F7, F6):

- Read at load (check-config, serve, every reload), never at first use, so that a file the relay
  cannot use is a config error then, not a traceback at each message (F3).
- Through yamlfile.read_regular, as every config and policy file: a regular file only (a FIFO,
  /dev/urandom, /dev/zero, a directory is an error, never a hang or an endless read), and at most
  `limit` bytes.
- An error never quotes a value that may be the secret itself. Pasting the password, the PEM key or
  the `whsec_...` secret where the path of its file belongs is a common mistake (several tools take
  them inline), and the error goes to stderr and the journal, read by more people than /etc/relay.
  A value is named only when it reads as a path (see `_may_be_the_secret`) or a file exists there.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .yamlfile import FileProblem, FileTooLarge, read_regular

# A password, a webhook secret or a VERP key is one short line; 4 KiB is far more than any.
SECRET_MAX_BYTES = 4096
# A PEM private key: RSA 4096 is 3.3 KB, RSA 8192 about 6.5 KB.
KEY_MAX_BYTES = 64 * 1024

_PATH_CHARS = re.compile(r"[A-Za-z0-9._@%+,:=~-]+")
_FILE_NAME = re.compile(r"[A-Za-z0-9_@%,~-][A-Za-z0-9._@%,~-]*\.[A-Za-z][A-Za-z0-9]{0,9}")


class SecretFileError(ValueError):
    """Why a secret file cannot be used; the text never holds a value that may be the secret."""


def resolve(value: str, base: Path) -> Path:
    """The file `value` names: relative to `base` (the directory of the file that names it)."""
    return Path(value) if Path(value).is_absolute() else base / value


def _may_be_the_secret(value: str, path: Path) -> bool:
    """True unless `value` reads as a path: written as one (`/...`, `./...`, `../...`), every part of it
    made of the characters of file names, and either its directory exists or its last part is a file
    name with an extension (`dkim.key`, `smarthost.pw`). A bare word (`S3cretPassw0rd!`, `verp.key`),
    a PEM block, a `whsec_` secret or base64 (`/aB+cD/==`) is not named."""
    if not value.startswith(("/", "./", "../")):
        return True
    parts = [p for p in value.split("/") if p]
    if not parts or not all(_PATH_CHARS.fullmatch(p) for p in parts):
        return True
    try:
        if path.parent.is_dir() and path.parent != Path("/"):
            return False
    except OSError:
        pass
    return not _FILE_NAME.fullmatch(parts[-1])


def describe(value: str, path: Path, what: str) -> str:
    """How an error names the file of a missing secret: `file PATH`, or a hint that names nothing
    of the value when it may be the secret itself."""
    if not _may_be_the_secret(value, path):
        return f"file {path} does not exist"
    where = f" in {path.parent}" if "/" not in value and "\x00" not in value else ""
    return (f"no such file{where} (the value is not shown, as it may be {what} itself: write the path of "
            f"a file that holds it)")


def read_secret_file(value: str, base: Path, what: str, limit: int = SECRET_MAX_BYTES) -> tuple[Path, bytes]:
    """The resolved path and the bytes of the secret file `value` names; a SecretFileError saying why
    it cannot be used. `what` names the secret for the errors ("the password", "the VERP key")."""
    if "\x00" in value:
        raise SecretFileError(f"contains a NUL byte, which no file name may hold (the value is not shown, as it may be "
                              f"{what} itself)")
    path = resolve(value, base)
    try:
        return path, read_regular(path, limit)
    except FileTooLarge:
        raise SecretFileError(f"file {path}: too large: over {limit} bytes, far more than {what} needs "
                              f"(is it the right file?)") from None
    except FileProblem as exc:
        if os.path.lexists(path):  # something is there: its name is a name, not a secret
            raise SecretFileError(f"file {path} {exc}" if str(exc).startswith("is ") else
                                  f"file {path}: {exc}") from None
        if exc.missing:
            raise SecretFileError(describe(value, path, what)) from None
        # ENAMETOOLONG, ENOTDIR, ELOOP ...: the OS refuses the name; a pasted PEM key is too long a name
        if _may_be_the_secret(value, path):
            raise SecretFileError(f"{exc} (the value is not shown, as it may be {what} itself: write the path "
                                  f"of a file that holds it)") from None
        raise SecretFileError(f"file {path}: {exc}") from None


def decode_line(data: bytes, what: str) -> str:
    """A secret of one line of UTF-8 text (a password): trailing and leading white space dropped."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SecretFileError(f"not UTF-8 text (byte {exc.start}); save the file as UTF-8") from None
    text = text.strip()
    if not text:
        raise SecretFileError(f"the file is empty: write {what} in it")
    if "\n" in text or "\r" in text:
        raise SecretFileError(f"holds more than one line: write {what} alone on one line")
    return text
