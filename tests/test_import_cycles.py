"""No module of the tree imports itself back, directly or round a circle.

import-linter's `acyclic_siblings` contract works on whole packages (a
package-level circle of control's subpackages would break it without any
module cycle), so the check here is per module: grimp (which import-linter
brings) builds the graph, imports under TYPE_CHECKING included, and every
strongly connected group of more than one module is a cycle to break.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping, Set
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("edge", "control", "routes", "metrics", "podgate", "kubesim")


def cycles(imports: Mapping[str, Set[str]]) -> list[list[str]]:
    """Each group of modules that import each other round a circle, sorted (Tarjan)."""
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(start: str) -> None:
        # Iterative, so a deep import chain never meets the recursion limit.
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(imports[start])))]
        order[start] = low[start] = len(order)
        stack.append(start)
        on_stack.add(start)
        while work:
            module, pending = work[-1]
            for imported in pending:
                if imported not in imports:
                    continue  # outside the packages checked
                if imported not in order:
                    order[imported] = low[imported] = len(order)
                    stack.append(imported)
                    on_stack.add(imported)
                    work.append((imported, iter(sorted(imports[imported]))))
                    break
                if imported in on_stack:
                    low[module] = min(low[module], order[imported])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[module])
                if low[module] == order[module]:
                    group: list[str] = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.append(member)
                        if member == module:
                            break
                    if len(group) > 1:
                        found.append(sorted(group))

    for module in sorted(imports):
        if module not in order:
            visit(module)
    return sorted(found)


def import_map(*packages: str) -> dict[str, set[str]]:
    graph = grimp.build_graph(*packages, cache_dir=None)
    direct = graph.find_modules_directly_imported_by
    return {module: set(direct(module)) for module in graph.modules}


def test_the_tree_has_no_import_cycles() -> None:
    found = cycles(import_map(*PACKAGES))
    assert found == [], "modules importing each other round a circle:\n" + "\n".join(
        " <-> ".join(group) for group in found
    )


def test_a_cycle_is_found_even_behind_type_checking(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A package whose a -> b -> c -> a circle closes only under TYPE_CHECKING,
    # as edge.fastlane's and kubesim.kubelet's once did, plus an acyclic d.
    package = tmp_path / "circled"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from circled import b\n")
    (package / "b.py").write_text("import circled.c\n")
    (package / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from circled.a import x\n"
    )
    (package / "d.py").write_text("from circled import a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert cycles(import_map("circled")) == [["circled.a", "circled.b", "circled.c"]]
    sys.modules.pop("circled", None)
