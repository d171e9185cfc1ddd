"""Read and write model profile files, with errors a person can act on."""

from __future__ import annotations

import os
from pathlib import Path

from streamproc.core.errors import ProfileFormatError
from streamproc.core.model_profile import ModelProfile
from streamproc.offline.errors import InputError

PROFILE_MAGIC = b"SPMP"
"""First bytes of a serialized model profile (see ``streamproc.core.codec``)."""


def is_profile_file(path: str | Path) -> bool:
    """True if ``path`` starts with the model-profile magic bytes."""
    try:
        with open(path, "rb") as fh:
            return fh.read(len(PROFILE_MAGIC)) == PROFILE_MAGIC
    except OSError:
        return False


def load_profile(path: str | Path) -> ModelProfile:
    """Load a model profile; ``InputError`` if missing, corrupt or of another version."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"profile not found: {p}; check the path")
    data = p.read_bytes()
    if not data:
        raise InputError(f"{p} is empty; rebuild it with 'streamproc reference build'")
    try:
        return ModelProfile.from_bytes(data)
    except ProfileFormatError as exc:
        detail = str(exc).splitlines()[0] if str(exc) else "unreadable"
        raise InputError(
            f"{p} is not a usable streamproc profile ({detail}); "
            "rebuild it with 'streamproc reference build' from this streamproc version"
        ) from exc


def save_profile(profile: ModelProfile, path: str | Path) -> int:
    """Write ``profile`` atomically (temp file + rename); return the bytes written."""
    p = Path(path)
    if p.parent and not p.parent.exists():
        raise InputError(f"directory {p.parent} does not exist; create it or change --out")
    data = profile.to_bytes()
    tmp = p.with_name(f".{p.name}.tmp{os.getpid()}")
    try:
        tmp.write_bytes(data)
        tmp.replace(p)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise InputError(f"cannot write {p}: {exc.strerror}; check --out") from exc
    return len(data)
