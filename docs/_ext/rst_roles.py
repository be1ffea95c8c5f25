"""A griffe extension: the docstrings' reStructuredText roles as Markdown for mkdocstrings.

The docstrings are Google style with Sphinx cross-reference roles (``:class:`~a.b.C```,
``:func:``, ``:meth:``, ``:mod:``, ``:data:``, ``:attr:``), which mkdocstrings does not render.
Once the package is loaded, every role becomes

* a cross-reference, ``[`C`][a.b.C]``, when its target is an object of ``lga_lightning`` that the
  API pages show (public, documented, in one of the wings), found as Sphinx would: the dotted
  path as written, else the name looked up from the docstring's own object outwards;
* a code span, ``C``, otherwise (torch, the standard library, private helpers), so the strict
  build has no cross-reference without a target.

A leading ``~`` keeps only the last component as the title, as in Sphinx. The directive
``.. math::`` becomes a fenced block, so that the formula is shown as written. Two Google-style
forms that griffe does not read are rewritten for it: an ``Example:`` heading becomes
``Examples:`` (so the doctests are shown as code), and an argument entry naming several
parameters (``a, b, c: as in X``) becomes one entry per parameter.

Registered in ``mkdocs.yml`` under the python handler's ``extensions``.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

PACKAGE = "lga_lightning"
WINGS = ("core", "training", "search", "data", "utils")
ROLE = re.compile(r":(?:class|func|meth|mod|data|attr|obj|exc):`(?P<tilde>~?)(?P<target>[^`]+)`")
MATH = re.compile(
    r"^(?P<indent>[ \t]*)\.\. math::[ \t]*\n(?P<body>(?:(?P=indent)[ \t]+.*\n|\n)+)", re.M
)


EXAMPLE = re.compile(r"^(?P<indent>[ \t]*)Example:[ \t]*$", re.M)
ARGS = re.compile(r"^(?P<indent>[ \t]*)(?:Args|Arguments|Parameters|Params):[ \t]*$")
NAMES = re.compile(r"^[A-Za-z_*][\w*]*(?:,[ \t]*[A-Za-z_*][\w*]*)*,?$")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def split_shared_entries(text: str) -> str:
    r"""Rewrite ``a, b: description`` entries of argument sections as one entry per name.

    Args:
        text: a docstring.

    Returns:
        The docstring with every shared entry split; everything else as it was.

    Example:
        >>> split_shared_entries("Args:\n    a, b,\n        c: as X.\n    d: own.").splitlines()
        ['Args:', '    a: as X.', '    b: as X.', '    c: as X.', '    d: own.']
    """
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        out.append(lines[i])
        section = ARGS.match(lines[i])
        i += 1
        if section is None:
            continue
        base = len(section["indent"])
        while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > base):
            line, item = lines[i], _indent(lines[i])
            head, j = line.strip(), i + 1
            while ":" not in head and head.endswith(",") and j < len(lines):
                head, j = f"{head} {lines[j].strip()}", j + 1
            names, colon, description = head.partition(":")
            if not colon or "," not in names or not NAMES.match(names.replace(" ", "")):
                out.append(line)
                i += 1
                continue
            rest = []
            while j < len(lines) and lines[j].strip() and _indent(lines[j]) > item:
                rest.append(lines[j])
                j += 1
            for name in filter(None, (n.strip() for n in names.split(","))):
                out.append(f"{line[:item]}{name}:{description}")
                out.extend(rest)
            i = j
    return "\n".join(out)


def _lookup(pkg: griffe.Module, path: str) -> griffe.Object | griffe.Alias | None:
    if path != PACKAGE and not path.startswith(PACKAGE + "."):
        return None
    try:
        return pkg if path == PACKAGE else pkg[path[len(PACKAGE) + 1 :]]
    except (KeyError, ValueError, griffe.AliasResolutionError, griffe.CyclicAliasError):
        return None


def _shown(obj: griffe.Object | griffe.Alias) -> str | None:
    """The canonical path of ``obj`` when the API pages render it, else ``None``."""
    try:
        target = obj.final_target if isinstance(obj, griffe.Alias) else obj
    except (griffe.AliasResolutionError, griffe.CyclicAliasError):
        return None
    parts = target.path.split(".")
    if parts[0] != PACKAGE or len(parts) < 2 or parts[1] not in WINGS:
        return None
    if any(part.startswith("_") and not part.startswith("__") for part in parts):
        return None
    node: griffe.Object | None = target
    while node is not None and not node.is_module:
        if not node.has_docstring:
            return None
        node = node.parent
    return target.path


def _resolve(obj: griffe.Object, pkg: griffe.Module, target: str) -> str | None:
    target = target.lstrip(".")
    found = _lookup(pkg, target)
    if found is None:
        head, _, rest = target.partition(".")
        scope: griffe.Object | None = obj
        while scope is not None and found is None:
            try:
                full = scope.resolve(head)
            except (griffe.NameResolutionError, AttributeError, KeyError):
                full = None
            if full is not None:
                found = _lookup(pkg, f"{full}.{rest}" if rest else full)
            scope = scope.parent
    return None if found is None else _shown(found)


def convert(obj: griffe.Object, pkg: griffe.Module, text: str) -> str:
    """``text`` with its roles as cross-references or code spans, rewritten for griffe.

    Example:
        >>> pkg = griffe.Module(PACKAGE)
        >>> convert(pkg, pkg, "see :func:`~os.path.join` and :class:`dict`")
        'see `join` and `dict`'
    """

    def role(match: re.Match[str]) -> str:
        target = match["target"].strip()
        title = target.rsplit(".", 1)[-1] if match["tilde"] else target.lstrip(".")
        path = _resolve(obj, pkg, target)
        return f"[`{title}`][{path}]" if path else f"`{title}`"

    def math(match: re.Match[str]) -> str:
        indent, body = match["indent"], match["body"]
        lines = [line.strip() for line in body.rstrip("\n").splitlines()]
        fenced = "\n".join(f"{indent}{line}" if line else "" for line in lines)
        return f"{indent}```text\n{fenced}\n{indent}```\n\n"

    text = split_shared_entries(EXAMPLE.sub(r"\g<indent>Examples:", text))
    return ROLE.sub(role, MATH.sub(math, text))


def _walk(obj: griffe.Object) -> list[griffe.Object]:
    objects = [obj]
    for member in obj.members.values():
        if not isinstance(member, griffe.Alias):
            objects.extend(_walk(member))
    return objects


class RstRoles(griffe.Extension):
    """Rewrite the roles in every docstring of the package once it is loaded."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        """Convert the docstrings of ``pkg`` and of everything it holds."""
        if pkg.name != PACKAGE:
            return
        for obj in _walk(pkg):
            if obj.docstring is not None:
                obj.docstring.value = convert(obj, pkg, obj.docstring.value)
