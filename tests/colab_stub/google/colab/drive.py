"""Stand-in for `google.colab.drive`: the folder `$COLAB_STUB_DRIVE` plays Google Drive.

`mount` makes the mountpoint a symbolic link to that folder, so `<mountpoint>/MyDrive` is the
same folder in every "runtime" of a test, as Drive is on Colab. Colab's own API: `mount(
mountpoint, force_remount=False, timeout_ms=120000, readonly=False)` and `flush_and_unmount(
timeout_ms=...)`.
"""

import os
from pathlib import Path

from google.colab._message import MessageError

_mounted: list[Path] = []  # the mountpoints of this kernel, as Colab's drive process knows them


def mount(
    mountpoint: str, force_remount: bool = False, timeout_ms: int = 120000, readonly: bool = False
) -> None:
    """Link `mountpoint` to the test's Drive folder; decline like a user when told to."""
    from google.colab import _record

    if os.environ.get("COLAB_STUB_DECLINE_DRIVE") == "1":
        _record("drive.mount", mountpoint=mountpoint, declined=True)
        raise MessageError("Error: credential propagation was unsuccessful")
    target = Path(os.environ["COLAB_STUB_DRIVE"])
    (target / "MyDrive").mkdir(parents=True, exist_ok=True)
    point = Path(mountpoint).expanduser()
    if point.is_symlink() and not force_remount:
        print(
            f"Drive already mounted at {mountpoint}; to attempt to forcibly remount, "
            f'call drive.mount("{mountpoint}", force_remount=True).'
        )
        return
    if point.is_symlink():
        point.unlink()
    if not point.parent.is_dir():
        raise ValueError("Mountpoint must be in a directory that exists")
    if point.exists() and (not point.is_dir() or any(point.iterdir())):
        raise ValueError("Mountpoint must not already contain files")
    if point.is_dir():
        point.rmdir()
    point.symlink_to(target, target_is_directory=True)
    _mounted.append(point)
    _record("drive.mount", mountpoint=mountpoint, declined=False)
    print(f"Mounted at {mountpoint}")


def flush_and_unmount(timeout_ms: int = 24 * 60 * 60 * 1000) -> None:
    """Write everything out (here: the OS's buffers) and remove the mount."""
    from google.colab import _record

    if not _mounted:
        print("Drive not mounted, so nothing to flush and unmount.")
        return
    os.sync()
    points = [str(p) for p in _mounted]
    while _mounted:
        _mounted.pop().unlink()
    _record("drive.flush_and_unmount", mountpoints=points)
