"""Rewrites once labels are real values: name selectors, closed forms for maps, drop identities.

Each pass keeps the program's function on every input where it is defined: a
lambda replaces a table only when it agrees with the table on every key.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from dsl import ast
from synth.budget import Budget
from synth.closed_forms import closed_form
from synth.comparisons import name_predicate
from synth.graph import (
    encoding_of,
    replace_definitions,
    substitute_program,
    without,
)


def name_selectors(
    program: ast.Program, *, budget: Budget, extra_constants: Sequence
) -> tuple[ast.Program, dict[str, ast.Function]]:
    """Every select with a table predicate given a comparison or lambda where one fits."""
    nodes: dict[str, ast.Node] = {}
    for definition in program.definitions:
        node = definition.node
        if isinstance(node, ast.Select) and isinstance(node.predicate, ast.Table):
            found = name_predicate(node.predicate, budget=budget, extra_constants=extra_constants)
            if found is not None:
                nodes[definition.name] = dataclasses.replace(node, predicate=found)
    program = replace_definitions(program, nodes)
    predicates = {
        d.name: d.node.predicate for d in program.definitions if isinstance(d.node, ast.Select)
    }
    return program, predicates


def closed_form_maps(
    program: ast.Program, *, budget: Budget, extra_constants: Sequence
) -> ast.Program:
    """Every map and sequence_map with a table given the smallest agreeing lambda, if any."""
    nodes: dict[str, ast.Node] = {}
    for definition in program.definitions:
        node = definition.node
        if isinstance(node, (ast.Map, ast.SequenceMap)) and isinstance(node.fn, ast.Table):
            found = closed_form(
                node.fn,
                len(node.children),
                budget=budget,
                extra_constants=extra_constants,
            )
            if found is not None:
                nodes[definition.name] = dataclasses.replace(node, fn=found)
    return replace_definitions(program, nodes)


def is_identity(fn: ast.Function) -> bool:
    return isinstance(fn, ast.Lambda) and fn.arity == 1 and fn.body == ast.Var(fn.params[0])


def drop_identity_maps(program: ast.Program) -> tuple[ast.Program, list[str]]:
    """Refer past `map(lambda x: x, a)` to `a` (when the encoding stays the same)."""
    lookup = program.lookup()
    dropped: list[str] = []
    replacements: dict[str, ast.Node] = {}
    for definition in program.definitions:
        node = definition.node
        if not (isinstance(node, ast.Map) and is_identity(node.fn)):
            continue
        target = (
            replacements.get(node.arg.id, node.arg) if isinstance(node.arg, ast.Name) else node.arg
        )
        if encoding_of(target, lookup) is node.encoding:
            replacements[definition.name] = target
            dropped.append(definition.name)
    if not dropped:
        return program, []
    program = substitute_program(without(program, set(dropped)), replacements)
    return program, dropped
