"""Stand-in for `google.colab.files`: `download` records the file a browser would receive."""

from pathlib import Path


def download(filename: str) -> None:
    """Colab starts a browser download; here the file must exist and the call is recorded."""
    from google.colab import _record

    path = Path(filename)
    if not path.is_file():
        raise FileNotFoundError(f"Cannot find file: {filename}")
    _record("files.download", path=str(path.resolve()), bytes=path.stat().st_size)
