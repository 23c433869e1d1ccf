"""The dependency direction (web -> connectors, faq -> inbox) holds in every module."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "inbox": {"web", "faq", "connectors"},
    "connectors": {"web", "faq"},
    "faq": {"web", "connectors"},
}


def imported_packages(path: Path) -> set[str]:
    """Top-level package names imported anywhere in a module."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def violations(root: Path = ROOT) -> list[str]:
    """`module imports package` lines that break the dependency direction."""
    found = []
    for package, banned in FORBIDDEN.items():
        for path in sorted((root / package).rglob("*.py")):
            for name in sorted(imported_packages(path) & banned):
                found.append(f"{path.relative_to(root)} imports {name}")
    return found


def test_core_and_connectors_never_import_outer_packages() -> None:
    assert violations() == []


def test_matcher_imports_nothing_of_ours() -> None:
    matcher = ROOT / "faq" / "matcher.py"
    if matcher.exists():
        assert not imported_packages(matcher) & {"inbox", "web", "connectors", "faq"} - {"faq"}


def test_layering_check_catches_a_bad_import(tmp_path: Path) -> None:
    (tmp_path / "inbox").mkdir()
    (tmp_path / "inbox" / "bad.py").write_text("from web.app import create_app\n")
    for package in ("connectors", "faq"):
        (tmp_path / package).mkdir()
    assert violations(tmp_path) == ["inbox/bad.py imports web"]
