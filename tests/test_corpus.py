"""gpt1_lib.corpus: downloads, checksums, resume, atomic writes, the mirror, bad input.

Every download here goes to a local HTTP server on 127.0.0.1 started by the test, never to
the internet. The server honours (or, when told to, ignores) `Range` and can cut the
connection after a given number of bytes, the way a flaky network does.
"""

from __future__ import annotations

import hashlib
import http.server
import os
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gpt1_lib.corpus import (
    CORPORA,
    MIRROR_ENV,
    ChecksumError,
    Corpus,
    DownloadError,
    RemoteFile,
    download,
    fetch,
    read_text,
    splits,
)

BODY = "".join(f"line {i}: café — 東京 🙂 to be, or not to be\n" for i in range(8000)).encode()
BODY_SHA = hashlib.sha256(BODY).hexdigest()


@dataclass
class ServerState:
    """What the test server serves and how it misbehaves; what it was asked."""

    url: str = ""
    body: bytes = BODY
    honour_range: bool = True
    cut_after: int | None = None  # send this many body bytes of the next response, then hang up
    requests: list[dict[str, str]] = field(default_factory=list)


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (the name http.server expects)
        state: ServerState = self.server.state
        state.requests.append(dict(self.headers))
        if self.path != "/corpus.txt":
            self.send_error(404)
            return
        body, start = state.body, 0
        wanted = self.headers.get("Range")
        if wanted and state.honour_range:
            start = int(wanted.removeprefix("bytes=").rstrip("-"))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        payload = body[start:]
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if state.cut_after is not None:
            payload, state.cut_after = payload[: state.cut_after], None
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.state = ServerState(url=f"http://127.0.0.1:{httpd.server_address[1]}/corpus.txt")
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd.state
    httpd.shutdown()
    httpd.server_close()


def toy_corpus(url: str, sha256: str | None = BODY_SHA) -> Corpus:
    return Corpus("a test corpus", "http://127.0.0.1", "test", {"train": RemoteFile(url, "corpus.txt", sha256)})


@pytest.fixture
def toy(server, monkeypatch):
    """A corpus named "toy" served by the local server; no mirror in the environment."""
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    monkeypatch.setitem(CORPORA, "toy", toy_corpus(server.url))
    return server


def files_in(folder: Path) -> list[str]:
    """Every file under `folder`, hidden temporaries included."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


# --- downloads ------------------------------------------------------------------------------


def test_fetch_downloads_verifies_and_then_reuses_the_file(toy, tmp_path):
    path = fetch("toy", data_dir=tmp_path)
    assert path == tmp_path / "toy" / "corpus.txt"
    assert path.read_bytes() == BODY
    assert files_in(tmp_path) == ["toy/corpus.txt"]  # no .part or temporary left behind
    assert len(toy.requests) == 1
    assert fetch("toy", data_dir=tmp_path) == path
    assert len(toy.requests) == 1  # the second call touched no network


def test_read_text_decodes_the_fetched_file(toy, tmp_path):
    assert read_text("toy", data_dir=tmp_path) == BODY.decode("utf-8")


def test_checksum_mismatch_keeps_nothing_and_the_next_call_starts_afresh(server, monkeypatch, tmp_path):
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    monkeypatch.setitem(CORPORA, "toy", toy_corpus(server.url, sha256="0" * 64))
    with pytest.raises(ChecksumError, match="expected 0000"):
        fetch("toy", data_dir=tmp_path)
    assert files_in(tmp_path) == []  # neither the final file nor a .part to resume from
    monkeypatch.setitem(CORPORA, "toy", toy_corpus(server.url))
    assert fetch("toy", data_dir=tmp_path).read_bytes() == BODY
    assert "Range" not in server.requests[-1]


def test_interrupted_download_is_resumed_with_a_range_request(toy, tmp_path):
    toy.cut_after = 100_000
    with pytest.raises(DownloadError, match="call fetch\\(\\) again to resume"):
        fetch("toy", data_dir=tmp_path)
    part = tmp_path / "toy" / "corpus.txt.part"
    assert files_in(tmp_path) == ["toy/corpus.txt.part"]  # the final name never half-written
    assert part.read_bytes() == BODY[:100_000]
    path = fetch("toy", data_dir=tmp_path)
    assert toy.requests[-1]["Range"] == "bytes=100000-"
    assert path.read_bytes() == BODY
    assert files_in(tmp_path) == ["toy/corpus.txt"]


def test_a_server_that_ignores_range_makes_the_download_start_over(toy, tmp_path):
    toy.honour_range = False
    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "corpus.txt.part").write_bytes(b"stale bytes from another file")
    path = fetch("toy", data_dir=tmp_path)
    assert toy.requests[-1]["Range"] == "bytes=29-"
    assert path.read_bytes() == BODY


def test_a_complete_part_file_is_verified_and_renamed(toy, tmp_path):
    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "corpus.txt.part").write_bytes(BODY)  # interrupted just before rename
    assert fetch("toy", data_dir=tmp_path).read_bytes() == BODY
    assert toy.requests[-1]["Range"] == f"bytes={len(BODY)}-"  # answered 416: nothing to send


def test_a_part_file_longer_than_the_remote_file_is_discarded(toy, tmp_path):
    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "corpus.txt.part").write_bytes(BODY + b"extra")
    assert fetch("toy", data_dir=tmp_path).read_bytes() == BODY


def test_a_cached_file_with_a_wrong_checksum_is_reported_not_used_nor_deleted(toy, tmp_path):
    cached = tmp_path / "toy" / "corpus.txt"
    cached.parent.mkdir()
    cached.write_bytes(b"edited by hand")
    with pytest.raises(ChecksumError, match="delete it and call fetch"):
        fetch("toy", data_dir=tmp_path)
    assert cached.read_bytes() == b"edited by hand"
    assert toy.requests == []


def test_http_errors_say_what_failed(toy, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(toy.url.replace("corpus.txt", "missing.txt"), tmp_path / "x.txt")
    assert files_in(tmp_path) == []


def test_an_unreachable_server_gives_a_clear_error(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DownloadError, match=f"cannot reach .*{MIRROR_ENV}"):
        download(f"http://127.0.0.1:{port}/corpus.txt", tmp_path / "x.txt", timeout=5)
    assert files_in(tmp_path) == []


def test_download_without_a_known_checksum_still_writes_atomically(server, tmp_path):
    dest = tmp_path / "sub" / "file.txt"
    assert download(server.url, dest) == dest
    assert dest.read_bytes() == BODY
    assert files_in(tmp_path) == ["sub/file.txt"]


# --- the mirror -----------------------------------------------------------------------------


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    folder = tmp_path / "mirror"
    (folder / "toy").mkdir(parents=True)
    monkeypatch.setenv(MIRROR_ENV, str(folder))
    return folder


def test_the_mirror_is_copied_without_touching_the_network(server, mirror, monkeypatch, tmp_path):
    monkeypatch.setitem(CORPORA, "toy", toy_corpus(server.url))
    (mirror / "toy" / "corpus.txt").write_bytes(BODY)
    data = tmp_path / "data"
    assert fetch("toy", data_dir=data).read_bytes() == BODY
    assert server.requests == []
    assert files_in(data) == ["toy/corpus.txt"]


def test_a_bad_mirror_copy_is_rejected_and_not_kept(server, mirror, monkeypatch, tmp_path):
    monkeypatch.setitem(CORPORA, "toy", toy_corpus(server.url))
    (mirror / "toy" / "corpus.txt").write_bytes(BODY[:-1])
    data = tmp_path / "data"
    with pytest.raises(ChecksumError, match=f"replace it with a good copy, or unset {MIRROR_ENV}"):
        fetch("toy", data_dir=data)
    assert files_in(data) == []


def test_the_mirror_sha256sums_checks_corpora_without_a_known_checksum(
    server, mirror, monkeypatch, tmp_path
):
    monkeypatch.setitem(CORPORA, "toy", toy_corpus(server.url, sha256=None))
    (mirror / "toy" / "corpus.txt").write_bytes(BODY)
    (mirror / "SHA256SUMS").write_text(f"{'1' * 64}  toy/corpus.txt\n")
    with pytest.raises(ChecksumError):
        fetch("toy", data_dir=tmp_path / "data")
    (mirror / "SHA256SUMS").write_text(f"{BODY_SHA}  toy/corpus.txt\n")
    assert fetch("toy", data_dir=tmp_path / "data").read_bytes() == BODY


def test_a_file_missing_from_the_mirror_is_a_clear_error(server, mirror, monkeypatch, tmp_path):
    monkeypatch.setitem(CORPORA, "toy", toy_corpus(server.url))
    with pytest.raises(DownloadError, match=f"{MIRROR_ENV}=.* has no toy/corpus.txt"):
        fetch("toy", data_dir=tmp_path / "data")
    assert server.requests == []


# --- names, splits and paths ----------------------------------------------------------------


def test_an_unknown_corpus_name_lists_the_known_ones(tmp_path):
    with pytest.raises(ValueError, match="unknown corpus 'shakespear': use one of .*tinyshakespeare, tinystories"):
        fetch("shakespear", data_dir=tmp_path)
    assert files_in(tmp_path) == []


def test_an_unknown_split_lists_the_splits():
    with pytest.raises(ValueError, match="no split 'test': use one of train, valid"):
        fetch("tinystories", "test")


def test_a_path_to_a_text_file_is_returned_as_is(tmp_path):
    own = tmp_path / "book.txt"
    own.write_bytes(b"Call me Ishmael.\r\n")
    assert fetch(str(own)) == own
    assert splits(str(own)) == ("train",)
    assert read_text(str(own)) == "Call me Ishmael.\r\n"  # line endings untouched
    with pytest.raises(ValueError, match="one split, 'train'"):
        fetch(str(own), "valid")


def test_read_text_rejects_a_file_that_is_not_utf8(tmp_path):
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("déjà vu".encode("latin-1"))
    with pytest.raises(ValueError, match="not UTF-8 text .*offset 1"):
        read_text(str(latin1))


def test_known_corpora_are_described():
    assert splits("tinyshakespeare") == ("train",)
    assert splits("tinystories") == ("train", "valid")
    for corpus in CORPORA.values():
        assert corpus.licence and corpus.homepage.startswith("https://")
        assert all(f.url.startswith("https://") for f in corpus.splits.values())


def test_tinyshakespeare_checksum_matches_the_shared_mirror(tmp_path):
    mirror = os.environ.get(MIRROR_ENV)
    if not mirror or not (Path(mirror) / "SHA256SUMS").is_file():
        pytest.skip(f"needs {MIRROR_ENV} pointing at a mirror with SHA256SUMS (CI sets it)")
    sums = dict(
        reversed(line.split()) for line in (Path(mirror) / "SHA256SUMS").read_text().splitlines()
    )
    assert CORPORA["tinyshakespeare"].splits["train"].sha256 == sums["tinyshakespeare/input.txt"]
    path = fetch("tinyshakespeare", data_dir=tmp_path)
    assert path.stat().st_size == 1_115_394
