"""A read-out that sorts by counting: position i holds the first label whose running total
of counts passes i.

A trained sort model counts each token (a head's counts) and reads, at each position, which
run of the sorted output the position falls in: "0" while i < n_0, then "1" while
i < n_0 + n_1, and so on. As a table over the position and the counts it grows with every
combination the inputs reach; as a closed form it holds for any. The order of the counts
and the label of each run are read off the entries (every entry checked), or, for an
approximation, off what most read-out positions say.
"""

from __future__ import annotations

import itertools

import numpy as np

from distill.trained.comparisons import literal

POSITION = "indices_"  # the search's name for the input positions
MOST_COUNTS = 6  # every order tried up to this many counts (6! = 720); past it, one greedy


def sorting_lines(target: str, names: list[str], table: dict) -> list[str] | None:
    """Definitions of `target` as the run of sorted counts the position falls in, when
    `table` ((values of names) -> label) is exactly that, else None."""
    found = _sorting(names, list(table), list(table.values()), None)
    if found is None:
        return None
    order, labels, _ = found
    return _definitions(target, [names[i] for i in order], labels)


def sorting_table(keys: list[tuple], outputs: list, weights, names: list[str]):
    """(table, disagreements) of the best sorting read-out over `names` for the distinct
    read-out rows (`keys` of values, their `outputs`, how many positions each stands
    for): the order and the run labels taken from what most positions say. None where
    `names` is not the position and counts."""
    found = _sorting(names, keys, outputs, np.asarray(weights, dtype=np.int64))
    if found is None:
        return None
    order, labels, disagreements = found
    counts = np.array([[key[i] for i in order] for key in keys], dtype=np.int64)
    position = np.array([key[names.index(POSITION)] for key in keys], dtype=np.int64)
    runs = _runs(position, counts)
    table = {tuple(key): labels[run] for key, run in zip(keys, runs)}
    return table, disagreements


def _sorting(names, keys, outputs, weights):
    """(order of the count variables in `names`, label per run (the last: past every
    count), disagreements) of the best order, or None. Without `weights` only an exact
    fit counts (every entry weighs 1 and none may disagree)."""
    if POSITION not in names or len(names) < 3 or not keys:
        return None
    if not all(type(v) is int for key in keys for v in key):
        return None
    at = names.index(POSITION)
    counted = [i for i in range(len(names)) if i != at]
    values = np.array(keys, dtype=np.int64)
    label_codes, labels = _codes(outputs)
    exact = weights is None
    weights = np.ones(len(keys), dtype=np.int64) if exact else weights
    best = None
    if len(counted) <= MOST_COUNTS:
        orders = itertools.permutations(counted)
    else:  # too many orders to try: the one built run by run
        orders = [_greedy_order(values, at, counted, label_codes, weights)]
    for order in orders:
        runs = _runs(values[:, at], values[:, list(order)])
        fit = _run_labels(runs, label_codes, weights, len(order) + 1, len(labels))
        if fit is None:
            continue
        run_codes, disagreements = fit
        if exact and disagreements:
            continue
        if best is None or disagreements < best[2]:
            best = (list(order), [labels[c] for c in run_codes], disagreements)
            if not disagreements:
                break
    return best


def _greedy_order(values, at: int, counted: list[int], label_codes, weights) -> list[int]:
    """An order of the counts built run by run: next, the count whose run (from the total
    so far) holds the most weight agreeing with its most common label less the weight
    that does not (an empty run scores nothing)."""
    position, total = values[:, at], np.zeros(len(values), dtype=np.int64)
    order, left = [], list(counted)
    width = int(label_codes.max()) + 1

    def score(i, total):
        inside = (position >= total) & (position < total + values[:, i])
        votes = np.bincount(label_codes[inside], weights[inside], minlength=width)
        return 2 * votes.max() - votes.sum()

    while left:
        chosen = max(left, key=lambda i: score(i, total))  # noqa: B023 (used at once)
        order.append(chosen)
        left.remove(chosen)
        total = total + values[:, chosen]
    return order


def _runs(position: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Per row, how many running totals of `counts` are at most the position: the run it
    falls in."""
    return (position[:, None] >= np.cumsum(counts, axis=1)).sum(1)


def _run_labels(runs, label_codes, weights, n_runs: int, n_labels: int):
    """(label code per run, disagreements): each run's most common label by weight; the
    run past every count, where no row falls, takes the last run's. None where a run
    before the last has no row (nothing says its label)."""
    votes = np.zeros((n_runs, n_labels), dtype=np.int64)
    np.add.at(votes, (runs, label_codes), weights)
    seen = votes.sum(1) > 0
    if not seen[:-1].all():
        return None
    codes = votes.argmax(1)
    if not seen[-1]:
        codes[-1] = codes[-2]
    return codes.tolist(), int(weights.sum() - votes.max(1).sum())


def _codes(outputs: list) -> tuple[np.ndarray, list]:
    """A code per output (1 and True apart), and the label each code stands for."""
    index: dict = {}
    codes = [index.setdefault((type(v), v), len(index)) for v in outputs]
    return np.array(codes, dtype=np.int64), [v for _, v in index]


def _definitions(target: str, counts: list[str], labels: list) -> list[str]:
    """position minus each running total, then from the last run back: the label of the
    first run whose remainder is negative. A last count whose run has the label of the
    one past it decides nothing (with every token counted, no position is past them all)."""
    while len(counts) > 1 and labels[len(counts) - 1] == labels[len(counts)]:
        counts, labels = counts[:-1], labels[:-1]
    lines = [f"{target}_left_1 = sequence_map(lambda i, n: i - n, {POSITION}, {counts[0]})"]
    for j, name in enumerate(counts[1:], start=2):
        lines.append(
            f"{target}_left_{j} = sequence_map(lambda r, n: r - n, {target}_left_{j - 1}, {name})"
        )
    k = len(counts)
    later = f"{target}_pick_{k}" if k > 1 else target
    lines.append(
        f"{later} = map(lambda r: {literal(labels[k - 1])} if r < 0 else "
        f"{literal(labels[k])}, {target}_left_{k})"
    )
    for j in range(k - 1, 0, -1):
        name = target if j == 1 else f"{target}_pick_{j}"
        lines.append(
            f"{name} = sequence_map(lambda r, p: {literal(labels[j - 1])} if r < 0 else p, "
            f"{target}_left_{j}, {later})"
        )
        later = name
    return lines
