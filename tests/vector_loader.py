"""The one loader for external test vectors.

Published vectors ship with the tests, as files in ``tests/vectors/data/<set>/``, each set with a
PROVENANCE.md that names its source, commit and licence, and what was recomputed here. Vectors are
data and the tests are code: adding a set is adding a folder. ``$FLEETID_VECTORS`` points the
loader at another copy of the same layout (a newer upstream set under review).

A vector file the tests ask for and the data lacks is an error of the checkout, never a skip.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

__all__ = ["load_json", "vector_path", "vectors_root"]

_DATA = Path(__file__).resolve().parent / "vectors" / "data"


def vectors_root() -> Path:
    configured = os.environ.get("FLEETID_VECTORS")
    return Path(configured) if configured else _DATA


def vector_path(relative: str) -> Path:
    """The path of one vector file; fails the test when it is absent."""
    path = vectors_root() / relative
    if not path.is_file():
        pytest.fail(f"vector file missing: {path} (the vector sets ship in tests/vectors/data)")
    return path


def load_json(relative: str) -> Any:
    return json.loads(vector_path(relative).read_text())
