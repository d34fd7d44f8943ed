"""The one loader for external test vectors.

Vectors live outside the repository, in ``../shared/vectors`` beside the checkout or wherever
``$FLEETID_VECTORS`` points. Where they are absent (a user's clone), the tests that need them skip
and say why; under ``CI=true`` absence is a failure, so CI can never go green without them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

__all__ = ["load_json", "vector_path", "vectors_root"]

_REPO = Path(__file__).resolve().parent.parent


def vectors_root() -> Path | None:
    configured = os.environ.get("FLEETID_VECTORS")
    candidate = Path(configured) if configured else _REPO.parent / "shared" / "vectors"
    return candidate if candidate.is_dir() else None


def vector_path(relative: str) -> Path:
    """The path of one vector file; skips (or fails under CI) when it is absent."""
    root = vectors_root()
    path = root / relative if root else None
    if path is None or not path.is_file():
        reason = (
            f"external vectors not found: {relative} (set FLEETID_VECTORS or place shared/vectors "
            "beside the checkout)"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return path


def load_json(relative: str) -> Any:
    return json.loads(vector_path(relative).read_text())
