"""Fetching data files: download to a temporary name, verify the SHA-256, then move into place."""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from .errors import DataError

_CHUNK = 1 << 20


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file (``sha256`` or ``md5``)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_file(path: str | os.PathLike, digest: str, algorithm: str = "sha256") -> None:
    """Raise :class:`DataError` unless the file's digest is ``digest``."""
    actual = file_digest(path, algorithm)
    if actual != digest.lower():
        raise DataError(
            f"{path} is corrupt or not the expected file: {algorithm} {actual}, expected {digest}."
            " Delete it to download it again, or replace it with an intact copy."
        )


def download(
    url: str, dest: str | os.PathLike, digest: str | None, algorithm: str = "sha256", timeout: float = 60.0
) -> Path:
    """Download ``url`` to ``dest`` and check it; nothing is left at ``dest`` unless it is intact.

    Raises:
        DataError: the server cannot be reached or answers with an error, the transfer is cut
            short, or the digest does not match.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
                expected = response.headers.get("Content-Length")
                received = 0
                for chunk in iter(lambda: response.read(_CHUNK), b""):
                    out.write(chunk)
                    received += len(chunk)
        except urllib.error.HTTPError as err:
            raise DataError(f"cannot download {url}: HTTP {err.code} {err.reason}") from err
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as err:
            reason = getattr(err, "reason", err)
            raise DataError(
                f"cannot download {url}: {reason}. Without network access, put the file at {dest}"
                " yourself (or point root / SADKIT_DATA at a folder holding it)."
            ) from err
        if expected is not None and received != int(expected):
            raise DataError(f"download of {url} was cut short: {received} of {expected} bytes")
        if digest is not None:
            verify_file(tmp, digest, algorithm)
        os.replace(tmp, dest)
        return dest
    finally:
        tmp.unlink(missing_ok=True)
