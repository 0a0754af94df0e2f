"""Naming a selector: which comparison (or short predicate) a (key, query) table is.

Tables follow tracr's convention: an entry `((key, query), selected)`, and a
named comparison reads `key OP query` (`<` selects the keys smaller than the
query). When one side's values are free labels, `forced_labels` finds the
values that make the table a named comparison against the other side.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import networkx

from dsl import ast
from dsl.functions import make_callable
from synth.budget import DEFAULT_BUDGET, Budget
from synth.closed_forms import closed_form

# The order in which names are tried: the first that fits is the one printed.
NAMING_ORDER = ("true", "false", "==", "!=", "<", "<=", ">", ">=")
# With free labels the direction of an order is a choice; these read naturally.
ASCENDING = frozenset({"==", "!=", "<", "<=", "true", "false"})
SWAPPED = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<=", "true": "true", "false": "false"}  # fmt: skip
PREDICATE_PARAMS = ("k", "q")


def comparison_of(entries: Sequence[tuple[tuple, bool]]) -> ast.Comparison | None:
    """The first named comparison equal to `entries` ((key, query) -> bool) on every pair."""
    for op in NAMING_ORDER:
        comparison = ast.Comparison(op)
        compare = make_callable(comparison)
        try:
            if all(bool(compare(k, q)) == bool(selected) for (k, q), selected in entries):
                return comparison
        except (TypeError, ValueError):  # `<` between a string and a number, None: not this one
            continue
    return None


def name_predicate(
    table: ast.Table, *, budget: Budget = DEFAULT_BUDGET, extra_constants: Sequence = ()
) -> ast.Function | None:
    """A named comparison, else the smallest lambda `(k, q) -> bool`, else None."""
    entries = [(key, bool(value)) for key, value in table.entries]
    found = comparison_of(entries)
    if found is not None:
        return found
    boolean = ast.Table(tuple(entries))
    return closed_form(
        boolean, 2, budget=budget, extra_constants=extra_constants, params=PREDICATE_PARAMS
    )


def relabeled_entries(
    table: ast.Table, key_labels: Mapping | None, query_labels: Mapping | None
) -> list[tuple[tuple, bool]]:
    """The table with its keys and/or queries renamed.

    Entries of a label with no new value are left out: such a label never occurs
    (a merge removed the combinations producing it), as `relabel` drops them too.
    """
    entries = []
    for (key, query), selected in table.entries:
        try:
            new_key = key if key_labels is None else key_labels[key]
            new_query = query if query_labels is None else query_labels[query]
        except KeyError:
            continue
        entries.append(((new_key, new_query), bool(selected)))
    return entries


# --------------------------------------------------------------------------
# Labels forced by a select: the free side takes values of the other side.
# --------------------------------------------------------------------------


def forced_labels(table: ast.Table, free_side: str) -> dict | None:
    """New values for the free side ("keys" or "queries") making the table a named comparison.

    The other side has real values. Each free label's row (the other-side values it
    selects) must be what `==` or an order against one value selects; labels that
    select nothing under `==` get fresh numbers. Injective, or None when no name fits.
    """
    rows = _rows(table, free_side)
    others = sorted({other for row in rows.values() for other in row[0] | row[1]}, key=_order_key)
    for op in ("==", "<", "<=", ">", ">="):
        labels = _labels_for(op, rows, others, free_side)
        if labels is not None and len(set(map(_identity, labels.values()))) == len(labels):
            return labels
    return None


def ranked_labels(table: ast.Table) -> dict | None:
    """Values for labels compared with themselves (`select(x, x, T)`) making T `<` or `<=`.

    Each selected pair (k, q) of distinct labels says k comes before q, each
    unselected one says q comes before k; a topological order of those
    constraints ranks the labels. Works on a partial table (unseen pairs are
    free); None when the constraints have a cycle or the ranks do not fit.
    """
    order = networkx.DiGraph()
    for (key, query), selected in table.entries:
        order.add_nodes_from((key, query))
        if key != query:
            order.add_edge(*((key, query) if selected else (query, key)))
    try:
        ranked = list(networkx.lexicographical_topological_sort(order, key=repr))
    except (networkx.NetworkXUnfeasible, TypeError):
        return None
    ranks = {label: rank for rank, label in enumerate(ranked)}
    found = comparison_of(relabeled_entries(table, ranks, ranks))
    return ranks if found is not None and found.op in ("<", "<=") else None


def _rows(table: ast.Table, free_side: str) -> dict:
    """free label -> (other-side values selected, other-side values not selected)."""
    rows: dict = {}
    for (key, query), is_selected in table.entries:
        label, other = (key, query) if free_side == "keys" else (query, key)
        chosen, rejected = rows.setdefault(label, (set(), set()))
        (chosen if is_selected else rejected).add(other)
    return {label: (frozenset(c), frozenset(r)) for label, (c, r) in rows.items()}


def _labels_for(op: str, rows: dict, others: list, free_side: str) -> dict | None:
    compare = make_callable(ast.Comparison(op))
    thresholds = _thresholds(others) if op != "==" else others
    labels: dict = {}
    fresh = _fresh_numbers(others)
    for label, (chosen, rejected) in rows.items():
        if op == "==" and not chosen:
            value = next(fresh, None)
        else:
            value = next(
                (t for t in thresholds if _fits(compare, t, chosen, rejected, free_side)), None
            )
        if value is None:
            return None
        labels[label] = value
    return labels


def _fits(compare, value, chosen, rejected, free_side) -> bool:
    def selects(other):
        return compare(value, other) if free_side == "keys" else compare(other, value)

    try:
        return all(selects(o) for o in chosen) and not any(selects(o) for o in rejected)
    except (TypeError, ValueError):
        return False


def _thresholds(others: list) -> list:
    """The other side's values, and one beyond each end when they are numbers."""
    if others and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in others):
        return [min(others) - 1, *others, max(others) + 1]
    return list(others)


def _fresh_numbers(others: list):
    """Numbers no other-side value equals (labels that select nothing under `==`)."""
    numbers = [v for v in others if isinstance(v, (int, float)) and not isinstance(v, bool)]
    start = int(max(numbers)) + 1 if numbers else 0
    return iter(range(start, start + 10_000))


def _order_key(value):
    return (type(value).__name__, value if isinstance(value, (int, float, str)) else repr(value))


def _identity(value) -> tuple:
    return (type(value), value)
