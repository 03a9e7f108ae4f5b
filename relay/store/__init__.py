"""The bounce list: `open_store(url)` picks the backend from the `bounce_list:` URL.

    sqlite:///relative/path.db      (relative to the working directory; config.py
                                     makes it relative to the config file first)
    sqlite:////absolute/path.db     (four slashes: an absolute path)
    postgresql://user@host:port/db  (also postgres://; ?schema=...&prefix=...)
"""

from __future__ import annotations

from .base import BounceEntry, BounceStore, StoreBusy, StoreError, redact

__all__ = ["open_store", "check_store", "BounceEntry", "BounceStore", "StoreBusy", "StoreError"]


def open_store(url: str) -> BounceStore:
    """A store for `url`. SQLite opens (and creates) the file now; PostgreSQL
    connects at the first call, so this never blocks on the network."""
    if not isinstance(url, str) or not url:
        raise ValueError(f"bounce list URL {url!r}: expected sqlite:///PATH or postgresql://...")
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"bounce list URL {url!r}: expected sqlite:///PATH or postgresql://...")
    scheme = scheme.lower()
    if scheme == "sqlite":
        # sqlite:///a.db -> "/a.db" after the authority's empty host; drop that one slash.
        if not rest.startswith("/") or len(rest) < 2:
            raise ValueError(f"bounce list URL {url!r}: expected sqlite:///relative.db or sqlite:////absolute.db")
        from .sqlite import SQLiteBounceStore

        return SQLiteBounceStore(rest[1:], url=url)
    if scheme in ("postgresql", "postgres"):
        from .postgresql import PostgresBounceStore

        return PostgresBounceStore(url)
    raise ValueError(f"bounce list URL {redact(url)!r}: unknown scheme {scheme!r} (expected sqlite or postgresql)")


def check_store(url: str) -> str | None:
    """Why the bounce list at `url` cannot be used, judged offline (check-config): for SQLite,
    an existing file that is not a bounce list database (or one a newer relay migrated); for
    PostgreSQL, a driver this installation lacks. None when fine, or not checkable offline."""
    scheme, sep, rest = url.partition("://")
    if sep and scheme.lower() == "sqlite" and rest.startswith("/") and len(rest) > 1:
        from .sqlite import check_file

        return check_file(rest[1:])
    if sep and scheme.lower() in ("postgresql", "postgres"):
        from .postgresql import PostgresBounceStore, driver_missing

        why = driver_missing(url)
        if why is None:
            try:
                PostgresBounceStore(url)  # the URL's schema and prefix; it connects nothing
            except StoreError as exc:
                why = str(exc)
        return why
    return None
