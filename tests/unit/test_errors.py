"""One exception tree: every exception class fleetid defines lives in ``fleetid.errors``, and the
tree its docstring draws is the class hierarchy, parent for parent."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import fleetid.errors as errors

SRC = Path(errors.__file__).resolve().parent
_BRANCH = re.compile(r"^    (?P<lead>(?:│   |    )*)(?:├── |└── )(?P<name>[A-Z]\w+)")


def _drawn() -> dict[str, str]:
    """``{class: parent}`` as the docstring draws them (four columns per level)."""
    parents: dict[str, str] = {}
    stack = ["FleetIdError"]
    for line in (errors.__doc__ or "").splitlines():
        match = _BRANCH.match(line)
        if match is None:
            continue
        depth = len(match["lead"]) // 4
        del stack[depth + 1 :]
        parents[match["name"]] = stack[depth]
        stack.append(match["name"])
    return parents


def _defined() -> dict[str, str]:
    return {
        cls.__name__: next(b for b in cls.__bases__ if issubclass(b, errors.FleetIdError)).__name__
        for cls in vars(errors).values()
        if inspect.isclass(cls)
        and issubclass(cls, errors.FleetIdError)
        and cls is not errors.FleetIdError
    }


def test_the_docstring_draws_the_class_tree() -> None:
    assert _drawn() == _defined()


def test_every_family_is_exported() -> None:
    assert set(_defined()) | {"FleetIdError"} <= set(errors.__all__)


def _exception_classes(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.ClassDef):
            continue
        bases = [getattr(b, "attr", getattr(b, "id", "")) for b in node.bases]
        # A private signal that never leaves its module (the line's quarantine) is not a family.
        private = node.name.startswith("_")
        if any(base.endswith(("Error", "Exception")) for base in bases) and not private:
            found.append(f"{path.name}:{node.lineno} {node.name}")
    return found


def test_no_module_defines_an_exception_outside_the_tree() -> None:
    outside = [
        found
        for path in sorted(SRC.rglob("*.py"))
        if path.name != "errors.py" or path.parent != SRC
        for found in _exception_classes(path)
    ]
    assert outside == []


def test_the_scan_finds_an_exception_class(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "class LocalError(errors.VerificationError):\n    pass\n"
        "class _Signal(Exception):\n    pass\n"
    )
    assert _exception_classes(sample) == ["sample.py:1 LocalError"]
