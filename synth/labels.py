"""Label classes: the definitions that share one set of categorical values, and renaming them.

A categorical map produces labels; a categorical aggregate of it only moves
those labels between positions, so it carries the same ones. Such a group (the
producing map and the aggregates downstream of it) is one *label class*: its
labels can be renamed only all together, by rewriting the producer's table and
every table that reads a member.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from dsl import ast
from synth.graph import references, replace_definitions


@dataclass(frozen=True)
class LabelClass:
    root: str
    """The definition producing the labels: a categorical map or sequence_map with a table."""
    members: tuple[str, ...]
    """The root, then the categorical aggregates that pass its labels on."""
    labels: tuple
    """The labels, in the order of the root's table (None, an aggregate default, excluded)."""


def label_classes(program: ast.Program) -> list[LabelClass]:
    """Every label class of a flat program whose labels can be renamed by rewriting tables."""
    owner: dict[str, str] = {}  # member -> root
    members: dict[str, list[str]] = {}
    for definition in program.definitions:
        node = definition.node
        if _produces_labels(node):
            owner[definition.name] = definition.name
            members[definition.name] = [definition.name]
        elif _passes_labels(node) and node.sop.id in owner:
            root = owner[node.sop.id]
            owner[definition.name] = root
            members[root].append(definition.name)
    lookup = program.lookup()
    classes = []
    for root, names in members.items():
        if _renamable(program, set(names)):
            labels = _distinct(v for _, v in lookup[root].fn.entries if v is not None)
            classes.append(LabelClass(root, tuple(names), labels))
    return classes


def _produces_labels(node: ast.Node) -> bool:
    return (
        isinstance(node, (ast.Map, ast.SequenceMap))
        and node.encoding is ast.CATEGORICAL
        and isinstance(node.fn, ast.Table)
    )


def _passes_labels(node: ast.Node) -> bool:
    return (
        isinstance(node, ast.Aggregate)
        and node.encoding is ast.CATEGORICAL
        and isinstance(node.sop, ast.Name)
    )


def _renamable(program: ast.Program, names: set[str]) -> bool:
    """Every reader of the class is a table or a member, and the output is not in it."""
    if isinstance(program.output, ast.Name) and program.output.id in names:
        return False
    if set(references(program.output)) & names:
        return False
    for definition in program.definitions:
        node = definition.node
        read = set(references(node)) & names
        if not read:
            continue
        if definition.name in names and isinstance(node, ast.Aggregate):
            if node.default is not None:
                return False  # its default is a value of the class that is no label
            continue
        if isinstance(node, (ast.Map, ast.SequenceMap)) and isinstance(node.fn, ast.Table):
            continue
        if isinstance(node, ast.Select) and isinstance(node.predicate, ast.Table):
            continue
        return False
    return True


def _identical(a, b) -> bool:
    return type(a) is type(b) and a == b


def _distinct(values) -> tuple:
    seen: list = []
    for value in values:
        if not any(_identical(s, value) for s in seen):
            seen.append(value)
    return tuple(seen)


def relabel(program: ast.Program, label_class: LabelClass, new_labels: Mapping) -> ast.Program:
    """Rename the labels of `label_class` (old -> new) in every table that produces or reads them.

    Entries keyed by a label with no new value are dropped (the label does not occur).
    """
    names = set(label_class.members)
    lookup = program.lookup()
    nodes: dict[str, ast.Node] = {}
    root = lookup[label_class.root]
    arity = len(root.children)
    nodes[label_class.root] = dataclasses.replace(
        root, fn=_map_table(root.fn, (None,) * arity, values=new_labels)
    )
    for definition in program.definitions:
        node = nodes.get(definition.name, definition.node)
        if isinstance(node, ast.Map) and _reads(node.arg, names):
            node = dataclasses.replace(node, fn=_map_table(node.fn, (new_labels,)))
        elif isinstance(node, ast.SequenceMap) and _reads_any(node.children, names):
            key_maps = tuple(new_labels if _reads(c, names) else None for c in node.children)
            node = dataclasses.replace(node, fn=_map_table(node.fn, key_maps))
        elif isinstance(node, ast.Select) and _reads_any(node.children, names):
            key_maps = tuple(new_labels if _reads(c, names) else None for c in node.children)
            node = dataclasses.replace(node, predicate=_map_table(node.predicate, key_maps))
        nodes[definition.name] = node
    return replace_definitions(program, nodes)


def _reads(node: ast.Node, names: set[str]) -> bool:
    return isinstance(node, ast.Name) and node.id in names


def _reads_any(nodes, names: set[str]) -> bool:
    return any(_reads(node, names) for node in nodes)


def _map_table(
    table: ast.Table, keys: tuple[Mapping | None, ...], *, values: Mapping | None = None
) -> ast.Table:
    """Rename a table's arguments (one mapping or None per argument) and/or its values."""
    entries = []
    unary = len(keys) == 1
    for key, value in table.entries:
        parts = (key,) if unary else key
        try:
            new_parts = tuple(
                part if mapping is None or part is None else mapping[part]
                for part, mapping in zip(parts, keys)
            )
            new_value = value if values is None or value is None else values[value]
        except KeyError:
            continue
        entries.append((new_parts[0] if unary else new_parts, new_value))
    return ast.Table(tuple(entries))
