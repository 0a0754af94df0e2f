"""Scoring a synthesized program against a known source: size and named comparisons."""

from __future__ import annotations

from dataclasses import dataclass

from dsl import ast
from synth.comparisons import SWAPPED

OPERATIONS = (ast.Map, ast.SequenceMap, ast.Aggregate, ast.SelectorWidth, ast.Select)


def operation_count(program: ast.Program) -> int:
    """The number of map, sequence_map, aggregate, selector_width and select nodes."""

    def count(node: ast.Node) -> int:
        return isinstance(node, OPERATIONS) + sum(count(child) for child in node.children)

    return sum(count(d.node) for d in program.definitions) + count(program.output)


@dataclass(frozen=True)
class NamedSelectorScore:
    """A select the source names a comparison for, and what the result has there."""

    name: str
    source: ast.Select
    result: ast.Select | None
    """The result's select of the same name; None when it is gone."""

    @property
    def same_comparison(self) -> bool:
        """The same comparison, up to swapped arguments (`select(a, b, <)` ~ `select(b, a, >)`)."""
        if self.result is None or not isinstance(self.result.predicate, ast.Comparison):
            return False
        op, wanted = self.result.predicate.op, self.source.predicate.op
        swapped = (
            self.result.keys == self.source.queries and self.result.queries == self.source.keys
        )
        return op == wanted or (swapped and op == SWAPPED[wanted])

    @property
    def is_table(self) -> bool:
        return self.result is not None and isinstance(self.result.predicate, ast.Table)


def named_selector_scores(source: ast.Program, result: ast.Program) -> list[NamedSelectorScore]:
    """For each select definition of `source` with a named comparison, the result's select."""
    selects = {d.name: d.node for d in result.definitions if isinstance(d.node, ast.Select)}
    return [
        NamedSelectorScore(d.name, d.node, selects.get(d.name))
        for d in source.definitions
        if isinstance(d.node, ast.Select) and isinstance(d.node.predicate, ast.Comparison)
    ]
