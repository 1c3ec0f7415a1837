"""The house rules, checked: imports one way, small rooms, a public surface with no private types.

See CONTRIBUTING.md for the layout these rules keep.
"""

from __future__ import annotations

import ast
import inspect
import re
import traceback
import typing
from pathlib import Path

import pytest

import obshell_sdk

PACKAGE = Path(obshell_sdk.__file__).parent
MAX_MODULE_LINES = 350
MAX_FUNCTION_LINES = 50


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imported_by_name(node: ast.AST) -> bool:
    """``importlib.import_module("obshell_sdk...")``: an import all the same."""
    return (isinstance(node, ast.Call) and ast.unparse(node.func).endswith("import_module")
            and bool(node.args) and isinstance(node.args[0], ast.Constant)
            and str(node.args[0].value).startswith("obshell_sdk"))


def _imports(name: str, path: Path) -> set[str]:
    """Every module of the package that ``name`` imports at run time, in functions too.

    Imports under ``if TYPE_CHECKING:`` are for annotations only and never run.
    ``from pkg import sub`` depends on the submodule ``pkg.sub``; ``from pkg import name``
    on ``pkg`` itself.
    """
    modules = _modules()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if _is_type_checking(node):
            return
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in modules else target)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif _imported_by_name(node):
            found.add(node.args[0].value)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return found


def test_imports_have_no_cycles_counting_imports_in_functions():
    modules = _modules()
    graph = {name: {m for m in _imports(name, path) if m in modules and m != name}
             for name, path in modules.items()}
    visiting, done, cycles = set(), set(), []

    def walk(node: str, trail: list[str]) -> None:
        if node in done:
            return
        if node in visiting:
            cycles.append([*trail[trail.index(node):], node])
            return
        visiting.add(node)
        for nxt in sorted(graph[node]):
            walk(nxt, [*trail, node])
        visiting.discard(node)
        done.add(node)

    for name in graph:
        walk(name, [])
    assert not cycles, cycles


def test_the_client_side_never_imports_the_fake_agent():
    for name, path in _modules().items():
        if not name.startswith("obshell_sdk.testing"):
            assert not any(m.startswith("obshell_sdk.testing") for m in _imports(name, path)), name


def test_importing_the_package_leaves_the_ciphers_for_first_use():
    # pycryptodome's cipher and key modules cost 20-100 ms of import (the most with cffi
    # installed); they load when a key is parsed or a body encrypted, not with the package.
    import subprocess
    import sys

    code = ("import sys, obshell_sdk; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'Crypto'))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=PACKAGE.parent, check=True)
    assert done.stdout.strip() == "[]", done.stdout


@pytest.mark.parametrize("name", sorted(_modules()))
def test_rooms_are_small(name):
    path = _modules()[name]
    source = path.read_text()
    assert len(source.splitlines()) <= MAX_MODULE_LINES, f"{path} is over {MAX_MODULE_LINES} lines"
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            assert length <= MAX_FUNCTION_LINES, f"{path}:{node.lineno} {node.name}: {length} lines"


def test_only_password_auth_reads_its_passwords():
    """``PasswordAuth``'s password fields are read in ``_auth.py`` alone: elsewhere, its
    ``_empty()`` says which are empty, by role."""
    for name, path in _modules().items():
        if name == "obshell_sdk._auth":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ("_password", "_agent_password"):
                pytest.fail(f"{path}:{node.lineno} reads PasswordAuth's .{node.attr}")


def _public_callables():
    for name in obshell_sdk.__all__:
        obj = getattr(obshell_sdk, name)
        if inspect.isclass(obj):
            yield name, obj.__init__
            members = {}
            for cls in reversed(obj.__mro__):  # the groups of calls a class is assembled from
                if cls.__module__.startswith("obshell_sdk"):
                    members.update(vars(cls))
            for attr, member in members.items():
                if attr.startswith("_") and attr != "__init__":
                    continue
                if isinstance(member, (classmethod, staticmethod)):
                    member = member.__func__
                if isinstance(member, property):
                    member = member.fget
                if inspect.isfunction(member):
                    yield f"{name}.{attr}", member
        elif inspect.isfunction(obj):
            yield name, obj


def _types_in(hint):
    if inspect.isclass(hint):
        yield hint
    for arg in typing.get_args(hint):
        if isinstance(arg, list):
            for item in arg:
                yield from _types_in(item)
        else:
            yield from _types_in(arg)


def test_no_public_signature_names_a_private_type():
    offenders = []
    for label, func in _public_callables():
        module = inspect.getmodule(func)
        names = {**vars(obshell_sdk), **(vars(module) if module else {})}
        hints = typing.get_type_hints(func, names)
        for hint in hints.values():
            for cls in _types_in(hint):
                private = cls.__module__.startswith("obshell_sdk._") or cls.__name__.startswith("_")
                if private and cls.__module__.startswith("obshell_sdk"):
                    offenders.append(f"{label}: {cls.__module__}.{cls.__qualname__}")
    assert not offenders, offenders


def test_no_public_signature_names_an_alias_the_package_does_not_export():
    """``get_type_hints`` resolves aliases away; the written annotations still show them."""
    offenders = []
    for label, func in _public_callables():
        module = inspect.getmodule(func)
        for param, text in getattr(func, "__annotations__", {}).items():
            if not isinstance(text, str):
                continue
            for word in re.findall(r"[A-Za-z_]\w*", text):
                value = getattr(module, word, None)
                alias = typing.get_origin(value) is not None and not inspect.isclass(value)
                if alias and not hasattr(typing, word) and word not in obshell_sdk.__all__:
                    offenders.append(f"{label}({param}): {module.__name__}.{word}")
    assert not offenders, offenders


def test_public_classes_show_the_package_as_their_module():
    for name in obshell_sdk.__all__:
        obj = getattr(obshell_sdk, name)
        if inspect.isclass(obj):
            assert obj.__module__ == "obshell_sdk", name
    try:
        raise obshell_sdk.TaskFailedError("boom", task_id="11")
    except obshell_sdk.TaskFailedError as exc:
        last = traceback.format_exception(type(exc), exc, exc.__traceback__)[-1]
    assert last.startswith("obshell_sdk.TaskFailedError: boom")


def test_the_package_shows_no_public_name_but_its_all():
    """``dir(obshell_sdk)`` (and a notebook's tab completion) offers ``__all__`` only: what
    ``__init__`` uses itself is underscored. ``annotations`` is the ``__future__`` import's and
    ``testing`` the subpackage, there once imported."""
    extra = {n for n in vars(obshell_sdk) if not n.startswith("_")} - set(obshell_sdk.__all__)
    assert extra <= {"annotations", "testing"}, sorted(extra)


def test_the_error_tree_in_the_docstring_is_the_real_tree():
    from obshell_sdk import _exceptions

    doc = _exceptions.__doc__ or ""
    parents: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    for line in doc.splitlines():
        match = re.match(r"^(\s*(?:[│ ]   )*)(?:[├└]── )?([A-Z]\w+Error)\b", line)
        if not match:
            continue
        depth = len(match.group(1)) // 4 + (1 if "──" in line else 0)
        while stack and stack[-1][0] >= depth:
            stack.pop()
        if stack:
            parents[match.group(2)] = stack[-1][1]
        stack.append((depth, match.group(2)))
    errors = {n for n in obshell_sdk.__all__ if n.endswith("Error")}
    assert set(parents) | {"ObshellError"} == errors
    for child, parent in parents.items():
        assert getattr(obshell_sdk, child).__mro__[1].__name__ == parent, child


def test_the_readme_points_at_the_error_tree_instead_of_copying_it():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()  # checkout or sdist
    assert "obshell_sdk/_exceptions.py" in readme
    assert "├── " not in readme
