"""Fetching data files: download (with pooch), verify the checksum, and only then put the file in place;
try mirrors in turn, and extract archives without writing outside the destination."""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
from collections.abc import Sequence
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


def fetch_file(
    path: Path, digest: str, urls: Sequence[str], *, algorithm: str = "sha256", download_missing: bool = True
) -> Path:
    """Make sure ``path`` exists with digest ``digest``, downloading it from the first of ``urls`` that works.

    Raises:
        DataError: a present file with the wrong digest; a missing file when downloading is off; or every
            URL failing (the message lists each error).
    """
    if path.is_file():
        verify_file(path, digest, algorithm=algorithm)
        return path
    if not download_missing:
        raise DataError(f"{path} does not exist and download=False; put the official file there or allow downloading")
    errors = []
    for url in urls:
        try:
            return download(url, path, digest, algorithm=algorithm)
        except DataError as err:
            errors.append(str(err))
    raise DataError(f"cannot get {path.name}: " + " | ".join(errors))


def mirror_urls(bases: Sequence[str], name: str) -> list[str]:
    """``<base>/<name>`` for every base URL, in order."""
    return [f"{base.rstrip('/')}/{name}" for base in bases]


def extract_folder(archive: Path, root: Path, folder: str) -> None:
    """Extract the files under ``folder/`` of a tar archive into ``root/folder``, keeping files already there.

    The archive is extracted next to the final folder first and the files are then moved in, so a failed
    extraction leaves nothing half-done; nothing is written outside ``root``.

    Raises:
        DataError: the archive cannot be read or holds no file under ``folder/``.
    """
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root, prefix=".extract-") as tmp:
        _safe_extract(archive, Path(tmp), folder)
        (root / folder).mkdir(parents=True, exist_ok=True)
        for item in (Path(tmp) / folder).iterdir():
            target = root / folder / item.name
            if item.is_file() and not target.exists():
                shutil.move(str(item), target)


def _safe_extract(archive: Path, dest: Path, folder: str) -> None:
    """Extract the regular files under ``folder/`` of a tar archive into ``dest`` (nothing outside it)."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = []
            for m in tar.getmembers():
                parts = Path(m.name).parts
                if not parts or parts[0] != folder or ".." in parts or Path(m.name).is_absolute():
                    continue
                if m.isfile() or m.isdir():
                    members.append(m)
            if not any(m.isfile() for m in members):
                raise DataError(f"{archive} holds no file under {folder}/; it is not the expected archive")
            extract_kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(dest, members=members, **extract_kwargs)
    except (tarfile.TarError, OSError, EOFError) as err:
        raise DataError(f"cannot extract {archive}: {err}; delete it to download it again") from err


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
