"""Merging chains of table maps: fewer operations, and closed forms over the real inputs.

`map(f, map(g, x))` where the inner map is used only there becomes `map(f . g, x)`;
the same for a sequence_map reading a single-use map, and a map reading a
single-use sequence_map. A sequence_map of one SOp with itself, or one whose
table ignores an argument, becomes a map. All of this happens on tables, so a
merged table is searched for a closed form as a whole (`x + x - y` rather than
two maps with opaque labels in between).
"""

from __future__ import annotations

import dataclasses

from dsl import ast
from synth.graph import may_be_none, replace_definitions, use_counts, without


def merge_map_chains(program: ast.Program) -> ast.Program:
    """Apply the merges until none applies (each removes an operation or an argument)."""
    while True:
        merged = _merge_once(program)
        if merged is None:
            return program
        program = merged


def _merge_once(program: ast.Program) -> ast.Program | None:
    lookup = program.lookup()
    counts = use_counts(program)
    for definition in program.definitions:
        node = definition.node
        if not isinstance(node, (ast.Map, ast.SequenceMap)) or not isinstance(node.fn, ast.Table):
            continue
        if isinstance(node, ast.SequenceMap):
            narrowed = _as_map(node, lookup)
            if narrowed is not None:
                return replace_definitions(program, {definition.name: narrowed})
        for position, child in enumerate(node.children):
            inner_name = child.id if isinstance(child, ast.Name) else None
            if inner_name is None or counts[inner_name] != 1:
                continue
            inner = lookup[inner_name]
            merged = _compose(node, position, inner)
            if merged is not None:
                program = replace_definitions(program, {definition.name: merged})
                return without(program, {inner_name})
    return None


def _as_map(node: ast.SequenceMap, lookup) -> ast.Map | None:
    """A sequence_map that is really a map of one of its arguments.

    An argument the table ignores is dropped only if it is never None: a None
    argument makes a sequence_map None whatever its table says.
    """
    entries = node.fn.entries
    if node.left == node.right:
        table = ast.Table(tuple((x, value) for (x, y), value in entries if x == y))
        return ast.Map(table, node.left, node.encoding)
    for side, arg in ((0, node.left), (1, node.right)):
        if may_be_none(node.children[1 - side], lookup):
            continue
        by_arg: dict = {}
        if all(by_arg.setdefault(key[side], _identity(v)) == _identity(v) for key, v in entries):
            table = ast.Table(tuple((key[side], value) for key, value in _first_per(entries, side)))
            return ast.Map(table, arg, node.encoding)
    return None


def _first_per(entries, side: int):
    seen = set()
    for key, value in entries:
        if key[side] not in seen:
            seen.add(key[side])
            yield key, value


def _compose(outer: ast.Node, position: int, inner: ast.Node) -> ast.Node | None:
    """`outer` with its argument at `position` replaced by the single-use `inner` map."""
    if not isinstance(inner, (ast.Map, ast.SequenceMap)) or not isinstance(inner.fn, ast.Table):
        return None
    outer_table = outer.fn.as_dict()
    inner_entries = inner.fn.entries
    if isinstance(outer, ast.Map):
        entries = [(k, _apply(outer_table, v)) for k, v in inner_entries]
        entries = [(k, v) for k, v in entries if v is not _MISSING]
        return dataclasses.replace(
            inner, fn=ast.Table(tuple(entries)), encoding=outer.encoding, span=outer.span
        )
    if not isinstance(inner, ast.Map):
        return None  # a sequence_map of a sequence_map would take three arguments
    others = {key[1 - position] for key in outer_table}
    entries = []
    for inner_key, inner_value in inner_entries:
        for other in others:
            pair = (inner_value, other) if position == 0 else (other, inner_value)
            new_key = (inner_key, other) if position == 0 else (other, inner_key)
            value = _apply(outer_table, pair, none_if=inner_value is None)
            if value is not _MISSING:
                entries.append((new_key, value))
    children = list(outer.children)
    children[position] = inner.arg
    return dataclasses.replace(
        outer, fn=ast.Table(tuple(entries)), left=children[0], right=children[1]
    )


_MISSING = object()


def _apply(table: dict, key, *, none_if: bool | None = None):
    """The outer table at `key`; None where the inner gave None (maps pass None through)."""
    if none_if if none_if is not None else key is None:
        return None
    try:
        return table.get(key, _MISSING)
    except TypeError:
        return _MISSING


def _identity(value) -> tuple:
    return (type(value), value)
