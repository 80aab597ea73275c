"""Chapter 01, exercise 4: a corrupted copy never appears under its final name.

Build a mirror folder holding tiny shakespeare with one byte changed, point
`GPT1_DATA_MIRROR` at it, and fetch into an empty data folder. Predict what `fetch` does,
and what is left in the data folder afterwards; then mend the byte and fetch again.
"""

import os
import shutil
import tempfile
from pathlib import Path

from gpt1_lib.corpus import CORPORA, fetch
from gpt1_lib.download import MIRROR_ENV, ChecksumError, sha256_of

good = fetch("tinyshakespeare")  # the verified copy, from the network or the usual mirror
remote = CORPORA["tinyshakespeare"].splits["train"]

with tempfile.TemporaryDirectory() as tmp:
    mirror, data = Path(tmp) / "mirror", Path(tmp) / "data"
    copy = mirror / "tinyshakespeare" / remote.filename
    copy.parent.mkdir(parents=True)
    shutil.copyfile(good, copy)
    raw = bytearray(copy.read_bytes())
    raw[1000] ^= 0x01  # change one bit of one byte
    copy.write_bytes(bytes(raw))

    os.environ[MIRROR_ENV] = str(mirror)
    try:
        fetch("tinyshakespeare", data_dir=data)
    except ChecksumError as err:
        print(f"ChecksumError: {err}")
    else:
        raise AssertionError("a corrupted copy was accepted")
    left = sorted(p.name for p in data.rglob("*") if p.is_file())
    print(f"left in the data folder: {left}")
    assert left == []  # neither the final name nor a temporary file

    raw[1000] ^= 0x01  # mend it: now the copy is the published file again
    copy.write_bytes(bytes(raw))
    path = fetch("tinyshakespeare", data_dir=data)
    assert path == data / "tinyshakespeare" / remote.filename
    assert sha256_of(path) == remote.sha256
    print(f"mended: {path.relative_to(tmp)} verified, sha256 {sha256_of(path)[:16]}…")
