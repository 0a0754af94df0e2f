"""Choosing the meaning of free labels: the values that make the program shortest and clearest.

For each class of free labels (synth.labels), in program order, the candidates are:

- a closed form of the producing table that separates its inputs exactly as
  the labels do (synth.closed_forms.relabeling_forms): the labels become the
  form's values, and the form (or the identity, which drops the map) is the code;
- the values a select forces: against real values, those under which the
  select is `==` or an order; against itself, the ranks under `<`;
- the values of a map reading the class (which then is the identity, dropped);
- the labels as they are.

The chosen candidate names the most selectors reading the class (with the
ascending orders `<`, `<=` preferred where the direction is free), then drops
the most maps, then is a closed form, then is the smallest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dsl import ast
from synth.budget import Budget
from synth.closed_forms import relabeling_forms
from synth.comparisons import (
    ASCENDING,
    comparison_of,
    forced_labels,
    ranked_labels,
    relabeled_entries,
)
from synth.expressions import expression_size
from synth.labels import label_classes, relabel

FORM, FORCED, KEPT = 2, 1, 0  # where a candidate comes from, best first


@dataclass(frozen=True)
class _Candidate:
    new_labels: dict
    origin: int  # FORM, FORCED or KEPT
    size: int


@dataclass(frozen=True)
class _Reader:
    """A select reading a class, and which of its sides hold the class's labels."""

    table: ast.Table
    keys_free: bool
    queries_free: bool


def choose_labels(
    program: ast.Program, free: frozenset[str], *, budget: Budget, extra_constants: Sequence
) -> tuple[ast.Program, dict[str, dict]]:
    """Rename every class of free labels; return the program and old -> new per free name."""
    classes = [c for c in label_classes(program) if set(c.members) & free]
    undecided = {name for c in classes for name in c.members}
    relabelings: dict[str, dict] = {}
    for label_class in classes:
        members = set(label_class.members)
        undecided -= members
        readers = _readers(program, members, undecided)
        mappers = _mappers(program, members, free)
        candidate = _best(program, label_class, readers, mappers, budget, extra_constants)
        program = relabel(program, label_class, candidate.new_labels)
        for name in label_class.members:
            relabelings[name] = dict(candidate.new_labels)
    return program, relabelings


def _readers(program: ast.Program, members: set[str], undecided: set[str]) -> list[_Reader]:
    """Selects with a table predicate reading the class, whose other side has known values."""
    readers = []
    for definition in program.definitions:
        node = definition.node
        if not isinstance(node, ast.Select) or not isinstance(node.predicate, ast.Table):
            continue
        sides = [isinstance(c, ast.Name) and c.id in members for c in (node.keys, node.queries)]
        others_unknown = any(
            isinstance(c, ast.Name) and c.id in undecided for c in (node.keys, node.queries)
        )
        if any(sides) and not others_unknown:
            readers.append(_Reader(node.predicate, sides[0], sides[1]))
    return readers


def _mappers(program: ast.Program, members: set[str], free: frozenset[str]) -> list[ast.Table]:
    """Tables of maps from the class to real values: labels equal to those drop the map."""
    return [
        d.node.fn
        for d in program.definitions
        if d.name not in free
        and isinstance(d.node, ast.Map)
        and isinstance(d.node.fn, ast.Table)
        and d.node.encoding is ast.CATEGORICAL
        and isinstance(d.node.arg, ast.Name)
        and d.node.arg.id in members
    ]


def _best(program, label_class, readers, mappers, budget, extra_constants) -> _Candidate:
    candidates = [
        c
        for c in _candidates(program, label_class, readers, mappers, budget, extra_constants)
        if _distinct_keys(c.new_labels.values())
    ]
    scores = [(_score(c, readers, mappers), -index) for index, c in enumerate(candidates)]
    return candidates[max(range(len(candidates)), key=lambda i: scores[i])]


def _candidates(program, label_class, readers, mappers, budget, extra_constants):
    yield _Candidate({label: label for label in label_class.labels}, KEPT, 0)
    for reader in readers:
        if reader.keys_free and reader.queries_free:
            labels = ranked_labels(reader.table)
        else:
            labels = forced_labels(reader.table, "keys" if reader.keys_free else "queries")
        labels = _completed(labels, label_class.labels)
        if labels is not None:
            yield _Candidate(labels, FORCED, 0)
    for table in mappers:
        labels = _completed(table.as_dict(), label_class.labels)
        if labels is not None:
            yield _Candidate(labels, FORCED, 0)
    root = program.lookup()[label_class.root]
    forms = relabeling_forms(
        root.fn, len(root.children), budget=budget, extra_constants=extra_constants
    )
    best_possible = (len(readers), len(readers), len(mappers), FORM)
    for count, form in enumerate(forms):
        if count >= budget.max_label_forms:
            return
        candidate = _Candidate(form.new_labels, FORM, expression_size(form.fn.body))
        yield candidate
        if _score(candidate, readers, mappers)[:4] == best_possible:
            return  # forms come smallest first: none later can score higher


def _completed(labels: dict | None, all_labels: tuple) -> dict | None:
    """`labels` for every label of the class: fresh numbers for labels a select never saw."""
    if labels is None:
        return None
    missing = [label for label in all_labels if label not in labels]
    if not missing:
        return {label: labels[label] for label in all_labels}
    numbers = [
        v for v in labels.values() if isinstance(v, (int, float)) and not isinstance(v, bool)
    ]
    if len(numbers) != len(labels):
        return None
    start = int(max(numbers, default=-1)) + 1
    fresh = dict(zip(missing, range(start, start + len(missing))))
    return {label: labels[label] if label in labels else fresh[label] for label in all_labels}


def _score(candidate: _Candidate, readers: list[_Reader], mappers: list[ast.Table]) -> tuple:
    named = ascending = 0
    for reader in readers:
        entries = relabeled_entries(
            reader.table,
            candidate.new_labels if reader.keys_free else None,
            candidate.new_labels if reader.queries_free else None,
        )
        comparison = comparison_of(entries)
        if comparison is not None:
            named += 1
            ascending += comparison.op in ASCENDING
    drops = sum(_makes_identity(candidate.new_labels, table) for table in mappers)
    return (named, ascending, drops, candidate.origin, -candidate.size)


def _makes_identity(new_labels: dict, table: ast.Table) -> bool:
    return all(
        key in new_labels and type(new_labels[key]) is type(value) and new_labels[key] == value
        for key, value in table.entries
    )


def _distinct_keys(values) -> bool:
    """New labels stay distinct as table keys (Python takes 1, 1.0 and True for one key)."""
    values = list(values)
    try:
        return len(set(values)) == len(values)
    except TypeError:
        return False
