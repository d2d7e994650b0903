"""edge/ uses aiohttp through its public API only, so any aiohttp 3.x after the floor will do.

An AST walk over edge/: every aiohttp module imported must be a public one
(PUBLIC_MODULES), and every underscore attribute read or written on an object
other than self or cls must be one edge/ defines itself and aiohttp does not
(so `protocol._paused` or `getattr(reader, "_buffer")` fail, while the pool
re-arming its own connection's timer passes). aiohttp's own private names are
read from its installed source the same way.
"""

from __future__ import annotations

import ast
import importlib.util
from collections.abc import Iterator
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
EDGE = ROOT / "edge"
# What aiohttp documents as its API: the top-level package, the server, the ABCs.
PUBLIC_MODULES = frozenset(("aiohttp", "aiohttp.web", "aiohttp.abc"))


def _trees(folder: Path) -> Iterator[tuple[Path, ast.Module]]:
    for path in sorted(folder.rglob("*.py")):
        yield path, ast.parse(path.read_text(encoding="utf-8"), str(path))


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _defined_private_names(folder: Path) -> set[str]:
    """Underscore names a package defines: methods, class attributes, self._x, slots."""
    names: set[str] = set()
    for _, tree in _trees(folder):
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                names.add(node.value)  # __slots__ entries
    return {name for name in names if _private(name)}


def _imported_modules(tree: ast.Module) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module
            for alias in node.names:  # `from aiohttp import client_proto` is a module too
                yield node.lineno, f"{node.module}.{alias.name}"


def _foreign_private_touches(tree: ast.Module) -> Iterator[tuple[int, str]]:
    """Underscore attributes of anything but self/cls: obj._x, getattr/setattr(obj, "_x")."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            owner = node.value
            if not (isinstance(owner, ast.Name) and owner.id in ("self", "cls")):
                yield node.lineno, node.attr
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "setattr", "hasattr", "delattr")
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
            and _private(node.args[1].value)
        ):
            yield node.lineno, node.args[1].value


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def private_imports(folder: Path) -> list[str]:
    """Each import in `folder` of an aiohttp module not in PUBLIC_MODULES."""
    found: list[str] = []
    for path, tree in _trees(folder):
        for line, module in _imported_modules(tree):
            if not module.startswith("aiohttp.") or module in PUBLIC_MODULES:
                continue
            if _is_module(module):
                found.append(f"{path.relative_to(folder)}:{line}: imports {module}")
    return found


def private_touches(folder: Path) -> list[str]:
    """Each underscore attribute touched in `folder` that is aiohttp's, or not `folder`'s own."""
    own = _defined_private_names(folder)
    theirs = _defined_private_names(Path(aiohttp.__file__).parent)
    found: list[str] = []
    for path, tree in _trees(folder):
        for line, name in _foreign_private_touches(tree):
            if name not in own or name in theirs:
                found.append(f"{path.relative_to(folder)}:{line}: touches .{name}")
    return found


def test_edge_imports_no_private_aiohttp_module() -> None:
    assert private_imports(EDGE) == []


def test_edge_touches_no_private_attribute_of_aiohttp() -> None:
    assert private_touches(EDGE) == []


def test_the_check_sees_what_the_old_pool_did(tmp_path: Path) -> None:
    """The walk would have caught the aiohttp lane's pool before edge.upstream.exchange."""
    (tmp_path / "old.py").write_text(
        "from aiohttp.client_proto import ResponseHandler\n"
        "from aiohttp import http_parser\n"
        "import aiohttp.streams\n"
        "async def drain(protocol: ResponseHandler) -> None:\n"
        "    if protocol._paused:\n"
        "        await protocol._drain_helper()\n"
        "    getattr(protocol, '_drop_timeout')()\n",
        encoding="utf-8",
    )
    imports = private_imports(tmp_path)
    assert [entry.rsplit(" ", 1)[1] for entry in imports] == [
        "aiohttp.client_proto",
        "aiohttp.http_parser",
        "aiohttp.streams",
    ]
    touches = sorted(entry.rsplit(".", 1)[1] for entry in private_touches(tmp_path))
    assert touches == ["_drain_helper", "_drop_timeout", "_paused"]
