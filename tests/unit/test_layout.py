"""Packages import one way, bottom to top: a package may import only packages on a lower layer.

The layers are README's map. An import of a package on the same layer (other than itself) or a
higher one is an arrow back up; this test lists every one, with the file and line, so a cycle can
never form between packages. Imports inside functions count too.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: Bottom to top. A package imports only packages of the layers below its own.
LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"driftline"}),  # kernel: contracts, settings, errors, logs, registry, feature matrix
    frozenset({"feature_repo", "monitoring", "drift"}),  # Feast definitions and reads; dashboards and alerts; drift
    frozenset({"stream_app", "producers"}),  # the worker; the example world and Kafka clients
    frozenset({"training"}),  # training sets, models, drift references
    frozenset({"driftline_tools"}),  # the CLI, dev stack, demo, scenarios, benchmark
)
LAYER_OF = {package: index for index, layer in enumerate(LAYERS) for package in layer}


def _imports(path: Path) -> list[tuple[str, int]]:
    found: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name.split(".")[0], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module.split(".")[0], node.lineno))
    return found


def test_every_project_package_has_a_layer() -> None:
    on_disk = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests"}
    assert on_disk == set(LAYER_OF), "add the new package to LAYERS (and README's map)"


def test_imports_go_down_the_layers_only() -> None:
    back_up: list[str] = []
    for package, layer in LAYER_OF.items():
        for path in sorted((ROOT / package).rglob("*.py")):
            for imported, line in _imports(path):
                if imported == package or imported not in LAYER_OF:
                    continue
                if LAYER_OF[imported] >= layer:
                    back_up.append(f"{path.relative_to(ROOT)}:{line} imports {imported}")
    assert not back_up, "imports that run back up:\n" + "\n".join(back_up)


def test_readme_map_is_the_layers() -> None:
    readme = (ROOT / "README.md").read_text()
    rows = [line.split("|") for line in readme.splitlines() if line.startswith("| ") and "` |" in line]
    mapped = {cells[2].strip().strip("`/"): int(cells[1]) for cells in rows if cells[1].strip().isdigit()}
    assert mapped == LAYER_OF
