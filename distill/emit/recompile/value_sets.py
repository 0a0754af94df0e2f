"""Every value each definition of a program can take on a domain (a superset)."""

from __future__ import annotations

import dataclasses
import itertools

from dsl import ast
from dsl.functions import make_callable


def value_sets(program: ast.Program, vocab, max_seq_len: int) -> dict[str, frozenset]:
    """Every value each SOp definition can take on the domain (a superset), by name.

    tracr's rules (see `dsl.types`), except that a numerical aggregate takes
    every mean of the values it aggregates, and a function's inputs where it
    fails (a table without the entry) give nothing, as if they never occur.
    """
    inference = ValueSets(frozenset(vocab), max_seq_len)
    for definition in program.definitions:
        node = definition.node
        if isinstance(node, ast.SOp) or (isinstance(node, ast.Name) and node.id in inference.sets):
            inference.sets[definition.name] = inference.of(node)
    return inference.sets


@dataclasses.dataclass
class ValueSets:
    vocab: frozenset
    max_seq_len: int
    sets: dict[str, frozenset] = dataclasses.field(default_factory=dict)

    def of(self, node: ast.Node) -> frozenset:
        if isinstance(node, ast.Name):
            return self.sets[node.id]
        if isinstance(node, ast.Tokens):
            return self.vocab
        if isinstance(node, ast.Indices):
            return frozenset(range(self.max_seq_len))
        if isinstance(node, ast.SelectorWidth):
            return frozenset(range(self.max_seq_len + 1))
        if isinstance(node, ast.Full):
            return frozenset({node.value})
        if isinstance(node, ast.Map):
            return _applied(node.fn, [(x,) for x in self.of(node.arg)])
        if isinstance(node, ast.SequenceMap):
            return _applied(node.fn, itertools.product(self.of(node.left), self.of(node.right)))
        if isinstance(node, ast.Aggregate):
            from dsl.means import aggregate_means

            source = self.of(node.sop)
            if node.encoding == ast.CATEGORICAL:
                return source
            return source | {node.default} | aggregate_means(source, self.max_seq_len)
        raise TypeError(f"no value set for {type(node).__name__}")


def _applied(fn: ast.Function, arguments) -> frozenset:
    return frozenset(tabulated(fn, arguments).values()) - {None}


def tabulated(fn: ast.Function, arguments) -> dict:
    """fn's result per argument tuple, leaving out those with a None or where fn fails."""
    call = make_callable(fn)
    results = {}
    for args in arguments:
        if any(a is None for a in args):
            continue
        try:
            results[args] = call(*args)
        except Exception:  # noqa: BLE001, S112 - undefined there: that input never occurs
            continue
    return results
