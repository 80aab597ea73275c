"""A stand-in for Colab's `google.colab`, for tests/test_colab_rehearsal.py only.

It replaces the one piece of Colab that cannot be reached from a test machine: Google Drive.
`drive.mount(mountpoint)` links the mountpoint to the folder named by `$COLAB_STUB_DRIVE` (the
test's "Drive", which outlives each "runtime"), or raises what Colab raises when the user
declines access (`$COLAB_STUB_DECLINE_DRIVE=1`). `files.download` records the file it was
offered. Every call is appended to `$COLAB_STUB_LOG` (one JSON object per line) for the test.
"""

import json
import os

from google.colab import _message, drive, files  # noqa: F401  (Colab imports them too)


def _record(call: str, **details) -> None:
    """Append one call to the test's log, if it keeps one."""
    if log := os.environ.get("COLAB_STUB_LOG"):
        with open(log, "a") as f:
            f.write(json.dumps({"call": call, **details}) + "\n")
