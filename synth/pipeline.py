"""From a table program to the simplest readable program computing the same function.

One function of named stages: flatten, merge map chains, choose the meaning
of free labels, name selectors, find closed forms, drop identity maps, tidy.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from dsl import ast
from synth.budget import DEFAULT_BUDGET, Budget
from synth.graph import flatten, inline_single_uses, remove_dead
from synth.merge import merge_map_chains
from synth.relabel import choose_labels
from synth.simplify import closed_form_maps, drop_identity_maps, name_selectors


@dataclass(frozen=True)
class SynthResult:
    """A readable program, how its free labels were given meaning, and what was found."""

    program: ast.Program
    """The readable program: equal to the table program wherever that is defined."""
    relabelings: dict[str, dict]
    """Per free definition that was not merged away: old label -> its value in `program`."""
    selector_predicates: dict[str, ast.Function]
    """Per select definition (selects written inline are not listed): its predicate,
    a Comparison when one was named, a Lambda for a short predicate, else a Table."""
    removed: tuple[str, ...]
    """Definitions merged into others, dropped as identities, or unused."""

    @property
    def named_selectors(self) -> dict[str, str]:
        """Select definitions whose predicate is a named comparison: name -> operator."""
        return {
            name: fn.op
            for name, fn in self.selector_predicates.items()
            if isinstance(fn, ast.Comparison)
        }


def readable(
    program: ast.Program,
    *,
    vocab: Iterable,
    max_seq_len: int,
    free: frozenset[str] = frozenset(),
    budget: Budget = DEFAULT_BUDGET,
) -> SynthResult:
    """The simplest readable program equal to `program` wherever `program` is defined.

    `free` names the categorical definitions whose values are opaque labels;
    their values are chosen here. Tables reading free labels are rewritten to match.
    """
    constants = (max_seq_len, *sorted((v for v in vocab if type(v) is int), key=abs))
    flat = flatten(program)
    merged = merge_map_chains(flat)
    labeled, relabelings = choose_labels(
        merged, frozenset(free), budget=budget, extra_constants=constants
    )
    named, predicates = name_selectors(labeled, budget=budget, extra_constants=constants)
    formed = closed_form_maps(named, budget=budget, extra_constants=constants)
    simple, _ = drop_identity_maps(formed)
    final = inline_single_uses(remove_dead(simple))
    kept = {d.name for d in final.definitions}
    removed = tuple(d.name for d in program.definitions if d.name not in kept)
    return SynthResult(
        program=final,
        relabelings={name: labels for name, labels in relabelings.items() if name in free},
        selector_predicates={n: p for n, p in predicates.items() if n in kept},
        removed=removed,
    )
