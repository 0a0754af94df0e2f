"""From discovered variables to a program whose output table follows the model.

The read-out is a function of the variables at its position exactly when no two read-out
positions with the same variable values get different outputs from the model. Minimal
sets of variables that do so are found fewest first (`determining_sets`), and the output
becomes a map or a chain of sequence maps of one whose table holds what the model
answers (synthesis then finds a closed form where one fits).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import re
from collections import Counter
from dataclasses import dataclass

import numpy as np
import torch

import dsl
from distill.trained.candidates import Candidate, DefinitionValues
from distill.trained.comparisons import (
    argmax_lines,
    comparison_text,
    fallback_text,
    literal,
    residue_text,
)
from distill.trained.sorting import sorting_lines, sorting_table
from dsl import ast, limits
from dsl.interpreter import SOpArray


def label_of(output) -> object:
    """A read-out value as a program value: a multi-label set becomes its labels joined
    (`labels_in` reads them back)."""
    if isinstance(output, tuple):
        return "{" + ",".join(map(str, output)) + "}"
    return output


def labels_in(label: str, output_values) -> tuple:
    """The output values a multi-label program value switches on (label_of's inverse)."""
    names = _split_labels(label[1:-1], output_values)
    return tuple(v for v in output_values if str(v) in names)


def _split_labels(inside: str, output_values) -> set[str]:
    """The labels of a joined set; labels may hold commas, so match whole names greedily."""
    names = sorted((str(v) for v in output_values), key=len, reverse=True)
    found, rest = set(), inside
    while rest:
        name = next((n for n in names if rest.startswith(n)), None)
        if name is None:
            break
        found.add(name)
        rest = rest[len(name) :].removeprefix(",")
    return found


CHUNK = 4096  # inputs per forward pass
MAX_SUBSET = 4  # sets of variables tried for the read-out, up to this size...
MAX_SUBSETS_TRIED = 2_000  # ...while there are at most this many of a size (then greedy)


@dataclass
class Observations:
    """Per variable, its values at each position of the traced inputs, and the model's output.

    Values are kept as codes (`codes[name]`, an int array) with their tables (`values[name]`)
    so that groups of positions are found with numpy."""

    codes: dict[str, np.ndarray]
    values: dict[str, list]
    outputs: list  # per position
    output_codes: np.ndarray
    read: np.ndarray  # bool per position: a read-out position (else the model's plain argmax)

    @functools.cached_property
    def distinct_read(self) -> DistinctRows:
        """The distinct rows (codes of every variable, output code) among the read-out
        positions, with how many positions each stands for."""
        names = list(self.codes)
        columns = [self.codes[n][self.read] for n in names] + [self.output_codes[self.read]]
        widest = max(int(c.max(initial=0)) for c in columns)
        table = np.ascontiguousarray(np.stack(columns, 1).astype(np.min_scalar_type(widest)))
        as_bytes = table.view(np.dtype((np.void, table.dtype.itemsize * table.shape[1]))).ravel()
        _, first, weights = np.unique(as_bytes, return_index=True, return_counts=True)
        rows = table[first].astype(np.int64)
        codes = {n: rows[:, i] for i, n in enumerate(names)}
        return DistinctRows(codes, rows[:, -1], weights)


@dataclass
class DistinctRows:
    codes: dict[str, np.ndarray]
    outputs: np.ndarray
    weights: np.ndarray


def observe(
    model, task, inputs, definitions: list[Candidate], names: list[str], traced=None
) -> Observations:
    """The variables at every position of `inputs`, and the model's answer there: its
    read-out at read-out positions, its plain argmax elsewhere. `traced`: the Discovery
    made on these very inputs (its output and values are reused; else one forward pass
    and every definition evaluated)."""
    output = None if traced is None else traced.output
    outputs, read = [], []
    for start in range(0, len(inputs), CHUNK):
        chunk = inputs[start : start + CHUNK]
        if output is None:
            ids, mask = model.encode(chunk)
            with torch.no_grad():
                out = model(ids, mask)
        else:
            out = output[start : start + len(chunk)]
        answers = task.decode(model, out, chunk)
        plain = model.decode(out, [len(tokens) for tokens in chunk])
        for tokens, answer, argmax in zip(chunk, answers, plain):
            positions = {p - 1: i for i, p in enumerate(task.positions_of(tokens))}
            for j in range(len(tokens)):
                at = positions.get(j)
                outputs.append(label_of(argmax[j] if at is None else answer[at]))
                read.append(at is not None)
    values = DefinitionValues(inputs) if traced is None else traced.evaluated
    evaluated = values.evaluate(definitions, as_arrays=True)
    return observations_of(evaluated, inputs, names, outputs, np.array(read, dtype=bool))


def observations_of(evaluated: dict, inputs, names: list[str], outputs: list, read) -> Observations:
    """Observations of `outputs` (one per position of each input, in order) over the
    evaluated variables `names` (values [batch, pos], or the interpreter's SOpArrays)."""
    mask = np.arange(max(map(len, inputs)))[None, :] < np.array([len(x) for x in inputs])[:, None]
    codes, values = {}, {}
    for n in names:
        value = evaluated[n]
        if isinstance(value, SOpArray):
            codes[n], values[n] = _recode(value.codes[mask], value.table)
        else:
            codes[n], values[n] = _encode(value[mask].tolist())
    output_codes, _ = _encode(outputs)
    return Observations(codes, values, outputs, output_codes, read)


def labelled(obs: Observations, labels: list) -> Observations:
    """`obs` with `labels` (one per position, each a read-out) as the outputs to determine:
    one coding of the variables serves every search over them."""
    positions = np.ones(len(labels), dtype=bool)
    return dataclasses.replace(obs, outputs=labels, output_codes=_encode(labels)[0], read=positions)


def _recode(codes: np.ndarray, table: tuple) -> tuple[np.ndarray, list]:
    """`_encode`'s codes for values given as codes into a table of distinct values (as the
    interpreter keeps them): the values that occur, numbers in order when all are int."""
    used, dense = np.unique(codes, return_inverse=True)
    values = [table[c] for c in used.tolist()]
    if values and all(type(v) is int for v in values):
        order = np.argsort(values, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        return rank[dense.reshape(-1)], [values[i] for i in order]
    return dense.reshape(-1), values


def _encode(column: list) -> tuple[np.ndarray, list]:
    """Codes into the distinct values (1, 1.0 and True stay apart)."""
    if set(map(type, column)) == {int}:  # the common case, at numpy speed
        table, codes = np.unique(np.array(column, dtype=np.int64), return_inverse=True)
        return codes.reshape(-1), table.tolist()
    index: dict = {}
    codes = np.fromiter(
        (index.setdefault((type(v), v), len(index)) for v in column),
        dtype=np.int64,
        count=len(column),
    )
    return codes, [v for _, v in index]


def _groups(obs: Observations, names: list[str]) -> np.ndarray:
    """Group key per position: positions with the same values of `names` share one."""
    sizes = [len(obs.values[n]) for n in names]
    return _combined([obs.codes[n] for n in names], sizes, len(obs.outputs))


def _combined(columns: list[np.ndarray], sizes: list[int], length: int) -> np.ndarray:
    """One key per row of the code `columns` (a mixed radix over them): rows with the same
    codes share one. Keys are not consecutive; they are compacted only when the next digit
    could overflow."""
    combined = np.zeros(length, dtype=np.int64)
    span = 1  # keys are below this
    for column, size in zip(columns, sizes):
        size = max(size, 1)
        if span * size >= 2**62:
            combined = np.unique(combined, return_inverse=True)[1].reshape(-1)
            span = int(combined.max()) + 1
        combined = combined * size + column
        span *= size
    return combined


def group_ids(obs: Observations, names: list[str]) -> np.ndarray:
    """Group 0..G-1 per position: positions with the same values of `names` share one."""
    return np.unique(_groups(obs, names), return_inverse=True)[1].reshape(-1)


def conflicts(obs: Observations, names: list[str]) -> int:
    """Read-out positions whose output differs from the most common output among the
    read-out positions with the same values of `names`.

    Counted over the distinct read-out rows (every variable and the output) with their
    multiplicities: the searches call this thousands of times, and positions repeat."""
    rows = obs.distinct_read
    if not len(rows.weights):
        return 0
    sizes = [len(obs.values[n]) for n in names]
    keys = _combined([rows.codes[n] for n in names], sizes, len(rows.weights))
    group = np.unique(keys, return_inverse=True)[1].reshape(-1)
    width = int(rows.outputs.max()) + 1
    counts = np.bincount(
        group * width + rows.outputs, weights=rows.weights, minlength=(group.max() + 1) * width
    )
    return int(rows.weights.sum() - counts.reshape(-1, width).max(axis=1).sum())


def determining_sets(
    obs: Observations,
    names: list[str],
    preferred: list[str],
    allowed: int = 0,
    greedy: bool = True,
):
    """Sets of variables that determine the read-out, each minimal, fewest first.

    Among sets of one size, those with more of `preferred` (what the heads wrote) and
    fewer values in all come first: a program over counts reads better than one over
    positions. Past MAX_SUBSETS_TRIED sets of a size, one greedy set ends the search
    (where `greedy`). `allowed`: positions that may differ from their group's most
    common output."""
    if conflicts(obs, names) > allowed:
        return
    sizes = {n: len(obs.values[n]) for n in names}
    found: list[set] = []
    for size in range(1, min(len(names), MAX_SUBSET) + 1):
        if math.comb(len(names), size) > MAX_SUBSETS_TRIED:
            break
        subsets = sorted(
            itertools.combinations(names, size),
            key=lambda s: (-sum(n in preferred for n in s), math.prod(sizes[n] for n in s)),
        )
        for subset in subsets:
            if any(f <= set(subset) for f in found):
                continue
            if conflicts(obs, list(subset)) <= allowed:
                found.append(set(subset))
                yield list(subset)
    if greedy:
        last = _greedy(obs, names, sizes, allowed)
        if not any(f <= set(last) for f in found):
            yield last


def fewest_for(obs: Observations, names: list[str]) -> list[str]:
    """At most MAX_SUBSET variables, added greedily, each leaving the fewest read-out
    positions that disagree with their group's most common answer (an approximation: a
    table over many more would follow the traced inputs only by memorising them)."""
    return _forward(obs, names, conflicts(obs, names), most=MAX_SUBSET) or names[:1]


def _forward(obs: Observations, names: list[str], allowed: int, most: int | None = None):
    """Variables added one by one, each the one leaving the fewest conflicts (of equals, the
    one with the fewest values: a yes or no reads better than the count it is read off),
    until at most `allowed` are left (or `most` are kept)."""
    kept: list[str] = []
    while conflicts(obs, kept) > allowed and len(kept) < (most or len(names)):
        kept.append(
            min(
                (n for n in names if n not in kept),
                key=lambda n: (conflicts(obs, [*kept, n]), len(obs.values[n])),
            )
        )
    return kept


def _greedy(obs: Observations, names: list[str], sizes: dict, allowed: int = 0) -> list[str]:
    """Forward (`_forward`), then backward: drop each variable the rest do not need, most
    values first."""
    kept = _forward(obs, names, allowed)
    for name in sorted(kept, key=lambda n: -sizes[n]):
        trial = [n for n in kept if n != name]
        if trial and conflicts(obs, trial) <= allowed:
            kept = trial
    return kept


def output_tables(obs: Observations, names: list[str]) -> dict[tuple, object]:
    """Variable values -> output: the read-out's majority (ties go to the lowest output
    code); keys in the order they first occur.

    A key seen only at positions the task does not read is free: it gets what keeps the
    read keys' rule simplest, the key's own value where every read key gives its own
    (a copy's table stays the identity) or the one output every read key gives, and else
    the model's plain argmax there (its majority)."""
    group = group_ids(obs, names)
    firsts = np.unique(group, return_index=True)[1]  # per group, its first position
    output_of = _output_values(obs)
    best = np.full(len(firsts), -1)
    for positions in (~obs.read, obs.read):  # the read-out's majority wins where it has one
        best = _majority(group[positions], obs.output_codes[positions], best)
    read = np.zeros(len(firsts), dtype=bool)
    read[group[obs.read]] = True
    table, free = {}, []
    for g in sorted(range(len(firsts)), key=lambda g: firsts[g]):
        key = tuple(obs.values[n][obs.codes[n][firsts[g]]] for n in names)
        table[key] = output_of[best[g]]
        if not read[g]:
            free.append(key)
    if free and len(free) < len(table):
        ruled = [(k, v) for k, v in table.items() if k not in free]
        if len(names) == 1 and all(_same(label_of(k[0]), v) for (k,), v in ruled):
            table.update((k, label_of(k[0])) for k in free)
        elif len({repr(v) for _, v in ruled}) == 1:  # repr: 1, 1.0 and True differ
            table.update((k, ruled[0][1]) for k in free)
    return table


def _same(a, b) -> bool:
    return type(a) is type(b) and a == b


def _output_values(obs: Observations) -> list:
    """The output each output code stands for."""
    return [obs.outputs[i] for i in np.unique(obs.output_codes, return_index=True)[1]]


def _majority(group: np.ndarray, outputs: np.ndarray, best: np.ndarray) -> np.ndarray:
    """`best` with each group present replaced by its most common output code (ties: the
    lowest code)."""
    if not len(group):
        return best
    width = int(outputs.max()) + 1
    pairs, counts = np.unique(group * width + outputs, return_counts=True)
    owners = pairs // width
    order = np.lexsort((pairs % width, -counts, owners))  # per owner, most common first
    winners = order[np.r_[True, owners[order][1:] != owners[order][:-1]]]
    best = best.copy()
    best[owners[winners]] = pairs[winners] % width
    return best


def argmax_table(obs: Observations, names: list[str]) -> tuple[dict, int] | None:
    """(table, disagreements): the read-out as the label of the largest of `names`, each
    variable's label and the tie order taken from what most read-out positions say, as a
    table over the values seen (build writes it as the largest of them); disagreements:
    the read-out positions whose output it does not give. None where some variable is
    never alone the largest, or two stand for one label."""
    rows = obs.distinct_read
    output_of = _output_values(obs)
    keys = np.stack(_distinct_columns(obs, names), 1)
    if not len(keys) or not all(type(v) is int for v in keys.reshape(-1).tolist()):
        return None
    keys = keys.astype(np.int64)
    top = keys.max(1, keepdims=True)
    alone = (keys == top).sum(1) == 1
    votes: dict[int, Counter] = {i: Counter() for i in range(len(names))}
    for i, out, weight in zip(keys[alone].argmax(1), rows.outputs[alone], rows.weights[alone]):
        votes[int(i)][int(out)] += int(weight)
    if any(not v for v in votes.values()):
        return None
    label_code = [votes[i].most_common(1)[0][0] for i in range(len(names))]
    if len(set(label_code)) != len(names):
        return None
    variable_of = {code: i for i, code in enumerate(label_code)}
    wins = np.zeros(len(names))  # ties won minus lost, over the positions that show them
    for key, out, weight in zip(keys[~alone], rows.outputs[~alone], rows.weights[~alone]):
        winner = variable_of.get(int(out))
        tied = np.flatnonzero(key == key.max())
        if winner in tied:
            wins[winner] += weight * (len(tied) - 1)
            wins[tied[tied != winner]] -= weight
    rank = np.argsort(np.argsort(wins, kind="stable"), kind="stable")  # most wins: highest
    predicted = (keys * len(names) + rank).argmax(1)
    disagreements = int(rows.weights[np.array(label_code)[predicted] != rows.outputs].sum())
    table = {tuple(key.tolist()): output_of[label_code[p]] for key, p in zip(keys, predicted)}
    return table, disagreements


def sorting_approximation(obs: Observations, names: list[str]) -> tuple[dict, int] | None:
    """(table, disagreements): the read-out as sorting by counts (`sorting`), the order
    and each run's label taken from what most read-out positions say; None where `names`
    is not the position and two or more counts."""
    rows = obs.distinct_read
    columns = [column.tolist() for column in _distinct_columns(obs, names)]
    found = sorting_table(list(zip(*columns)), rows.outputs.tolist(), rows.weights, names)
    if found is None:
        return None
    output_of = _output_values(obs)
    table, disagreements = found
    return {key: output_of[code] for key, code in table.items()}, disagreements


def _distinct_columns(obs: Observations, names: list[str]) -> list[np.ndarray]:
    """Per variable, its value (object array) in each distinct read-out row."""
    rows = obs.distinct_read
    return [np.array(obs.values[n], dtype=object)[rows.codes[n]] for n in names]


def closed_form_lines(target: str, names: list[str], table: dict) -> list[str] | None:
    """Definitions of `target` in a form found without a search, where `table` is exactly
    that form: the largest of three or more (argmax_lines) or sorting by counts
    (sorting_lines); else None."""
    return argmax_lines(target, names, table) or sorting_lines(target, names, table)


def named_form(names: list[str], table: dict) -> bool:
    """Whether the read-out `table` over `names` has a form found without a search (a
    comparison of two variables or a fallback between them, or a closed form)."""
    if len(names) == 2:
        entries = list(table.items())
        return any(
            form(entries) is not None for form in (comparison_text, fallback_text, residue_text)
        )
    return closed_form_lines("output", names, table) is not None


def build(definitions: list[Candidate], names: list[str], table: dict) -> ast.Program | None:
    """The program: the definitions `names` need, then the output over them: a closed form where the
    table is exactly one (closed_form_lines), else the table (table_lines). None where the
    table is past what a program may hold (dsl.limits.MAX_SOURCE_BYTES)."""
    needed = needed_by({c.name: c.source for c in definitions}, names)
    lines = [f"{c.name} = {c.source}" for c in definitions if c.name in needed]
    closed = closed_form_lines("output", names, table)
    written = closed or table_lines("output", names, table)
    if len("\n".join([*lines, *written, "return output", ""])) > limits.MAX_SOURCE_BYTES:
        return None
    # The read-out's tables go into the parsed program as they are: parsing thousands of
    # entries as text costs more than everything else a candidate read-out needs.
    tables: dict[str, dict] = {}
    lines += closed or table_lines("output", names, table, tables)
    program = dsl.parse("\n".join([*lines, "return output", ""]), filename="<trained>")
    definitions = tuple(
        dataclasses.replace(d, node=dataclasses.replace(d.node, fn=_table_node(tables[d.name])))
        if d.name in tables
        else d
        for d in program.definitions
    )
    return dataclasses.replace(program, definitions=definitions)


def needed_by(sources: dict[str, str], names: list[str]) -> set[str]:
    """The definitions `names` need (themselves included), read off their sources."""
    needed, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name not in needed:
            needed.add(name)
            todo += [w for w in re.findall(r"[A-Za-z_]\w*", sources[name]) if w in sources]
    return needed


def _table_node(entries: dict) -> ast.Table:
    """The table the parser makes of `_table(entries)`'s text."""
    return ast.Table(tuple((_parsed_key(k), _parsed_value(v)) for k, v in entries.items()))


def _parsed_key(key):
    return tuple(map(_parsed_value, key)) if isinstance(key, tuple) else _parsed_value(key)


def _parsed_value(value):
    """`value` as the parser reads `literal(value)` back."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return str(value)


def table_lines(
    target: str, names: list[str], table: dict, tables: dict | None = None
) -> list[str]:
    """Definitions of `target` = table[values of names]: a map (one variable) or a chain of
    sequence maps, each pairing the values so far (as codes) with one more variable;
    intermediate definitions are named `{target}_both_{i}`. `tables`: each table is
    written as a one-entry stand-in, its entries put here under its definition's name."""

    def written(name: str, entries: dict) -> str:
        if tables is None:
            return _table(entries)
        tables[name] = entries
        return "{(0, 0): 0}" if isinstance(next(iter(entries), 0), tuple) else "{0: 0}"

    if len(names) == 1:
        entries = {k[0]: v for k, v in table.items()}
        return [f"{target} = map({written(target, entries)}, {names[0]})"]
    lines = []
    code = {(k[0],): k[0] for k in table}  # a prefix of the key -> its value so far
    left = names[0]
    for i, right in enumerate(names[1:-1], start=1):
        step: dict = {}
        made = 0  # codes given to prefixes of this length so far
        for key in table:
            if key[: i + 1] not in code:
                code[key[: i + 1]], made = made, made + 1
            step[(code[key[:i]], key[i])] = code[key[: i + 1]]
        both = f"{target}_both_{i}"
        lines.append(f"{both} = sequence_map({written(both, step)}, {left}, {right})")
        left = both
    last = len(names) - 1
    entries = {(code[k[:last]], k[last]): v for k, v in table.items()}
    lines.append(f"{target} = sequence_map({written(target, entries)}, {left}, {names[-1]})")
    return lines


def _table(entries: dict) -> str:
    body = ", ".join(f"{_key(k)}: {literal(v)}" for k, v in entries.items())
    return "{" + body + "}"


def _key(key) -> str:
    if isinstance(key, tuple):
        return "(" + ", ".join(literal(k) for k in key) + ")"
    return literal(key)
