"""A griffe extension that fits obshell_sdk's docstrings to mkdocstrings' Markdown.

The SDK's docstrings are reST-flavoured prose, written for ``help()`` and for the source:

- Sphinx roles (``:class:`DagTask```, ``:meth:`~obshell_sdk.DagTask.result```) become inline
  code, and a link where the name is public (one of the names the reference pages render);
- a paragraph ending in ``::`` (reST's "a literal block follows") ends in ``:`` instead;
- ``#:`` comments above an attribute become its docstring, as Sphinx reads them, and so does
  the text a ``_StateAttr("...")`` descriptor of the fake agent carries;
- the values of instance attributes and descriptors (how they are computed) are not shown,
  and a ``_StateAttr[T]`` descriptor is shown as what it reads, ``T``.

It changes what the docs show only; the package and its docstrings stay as they are.
"""

from __future__ import annotations

import ast
import re
from typing import Any, Optional

import griffe

#: ``:role:`target``` and ``:role:`~target``` (the tilde shows the last dotted part only).
_ROLE = re.compile(r":(?:py:)?(class|meth|func|mod|attr|exc|data|obj|const):`(~?)([^`<>]+)`")
#: The packages whose ``__all__`` names are rendered in the API reference.
_PUBLIC_PACKAGES = ("obshell_sdk", "obshell_sdk.testing")


class ObshellDocstrings(griffe.Extension):
    """Roles to code or links, ``::`` to ``:``, ``#:`` comments to attribute docstrings."""

    def on_attribute_instance(
        self, *, node: Any, attr: griffe.Attribute, agent: Any, **kwargs: Any
    ) -> None:
        """Give an attribute without a docstring the one its source carries.

        The value of an instance attribute (``self.host = url_host.strip(...)``) or of a
        descriptor is how it is computed, not what it is: it is not shown.
        """
        descriptor = _descriptor_doc(node)
        if descriptor is not None or "instance-attribute" in attr.labels:
            attr.value = None
        if descriptor is not None and isinstance(attr.annotation, griffe.ExprSubscript):
            attr.annotation = attr.annotation.slice  # _StateAttr[str] reads as str
        if attr.docstring is not None:
            return
        text = descriptor or _comment_doc(attr)
        if text:
            attr.docstring = griffe.Docstring(text, lineno=attr.lineno, parent=attr)

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        """Rewrite every docstring of the package once it is loaded."""
        if pkg.name != "obshell_sdk":
            return
        public = _public_names(pkg)
        for obj in _walk(pkg):
            if obj.docstring is not None:
                obj.docstring.value = _markdown(obj.docstring.value, obj, public)


def _descriptor_doc(node: Any) -> Optional[str]:
    """The text of ``name: _StateAttr[T] = _StateAttr("text")`` (the fake agent's attributes)."""
    value = getattr(node, "value", None)
    if (isinstance(value, ast.Call) and isinstance(value.func, ast.Name)
            and value.func.id == "_StateAttr" and value.args
            and isinstance(value.args[0], ast.Constant) and isinstance(value.args[0].value, str)):
        return value.args[0].value
    return None


def _comment_doc(attr: griffe.Attribute) -> Optional[str]:
    """The ``#:`` comment lines right above the attribute's first line."""
    if attr.lineno is None or attr.filepath is None or isinstance(attr.filepath, list):
        return None
    try:
        lines = attr.lines_collection[attr.filepath]
    except KeyError:
        return None
    found: list[str] = []
    index = attr.lineno - 2  # the line above, 0-based
    while 0 <= index < len(lines) and lines[index].strip().startswith("#:"):
        found.insert(0, lines[index].strip()[2:].strip())
        index -= 1
    return " ".join(found) or None


def _walk(obj: griffe.Object) -> list[griffe.Object]:
    """The object and every member defined in it (aliases are rendered from their target)."""
    found = [obj]
    for member in obj.members.values():
        if not member.is_alias:
            found.extend(_walk(member))  # type: ignore[arg-type]
    return found


def _public_names(pkg: griffe.Module) -> dict[str, str]:
    """Every public name, short and dotted, mapped to the path its reference entry has."""
    names: dict[str, str] = {}
    for package_path in _PUBLIC_PACKAGES:
        package = pkg if package_path == pkg.path else pkg.get_member(
            package_path.split(".", 1)[1])
        exported = [str(n) for n in (package.exports or ())]
        for name in exported:
            path = f"{package_path}.{name}"
            names.setdefault(name, path)
            names[path] = path
            try:
                target = package.get_member(name)
                if target.is_alias:
                    target = target.final_target
            except (KeyError, griffe.AliasResolutionError, griffe.CyclicAliasError):
                continue
            names.setdefault(target.path, path)
            members = target.all_members if target.is_class else target.members
            for member, value in members.items():
                # Only members the reference shows: public ones with a docstring.
                if not member.startswith("_") and _documented(value):
                    names.setdefault(f"{name}.{member}", f"{path}.{member}")
                    names[f"{path}.{member}"] = f"{path}.{member}"
    return names


def _documented(obj: Any) -> bool:
    """True when the object (or the alias's target) has a docstring."""
    try:
        return obj.docstring is not None
    except (griffe.AliasResolutionError, griffe.CyclicAliasError):
        return False


def _markdown(text: str, obj: griffe.Object, public: dict[str, str]) -> str:
    """The docstring with roles as code or links and ``::`` as ``:``."""

    def role(match: re.Match[str]) -> str:
        kind, short, target = match.group(1), match.group(2), match.group(3).strip()
        shown = target.rsplit(".", 1)[-1] if short else target.lstrip(".")
        if kind in ("meth", "func"):
            shown += "()"
        path = _resolve(target.lstrip("~"), obj, public)
        return f"[`{shown}`][{path}]" if path else f"`{shown}`"

    text = _ROLE.sub(role, text)
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if line.rstrip().endswith("::") and _block_follows(lines, i):
            stripped = line.rstrip()[:-2].rstrip()
            lines[i] = (stripped + ":") if stripped else ""
    return "\n".join(lines)


def _block_follows(lines: list[str], i: int) -> bool:
    """True when a blank line and an indented block follow line ``i``."""
    rest = lines[i + 1:]
    return len(rest) >= 2 and not rest[0].strip() and rest[1].startswith("    ")


def _resolve(target: str, obj: griffe.Object, public: dict[str, str]) -> Optional[str]:
    """The reference path of a role's target, or None when it names nothing public."""
    if target in public:
        return public[target]
    owner = obj if obj.is_class else obj.parent
    while owner is not None:  # a method or attribute named from inside its class
        if owner.is_class and f"{owner.path}.{target}" in public:
            return public[f"{owner.path}.{target}"]
        if owner.is_class and owner.path in public:
            candidate = f"{public[owner.path]}.{target}"
            if candidate in public.values():
                return candidate
        owner = owner.parent
    return None
