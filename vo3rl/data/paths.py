"""Video paths from dataset rows, resolved against a data root that they may not leave."""
from __future__ import annotations

import os

from vo3rl.data.schema import SampleError


def resolve_video_path(path: object, data_root: str | None, sample_id: str) -> str:
    """The path a row's video reference points at.

    A "file://" prefix is dropped. With no `data_root` the path is returned as written. With one,
    a relative path is joined to it, and the result must stay inside it: ".." that climbs out, or an
    absolute path elsewhere, is a SampleError with reason escapes_root. The check is lexical, so a
    symlink the operator placed inside the root is followed, not refused.
    """
    if not isinstance(path, str) or not path.strip():
        raise SampleError(sample_id, f"bad_field: video path must be a non-empty string, got {path!r}")
    path = path.strip()
    if path.startswith("file://"):
        path = path[len("file://") :]
    if data_root is None:
        return path
    root = os.path.normpath(os.path.abspath(data_root))
    full = os.path.normpath(os.path.join(root, path))
    if os.path.commonpath([root, full]) != root:
        raise SampleError(sample_id, f"escapes_root: video path {path!r} leaves the data root {root}")
    return full
