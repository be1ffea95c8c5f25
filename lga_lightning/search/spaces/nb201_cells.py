"""NAS-Bench-201 cells as strings: parsing, enumeration, sampling, mutation, canonical forms.

A NAS-Bench-201 cell is a DAG of 4 nodes: node 0 is the cell input, node 3 its output, and every
pair ``i < j`` is joined by one edge carrying one of the 5 operations in :data:`OPS`. The 6 edges
are written in this order (the order of :data:`EDGES`)::

    |op~0|+|op~0|op~1|+|op~0|op~1|op~2|
     0->1    0->2 1->2    0->3 1->3 2->3

so there are ``5**6 = 15,625`` cells. Node ``j`` is the sum of its incoming edges, each edge applying
its operation to node ``i``.

**Enumeration order.** Cell number ``k`` (:func:`index` / :func:`from_index`) is the 6-digit
base-5 number whose digits are the op codes (position in :data:`OPS`) of the edges in string order,
the first edge (0->1) most significant. This is the order of xautodl's
``Structure.gen_all(NAS_BENCH_201, 4, False)``; it is *not* the arch index of the NAS-Bench-201
API (use the benchmark module to look cells up there).

**Canonical form** (:func:`canonical`). Two equivalences are collapsed, and no others:

1. *Dead edges become* ``none``. An edge is live when its op is not ``none``, its source node is
   reachable from the input through non-``none`` edges, and its target node reaches the output
   through non-``none`` edges; every other edge is dead. Edges that cannot reach the output never
   influence it. Edges whose source is unreachable from the input read a node that is exactly
   zero: ``skip_connect``/``avg_pool_3x3`` of zero is zero, and ``nor_conv_kxk`` of zero is its
   BatchNorm shift ``beta``, which is zero at initialisation (and always with ``affine=False``).
   Caveat: with affine BatchNorm, training can move that ``beta`` away from zero, so after
   training such an edge may add a learned, input-independent per-channel constant; at
   initialisation, and in the NTK (which uses weights, whose gradients there are exactly zero),
   the two cells are identical. A cell whose output is unreachable is canonically all-``none``.
2. *Renaming the two intermediate nodes.* When edge 1->2 is ``none`` (after step 1), nodes 1 and 2
   play symmetric roles; swapping them (edges 0->1 <-> 0->2 and 1->3 <-> 2->3) gives an isomorphic
   graph with the same operations, hence the same parameterised function.

The canonical string is the representative with the smallest :func:`index`. **Not** collapsed
(cells that are also functionally equivalent, or nearly so, but get different canonical strings):
contracting ``skip_connect`` edges (a node that is a copy of another node), linearity of
``avg_pool_3x3`` (``pool(a) + pool(b) == pool(a + b)``), and scale invariance that BatchNorm gives
some downstream paths. Under this definition the 15,625 cells reduce to
:data:`NUM_CANONICAL` = **8,765** canonical forms (9,445 with step 1 alone); the tests recount both
with an independent brute force. For comparison, the rules of xautodl's
``Structure.to_unique_str(consider_zero=True)``, which also contract ``skip_connect`` and treat a
node as a multiset of terms (even when that merges shared and separate parameters), give 6,466.

Example:
    >>> from lga_lightning.search.spaces import nb201_cells as nb201
    >>> arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    >>> nb201.format(nb201.parse(arch)) == arch
    True
"""  # noqa: E501

from __future__ import annotations

import difflib
from collections.abc import Iterator, Sequence
from typing import Any

from lga_lightning.search.spaces.base import RngLike, as_rng

# ``format`` (the inverse of ``parse``) is left out of ``__all__`` so that a star import does not
# shadow the builtin; use it as ``nb201.format``.
__all__ = [
    "EDGES",
    "NUM_CANONICAL",
    "OPS",
    "SIZE",
    "ArchStringError",
    "all_archs",
    "canonical",
    "from_index",
    "index",
    "live_edges",
    "mutate",
    "parse",
    "sample",
    "validate",
]

OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
"""The 5 candidate operations; their positions are the op codes used by :func:`index`."""

NUM_NODES = 4
EDGES: tuple[tuple[int, int], ...] = tuple((i, j) for j in range(1, NUM_NODES) for i in range(j))
"""``(source, target)`` of the 6 edges in arch-string order: 0->1, 0->2, 1->2, 0->3, 1->3, 2->3."""

SIZE = len(OPS) ** len(EDGES)
"""Number of cells: 15,625."""

NUM_CANONICAL = 8765
"""Number of distinct :func:`canonical` strings over the 15,625 cells."""

_FORMAT_HINT = "|op~0|+|op~0|op~1|+|op~0|op~1|op~2|"
_EDGE_12 = EDGES.index((1, 2))
# Swapping nodes 1 and 2 maps edge 0->1 <-> 0->2 and 1->3 <-> 2->3 and keeps 0->3 (edge 1->2 must
# be absent): the swapped cell's edge k carries the op of edge _SWAP_12[k] of the original.
_SWAP_12 = (1, 0, _EDGE_12, 3, 5, 4)

Cell = tuple[str, ...]
"""A cell as the 6 op names in edge order (see :data:`EDGES`)."""


class ArchStringError(ValueError):
    """A malformed NAS-Bench-201 arch string.

    Attributes:
        arch: the offending string.
        reason: what is wrong, and where.
        position: character offset of the problem in ``arch`` (``None`` when not applicable).
    """

    def __init__(self, arch: Any, reason: str, position: int | None = None) -> None:
        self.arch = arch
        self.reason = reason
        self.position = position
        lines = [f"invalid NAS-Bench-201 arch string {arch!r}: {reason}."]
        if position is not None:
            lines += [f"    {arch}", "    " + " " * position + "^"]
        lines.append(f"Expected {_FORMAT_HINT} with op in {{{', '.join(OPS)}}}.")
        super().__init__("\n".join(lines))


# --------------------------------------------------------------------------------------------
# strings
# --------------------------------------------------------------------------------------------


def parse(arch: str) -> Cell:
    """Parse an arch string into its 6 op names in edge order.

    Args:
        arch: a string such as ``"|nor_conv_3x3~0|+|none~0|skip_connect~1|+|..."``.

    Returns:
        The ops of edges 0->1, 0->2, 1->2, 0->3, 1->3, 2->3.

    Raises:
        ArchStringError: (a ``ValueError``) naming what is wrong and where: wrong node count,
            bad ``|``/``+``/``~`` separators, wrong edge index, or unknown op.
        TypeError: when ``arch`` is not a ``str``.

    Example:
        >>> parse("|skip_connect~0|+|none~0|none~1|+|none~0|none~1|nor_conv_1x1~2|")
        ('skip_connect', 'none', 'none', 'none', 'none', 'nor_conv_1x1')
    """
    if not isinstance(arch, str):
        raise TypeError(f"a NAS-Bench-201 arch string must be a str, got {type(arch).__name__}")
    groups = arch.split("+")
    if len(groups) != NUM_NODES - 1:
        raise ArchStringError(
            arch,
            f"wrong node count: found {len(groups)} node group(s) separated by '+', expected "
            f"{NUM_NODES - 1} (nodes 1, 2, 3)",
        )
    ops: list[str] = []
    offset = 0
    for node, group in zip(range(1, NUM_NODES), groups, strict=True):
        ops.extend(_parse_node(arch, node, group, offset))
        offset += len(group) + 1
    return tuple(ops)


def _parse_node(arch: str, node: int, group: str, offset: int) -> list[str]:
    """Parse the ``|op~0|op~1|`` group of ``node`` that starts at ``offset`` in ``arch``."""
    if len(group) < 2 or not group.startswith("|") or not group.endswith("|"):
        where = offset if not group.startswith("|") else offset + max(len(group) - 1, 0)
        raise ArchStringError(
            arch,
            f"bad separators in node {node}: its group {group!r} must start and end with '|'",
            where,
        )
    entries = group[1:-1].split("|")
    if "" in entries:
        empty = offset + 1 + group[1:-1].find("||") if "||" in group[1:-1] else offset
        raise ArchStringError(
            arch, f"bad separators in node {node}: empty edge in group {group!r}", empty
        )
    if len(entries) != node:
        raise ArchStringError(
            arch,
            f"node {node} lists {len(entries)} input edge(s), expected {node} "
            f"(one from each of nodes 0..{node - 1})",
            offset,
        )
    ops = []
    pos = offset + 1
    for source, entry in zip(range(node), entries, strict=True):
        ops.append(_parse_edge(arch, node, source, entry, pos))
        pos += len(entry) + 1
    return ops


def _parse_edge(arch: str, node: int, source: int, entry: str, pos: int) -> str:
    """Parse one ``op~source`` entry of ``node`` located at ``pos`` in ``arch``."""
    if entry.count("~") != 1:
        raise ArchStringError(
            arch,
            f"bad separators in node {node}, input {source}: {entry!r} should be 'op~{source}' "
            "(one '~' between op and source node; edges separated by a single '|')",
            pos,
        )
    op, src = entry.split("~")
    if src != str(source):
        raise ArchStringError(
            arch,
            f"wrong edge index in node {node}: input {source} is {entry!r}, expected "
            f"'{op}~{source}' (the inputs of node {node} are listed as ~0..~{node - 1} in order)",
            pos + len(op) + 1,
        )
    if op not in OPS:
        close = difflib.get_close_matches(op, OPS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ArchStringError(
            arch,
            f"unknown op {op!r} on edge {source}->{node}{hint}; valid ops: {', '.join(OPS)}",
            pos,
        )
    return op


def format(ops: Sequence[str]) -> str:
    """Write 6 op names (edge order) as an arch string; the inverse of :func:`parse`.

    Args:
        ops: the ops of edges 0->1, 0->2, 1->2, 0->3, 1->3, 2->3.

    Returns:
        The arch string.

    Raises:
        ValueError: when ``ops`` does not hold 6 valid op names.

    Example:
        >>> format(["nor_conv_3x3"] * 6)
        '|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|'
    """  # noqa: E501
    ops = tuple(ops)
    if len(ops) != len(EDGES):
        raise ValueError(f"a NAS-Bench-201 cell has {len(EDGES)} edges, got {len(ops)} ops: {ops}")
    for op in ops:
        if op not in OPS:
            raise ValueError(f"unknown op {op!r}; valid ops: {', '.join(OPS)}")
    groups: list[list[str]] = [[] for _ in range(NUM_NODES - 1)]
    for (source, target), op in zip(EDGES, ops, strict=True):
        groups[target - 1].append(f"{op}~{source}")
    return "+".join("|" + "|".join(group) + "|" for group in groups)


def validate(arch: str) -> str:
    """Check an arch string and return it unchanged.

    Raises:
        ArchStringError: when ``arch`` is malformed (see :func:`parse`).

    Example:
        >>> validate("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")
        '|none~0|+|none~0|none~1|+|none~0|none~1|none~2|'
        >>> validate("|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|")
        Traceback (most recent call last):
        ...
        lga_lightning.search.spaces.nb201_cells.ArchStringError: invalid NAS-Bench-201 arch...
    """
    parse(arch)
    return arch


def _as_cell(arch: str | Sequence[str]) -> Cell:
    """Accept an arch string or a sequence of 6 op names."""
    if isinstance(arch, str):
        return parse(arch)
    return parse(format(arch))


# --------------------------------------------------------------------------------------------
# enumeration, sampling, mutation
# --------------------------------------------------------------------------------------------


def index(arch: str | Sequence[str]) -> int:
    """Position of a cell in the enumeration order (see the module docstring).

    Example:
        >>> index("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")
        0
        >>> index("|skip_connect~0|+|none~0|none~1|+|none~0|none~1|none~2|") == 5**5
        True
    """
    value = 0
    for op in _as_cell(arch):
        value = value * len(OPS) + OPS.index(op)
    return value


def from_index(k: int) -> str:
    """The arch string at position ``k`` of the enumeration; the inverse of :func:`index`.

    Raises:
        IndexError: unless ``0 <= k < 15625``.

    Example:
        >>> from_index(SIZE - 1)
        '|avg_pool_3x3~0|+|avg_pool_3x3~0|avg_pool_3x3~1|+|avg_pool_3x3~0|avg_pool_3x3~1|avg_pool_3x3~2|'
    """  # noqa: E501
    if isinstance(k, bool) or not 0 <= k < SIZE:
        raise IndexError(f"NAS-Bench-201 cell index must be in [0, {SIZE}), got {k!r}")
    digits = []
    for _ in EDGES:
        k, digit = divmod(int(k), len(OPS))
        digits.append(OPS[digit])
    return format(digits[::-1])


def all_archs() -> Iterator[str]:
    """Iterate over all 15,625 arch strings in enumeration order.

    Example:
        >>> archs = list(all_archs())
        >>> len(archs), archs[0] == from_index(0)
        (15625, True)
    """
    return (from_index(k) for k in range(SIZE))


def sample(rng: RngLike = None) -> str:
    """Draw a cell uniformly at random.

    Args:
        rng: an ``int`` seed, ``random.Random``, NumPy ``Generator`` or ``None``. The same seed
            always gives the same cell; a ``random.Random`` is advanced.

    Example:
        >>> sample(0) == sample(0)
        True
    """
    return from_index(as_rng(rng).randrange(SIZE))


def mutate(arch: str | Sequence[str], rng: RngLike = None) -> str:
    """Change the op of one edge, chosen uniformly, to a different op, chosen uniformly.

    This is the mutation of regularised evolution (Real et al., 2019) as used on NAS-Bench-201.

    Example:
        >>> a = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
        >>> sum(x != y for x, y in zip(parse(a), parse(mutate(a, 0))))
        1
    """
    ops = list(_as_cell(arch))
    rand = as_rng(rng)
    edge = rand.randrange(len(EDGES))
    ops[edge] = rand.choice([op for op in OPS if op != ops[edge]])
    return format(ops)


# --------------------------------------------------------------------------------------------
# canonical form
# --------------------------------------------------------------------------------------------


def live_edges(arch: str | Sequence[str]) -> tuple[bool, ...]:
    """Which edges can influence the cell output (see "Canonical form" in the module docstring).

    An edge is live when its op is not ``none``, its source is reachable from node 0 and its
    target reaches node 3, both through non-``none`` edges.

    Example:
        >>> live_edges("|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|")
        (False, False, False, True, False, False)
    """
    ops = _as_cell(arch)
    present = {edge: op != "none" for edge, op in zip(EDGES, ops, strict=True)}
    from_input = [True] + [False] * (NUM_NODES - 1)
    for j in range(1, NUM_NODES):
        from_input[j] = any(from_input[i] and present[(i, j)] for i in range(j))
    to_output = [False] * (NUM_NODES - 1) + [True]
    for i in range(NUM_NODES - 2, -1, -1):
        to_output[i] = any(present[(i, j)] and to_output[j] for j in range(i + 1, NUM_NODES))
    return tuple(present[(i, j)] and from_input[i] and to_output[j] for i, j in EDGES)


def canonical(arch: str | Sequence[str]) -> str:
    """Canonical arch string: equal for cells that differ only by dead edges or node renaming.

    Dead edges become ``none``; then, when edge 1->2 is ``none``, the cell and its copy with
    nodes 1 and 2 swapped are both candidates, and the one with the smaller :func:`index` is
    returned. See the module docstring for exactly what is and is not collapsed.

    Example:
        >>> canonical("|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|")
        '|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|'
        >>> a = "|nor_conv_1x1~0|+|avg_pool_3x3~0|none~1|+|none~0|avg_pool_3x3~1|nor_conv_1x1~2|"
        >>> b = "|avg_pool_3x3~0|+|nor_conv_1x1~0|none~1|+|none~0|nor_conv_1x1~1|avg_pool_3x3~2|"
        >>> canonical(a) == canonical(b)
        True
    """
    ops = _as_cell(arch)
    pruned = tuple(op if live else "none" for op, live in zip(ops, live_edges(ops), strict=True))
    candidates = [pruned]
    if pruned[_EDGE_12] == "none":
        candidates.append(tuple(pruned[e] for e in _SWAP_12))
    return format(min(candidates, key=index))
