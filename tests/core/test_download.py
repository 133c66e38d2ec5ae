"""sadkit.download against a real HTTP server on 127.0.0.1 (no network needed)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from httpserver import closed_port, serve

from sadkit.download import download, file_digest, verify_file
from sadkit.errors import DataError

PAYLOAD = bytes(range(256)) * 1024  # 256 KiB, so truncation cuts a multi-chunk body


@pytest.fixture()
def served(tmp_path: Path) -> Path:
    folder = tmp_path / "served"
    folder.mkdir()
    (folder / "file.bin").write_bytes(PAYLOAD)
    return folder


@pytest.fixture()
def dest_dir(tmp_path: Path) -> Path:
    return tmp_path / "dest" / "sub"  # download() creates missing folders


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def leftovers(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_digests(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(PAYLOAD)
    assert file_digest(path) == sha256(PAYLOAD)
    assert file_digest(path, "md5") == hashlib.md5(PAYLOAD).hexdigest()
    verify_file(path, sha256(PAYLOAD).upper())  # case does not matter
    with pytest.raises(DataError, match="corrupt or not the expected file"):
        verify_file(path, sha256(b"other"))


def test_good_download_lands_verified(served: Path, dest_dir: Path) -> None:
    dest = dest_dir / "file.bin"
    with serve(served) as server:
        result = download(f"{server.url}/file.bin", dest, sha256(PAYLOAD), timeout=10)
    assert result == dest
    assert dest.read_bytes() == PAYLOAD
    assert leftovers(dest_dir) == [dest]  # no temporary .part file left behind


def test_download_without_digest(served: Path, dest_dir: Path) -> None:
    with serve(served) as server:
        dest = download(f"{server.url}/file.bin", dest_dir / "f", None, timeout=10)
    assert dest.read_bytes() == PAYLOAD


def test_replaces_an_existing_file_only_when_intact(served: Path, dest_dir: Path) -> None:
    dest_dir.mkdir(parents=True)
    dest = dest_dir / "file.bin"
    dest.write_bytes(b"old")
    with serve(served) as server:
        with pytest.raises(DataError):
            download(f"{server.url}/file.bin", dest, sha256(b"something else"), timeout=10)
        assert dest.read_bytes() == b"old"
        download(f"{server.url}/file.bin", dest, sha256(PAYLOAD), timeout=10)
    assert dest.read_bytes() == PAYLOAD


def test_wrong_checksum_leaves_nothing(served: Path, dest_dir: Path) -> None:
    with serve(served) as server:
        with pytest.raises(DataError, match="expected"):
            download(f"{server.url}/file.bin", dest_dir / "file.bin", sha256(b"nope"), timeout=10)
    assert leftovers(dest_dir) == []


def test_truncated_transfer(served: Path, dest_dir: Path) -> None:
    """The server announces the full Content-Length but closes after half the body."""
    with serve(served, mode="truncate") as server:
        # no digest: the length check alone must catch it
        with pytest.raises(DataError, match="cut short"):
            download(f"{server.url}/file.bin", dest_dir / "file.bin", None, timeout=10)
        with pytest.raises(DataError):
            download(f"{server.url}/file.bin", dest_dir / "file.bin", sha256(PAYLOAD), timeout=10)
    assert leftovers(dest_dir) == []


def test_truncated_chunked_transfer(served: Path, dest_dir: Path) -> None:
    with serve(served, mode="chunked-truncate") as server:
        with pytest.raises(DataError):
            download(f"{server.url}/file.bin", dest_dir / "file.bin", sha256(PAYLOAD), timeout=10)
    assert leftovers(dest_dir) == []


def test_server_that_does_not_speak_http(served: Path, dest_dir: Path) -> None:
    with serve(served, mode="garbage") as server:
        with pytest.raises(DataError):
            download(f"{server.url}/file.bin", dest_dir / "file.bin", None, timeout=10)


def test_http_404(served: Path, dest_dir: Path) -> None:
    with serve(served) as server:
        with pytest.raises(DataError, match="404"):
            download(f"{server.url}/missing.bin", dest_dir / "missing.bin", None, timeout=10)
    assert leftovers(dest_dir) == []


def test_unreachable_host(dest_dir: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}/file.bin"
    with pytest.raises(DataError, match="cannot download") as info:
        download(url, dest_dir / "file.bin", None, timeout=5)
    assert str(dest_dir / "file.bin") in str(info.value)  # tells the user where to put the file
    assert leftovers(dest_dir) == []


def test_malformed_url(dest_dir: Path) -> None:
    with pytest.raises(DataError):
        download("not a url", dest_dir / "file.bin", None, timeout=5)
