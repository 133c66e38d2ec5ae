"""Fetching data files: download (with pooch), verify the checksum, and only then put the file in place."""

from __future__ import annotations

import hashlib
import os
import tempfile
from contextlib import contextmanager
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

    pooch does the work (a temporary file, the hash check, an atomic move); this wrapper turns
    its errors into :class:`DataError` messages that say what to do.

    Raises:
        DataError: the server cannot be reached or answers with an error, the transfer is cut
            short, or the digest does not match.
    """
    import pooch
    import requests

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    downloader = pooch.HTTPDownloader(progressbar=False, timeout=timeout)
    known_hash = f"{algorithm}:{digest}" if digest else None
    try:
        # into a fresh folder beside dest, so an existing file stays until the new one is verified
        with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".download-") as tmp, _quiet_pooch():
            fetched = pooch.retrieve(url, known_hash, fname=dest.name, path=tmp, downloader=downloader)
            os.replace(fetched, dest)
    except requests.HTTPError as err:
        status = err.response.status_code if err.response is not None else "?"
        reason = err.response.reason if err.response is not None else err
        raise DataError(f"cannot download {url}: HTTP {status} {reason}") from err
    except ValueError as err:
        if "hash" in str(err).lower():
            raise DataError(
                f"the download of {url} is corrupt or not the expected file ({algorithm} mismatch): {err}"
            ) from err
        raise DataError(f"cannot download {url}: {err}") from err
    except (requests.RequestException, OSError) as err:
        if _cut_short(err):
            raise DataError(f"download of {url} was cut short: {err}") from err
        raise DataError(
            f"cannot download {url}: {err}. Without network access, put the file at {dest}"
            " yourself (or point root / SADKIT_DATA at a folder holding it)."
        ) from err
    return dest


def _cut_short(err: BaseException) -> bool:
    import requests

    text = f"{err} {err.__cause__ or ''} {err.__context__ or ''}"
    return isinstance(err, requests.exceptions.ChunkedEncodingError) or "IncompleteRead" in text


@contextmanager
def _quiet_pooch():
    """pooch logs every download at INFO; sadkit reports progress itself."""
    import logging

    import pooch

    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)
