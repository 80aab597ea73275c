"""gpt1_lib.corpus: downloads, checksums, resume, atomic writes, the mirror, bad input.

Every download here goes to a local HTTP server on 127.0.0.1 started by the test, never to
the internet. The server honours (or, when told to, ignores) `Range` and can cut the
connection after a given number of bytes, the way a flaky network does.
"""

from __future__ import annotations

import hashlib
import http.server
import os
import shutil
import socket
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gpt1_lib.corpus import CORPORA, Corpus, fetch, read_text, splits
from gpt1_lib.download import (
    MIRROR_ENV,
    ChecksumError,
    DownloadError,
    RemoteFile,
    download,
    git_blob_id,
    sha256_of,
)
from gpt1_lib.releases import RELEASES, Release, fetch_release

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


# --- released files: GPT-1's tokenizer and weights ---------------------------------------------

OPENAI_FILES = ("encoder_bpe_40000.json", "vocab_40000.bpe", "params_shapes.json")


def blob_id(content: bytes) -> str:
    """Git's blob id, computed here independently of gpt1_lib: SHA-1 of header + bytes."""
    return hashlib.sha1(b"blob " + str(len(content)).encode() + b"\0" + content).hexdigest()


def test_git_blob_id_is_the_id_git_gives_a_file(tmp_path):
    empty = tmp_path / "empty"
    empty.touch()
    assert git_blob_id(empty) == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"  # git's empty blob
    shard = tmp_path / "params_0.npy"
    shard.write_bytes(BODY)  # several read chunks long
    assert git_blob_id(shard) == blob_id(BODY) != hashlib.sha1(BODY).hexdigest()
    if shutil.which("git"):  # and git itself agrees
        named = subprocess.run(["git", "hash-object", str(shard)], capture_output=True, text=True)
        assert named.stdout.strip() == blob_id(BODY)


def toy_release(url: str, blob: str, sha: str = BODY_SHA) -> Release:
    """A release of two files served by the test server: one pinned by SHA-256, one by blob id."""
    return Release(
        "a test release",
        "http://127.0.0.1",
        "test",
        "toy-release",
        (
            RemoteFile(url, "shapes.json", sha256=sha),
            RemoteFile(url.replace("corpus.txt", "shard.npy"), "params_0.npy", git_blob=blob),
        ),
    )


SHARD = bytes(range(256)) * 3000  # stands for a weight shard: binary, 768,000 bytes


@pytest.fixture
def release_mirror(tmp_path, monkeypatch):
    """A mirror holding both files of a release "toy" pinned to their true checksums."""
    folder = tmp_path / "mirror"
    (folder / "toy-release").mkdir(parents=True)
    (folder / "toy-release" / "shapes.json").write_bytes(BODY)
    (folder / "toy-release" / "params_0.npy").write_bytes(SHARD)
    monkeypatch.setenv(MIRROR_ENV, str(folder))
    monkeypatch.setitem(RELEASES, "toy", toy_release("http://127.0.0.1:9/corpus.txt", blob_id(SHARD)))
    return folder


def test_fetch_release_copies_the_mirror_into_one_verified_folder(release_mirror, tmp_path):
    data = tmp_path / "data"
    folder = fetch_release("toy", data_dir=data)
    assert folder == data / "toy-release"
    assert files_in(data) == ["toy-release/params_0.npy", "toy-release/shapes.json"]
    assert (folder / "params_0.npy").read_bytes() == SHARD
    (release_mirror / "toy-release" / "params_0.npy").unlink()
    assert fetch_release("toy", data_dir=data) == folder  # now found in the folder itself


def test_a_shard_with_a_wrong_blob_id_is_rejected_and_never_kept(release_mirror, monkeypatch, tmp_path):
    corrupt = bytearray(SHARD)
    corrupt[123_456] ^= 1  # one flipped bit
    (release_mirror / "toy-release" / "params_0.npy").write_bytes(bytes(corrupt))
    data = tmp_path / "data"
    wrong, right = blob_id(bytes(corrupt))[:16], blob_id(SHARD)[:16]
    with pytest.raises(ChecksumError, match=f"git blob id {wrong}…, expected {right}"):
        fetch_release("toy", data_dir=data)
    assert "toy-release/params_0.npy" not in files_in(data)
    assert all(not name.endswith((".tmp", ".part")) for name in files_in(data))


def test_a_shard_with_the_right_sha1_but_no_blob_header_is_rejected(release_mirror, monkeypatch, tmp_path):
    """The pin is git's blob id, not the bare SHA-1 of the bytes."""
    bare_sha1 = hashlib.sha1(SHARD).hexdigest()
    monkeypatch.setitem(RELEASES, "toy", toy_release("http://127.0.0.1:9/x", bare_sha1))
    with pytest.raises(ChecksumError, match="git blob id"):
        fetch_release("toy", data_dir=tmp_path / "data")


def test_a_release_file_with_a_wrong_sha256_is_rejected(release_mirror, monkeypatch, tmp_path):
    release = toy_release("http://127.0.0.1:9/x", blob_id(SHARD), sha="2" * 64)
    monkeypatch.setitem(RELEASES, "toy", release)
    data = tmp_path / "data"
    with pytest.raises(ChecksumError, match="SHA-256 .*expected 2222"):
        fetch_release("toy", data_dir=data)
    assert "toy-release/shapes.json" not in files_in(data)


def test_a_release_is_downloaded_and_its_blob_id_checked(server, monkeypatch, tmp_path):
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    server.body = SHARD  # the test server serves any body under /corpus.txt
    monkeypatch.setitem(
        RELEASES,
        "toy",
        Release("t", "http://127.0.0.1", "test", "toy-release",
                (RemoteFile(server.url, "params_0.npy", git_blob=blob_id(SHARD)),)),
    )
    folder = fetch_release("toy", data_dir=tmp_path)
    assert (folder / "params_0.npy").read_bytes() == SHARD
    monkeypatch.setitem(
        RELEASES,
        "toy",
        Release("t", "http://127.0.0.1", "test", "other",
                (RemoteFile(server.url, "params_0.npy", git_blob="0" * 40),)),
    )
    with pytest.raises(ChecksumError, match="git blob id .*expected 0000"):
        fetch_release("toy", data_dir=tmp_path)
    assert files_in(tmp_path / "other") == []  # neither the file nor a .part to resume from


def test_shards_missing_from_the_mirror_say_what_to_do_and_copy_nothing(release_mirror, tmp_path):
    (release_mirror / "toy-release" / "params_0.npy").unlink()
    data = tmp_path / "data"
    with pytest.raises(DownloadError) as err:
        fetch_release("toy", data_dir=data)
    message = str(err.value)
    assert f"{MIRROR_ENV}={release_mirror} has no params_0.npy in {release_mirror / 'toy-release'}" in message
    assert "Put the files there" in message and f"unset {MIRROR_ENV}" in message
    assert "shapes.json" not in message.split(" in ")[0]  # only the missing file is named
    assert files_in(data) == []


def test_an_unknown_release_lists_the_known_ones(tmp_path):
    known = "use one of openai-gpt, openai-gpt-bpe"
    with pytest.raises(ValueError, match=f"unknown release 'openai-gpt2': {known}"):
        fetch_release("openai-gpt2", data_dir=tmp_path)


# The git blob ids of GPT-1's files at openai/finetune-transformer-lm a69b5c4, read from its
# history independently of gpt1_lib (`git ls-tree`), and the shards' names in order.
GPT1_BLOBS = {
    "encoder_bpe_40000.json": "9dc3f0af5a80956e57dc8d9401e16dfadcade7c2",
    "vocab_40000.bpe": "0023a687b3d4d0b795a5e97cc914bdabb5a253df",
    "params_shapes.json": "29fac299ae848d7e447be84a33345edcf1b5353c",
}


def test_gpt1_releases_are_described_and_pinned():
    bpe, full = RELEASES["openai-gpt-bpe"], RELEASES["openai-gpt"]
    assert bpe.folder == full.folder  # one folder serves the tokenizer and the weights
    assert [f.filename for f in bpe.files] == list(OPENAI_FILES)
    assert [f.filename for f in full.files] == list(OPENAI_FILES) + [f"params_{i}.npy" for i in range(10)]
    assert all(f.sha256 and len(f.sha256) == 64 for f in bpe.files)
    shards = full.files[3:]
    assert all(f.sha256 is None and len(f.git_blob) == 40 for f in shards)
    assert len({f.git_blob for f in shards}) == 10
    assert shards[0].git_blob == "84d83ac1f1cc878f56f33b167482c184491875d2"
    assert shards[9].git_blob == "d389eb2074dd74754444b8062aba78b49f6a9053"
    for release in (bpe, full):
        assert release.licence == "MIT" and release.homepage.startswith("https://")
        assert all(
            f.url.startswith("https://raw.githubusercontent.com/openai/finetune-transformer-lm/")
            and f.url.endswith("/model/" + f.filename)
            for f in release.files
        )


def shared_mirror() -> Path:
    mirror = os.environ.get(MIRROR_ENV)
    if not mirror or not (Path(mirror) / "openai-gpt-bpe" / OPENAI_FILES[0]).is_file():
        pytest.skip(f"needs {MIRROR_ENV} pointing at a mirror with openai-gpt-bpe/ (CI sets it)")
    return Path(mirror)


def test_openai_gpt_bpe_comes_from_the_shared_mirror_and_matches_git(tmp_path):
    mirror = shared_mirror()
    folder = fetch_release("openai-gpt-bpe", data_dir=tmp_path)
    assert folder == tmp_path / "openai-gpt-bpe"
    assert sorted(p.name for p in folder.iterdir()) == sorted(OPENAI_FILES)
    sums = dict(reversed(line.split()) for line in (mirror / "SHA256SUMS").read_text().splitlines())
    for name in OPENAI_FILES:
        assert sha256_of(folder / name) == sums[f"openai-gpt-bpe/{name}"]
        assert git_blob_id(folder / name) == GPT1_BLOBS[name]  # the same pin scheme as the shards


def test_asking_for_gpt1_weights_offline_says_what_to_do(tmp_path, monkeypatch):
    mirror = shared_mirror()
    if (mirror / "openai-gpt-bpe" / "params_0.npy").is_file():
        pytest.skip("this mirror holds the weights")
    with pytest.raises(DownloadError) as err:
        fetch_release("openai-gpt", data_dir=tmp_path)
    message = str(err.value)
    assert ", ".join(f"params_{i}.npy" for i in range(10)) in message
    assert "encoder_bpe_40000.json" not in message  # the mirror has the tokenizer files
    assert f"unset {MIRROR_ENV} and call fetch_release('openai-gpt')" in message
    assert files_in(tmp_path) == []
