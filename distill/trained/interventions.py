"""Causal evidence per component: interchange interventions (as in InterpBench's IIA).

For a program variable credited to a head (or MLP), pairs of inputs of one length:

- same: at a position where both hold the same token, the program gives the variable the
  same value on both; the component's output there on the second replaces its output on
  the first, and the model's read-out should not change (a head's output depends on its
  query, which is the position's own token: pairs keep it, so that what is swapped is
  what the head gathered from the other positions);
- different: the variable's values differ; after the same patch the model's read-out
  should be what the program computes on the first input with the variable holding the
  second input's values (the program under the same intervention).

A head's output is patched at its `hook_z` (its mix of values, before W_O), an MLP's at
`hook_mlp_out`. Figures below FLAG_BELOW are flagged in the report.

A variable is a whole sequence (an s-op), aligned with its components' outputs at every
position. The intervention gives it the base's values with the donor's at one position, so
its components are set at every position: the donor's output at that position, and the
base's own output wherever the intervened program leaves every variable credited to the
component at the base's value (two heads computing one count: the later one's count
elsewhere is the base's, as the program says, even though that head reads the patched
position). Where the program says a variable changes elsewhere (it follows the patched
one), its components there are left to the model.

A group over several layers is measured again with the same pairs patched alone: only the
patched position is set, and the model computes every other. A later component that reads
the patched one at other positions (a route of two hops the program does not write) then
changes the read-out there. Those figures are reported beside the first, not flagged: the
program says what the components carry, not how they pass it among themselves.
"""

from __future__ import annotations

import dataclasses
import random
from collections import defaultdict
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from distill.trained.candidates import DEFINITIONS_ONLY
from distill.trained.program import label_of
from dsl import ast
from dsl.interpreter import SOpArray, evaluate_arrays
from synth.graph import reachable, reachable_from

PAIRS = 400  # of each kind, per variable
SCREENING_CHUNK = 100  # pairs per step while screening
FLAG_BELOW = 0.99


@dataclass(frozen=True)
class Intervention:
    component: str
    variables: tuple[str, ...]  # the program's variables credited to it, patched together
    same_pairs: int
    unchanged: float | None  # share of same pairs whose read-out did not change
    different_pairs: int
    follows: float | None  # share of different pairs whose read-out is the program's
    undefined: int  # different pairs on which the intervened program is undefined
    # Different pairs that fail only at read-out positions other than the patched one: where
    # the program equals the model, a later head there reads the patched position in a way
    # the program does not model (an approximate program also fails where it differs anyway).
    failed_elsewhere: int = 0
    # The same pairs with only the patched position set, every other position the model's
    # own (the rest computed): where these fall short, a later component reads this one at
    # other positions in a way the program does not model. The figures above where the
    # group lies in one layer (nothing there reads another position's output).
    alone_unchanged: float | None = None
    alone_follows: float | None = None
    alone_failed_elsewhere: int = 0

    @property
    def flagged(self) -> bool:
        return _below(self.unchanged, self.follows)

    @property
    def read_elsewhere(self) -> bool:
        """Patched alone, the read-out falls short: later components read this group's
        output at other positions, which the program does not model."""
        return _below(self.alone_unchanged, self.alone_follows)


def _below(*figures: float | None) -> bool:
    return any(f is not None and f < FLAG_BELOW for f in figures)


def interventions(
    program: ast.Program,
    components: dict[str, str],
    model,
    task,
    inputs: list[list],
    seed: int = 0,
    screening: bool = False,
    cache: dict | None = None,
) -> list[Intervention]:
    """One Intervention per group of components credited with variables of `program` (the
    variables its output needs). Components that share a variable (two heads computing
    one count) form one group with every variable credited to any of them: patching a
    head swaps all it carries, so the program's side overrides all of it too.

    `screening`: stop at the first group whose figures are sure to be flagged (its pairs
    measured in chunks); the figures are then partial, good only for ruling it out.
    `cache`: definitions already evaluated on these `inputs` (see `_credited_values`),
    kept across calls for the alternatives of one read-out, which share most of them."""
    named = [name for name in needed_definitions(program) if components.get(name)]
    evaluated = _credited_values(program, named, inputs, {} if cache is None else cache)
    credited = [
        (name, credited_components(components[name]))
        for name in named
        if hasattr(evaluated[name], "codes")
    ]  # SOps: a selector is credited through the widths and aggregates that read it
    found = []
    for group in _groups(credited):
        names = [name for name, parts in credited if parts & group]
        values = np.stack([evaluated[n].values() for n in names], axis=-1)
        same, different = _pairs(values, inputs, seed)
        parts = {name: parts for name, parts in credited if name in names}
        measured = _measure(program, parts, model, task, inputs, same, different, screening)
        found.append(measured)
        if screening and measured.flagged:
            break
    return found


def _credited_values(program: ast.Program, names: list[str], inputs, cache: dict) -> dict:
    """name -> its value on `inputs` (the interpreter's arrays), for `names` and what they
    read, not the read-out's tables; `cache` {(name, definition): value} holds those
    evaluated before and takes these."""
    definitions = _reading(program, names)
    known = {d.name: cache[d.name, d.node] for d in definitions if (d.name, d.node) in cache}
    if len(known) < len(definitions):
        known = _values(definitions, inputs, known)
        for d in definitions:
            cache[d.name, d.node] = known[d.name]
    return known


def _reading(program: ast.Program, names) -> tuple[ast.Definition, ...]:
    """The definitions of `names` and of all they read, in program order."""
    closure = reachable_from(program, names)
    return tuple(d for d in program.definitions if d.name in closure)


def _values(definitions: tuple, inputs, overrides: dict | None = None) -> dict:
    """name -> value on `inputs` of each of `definitions` (the program's read-out aside)."""
    evaluated = evaluate_arrays(
        ast.Program(definitions, DEFINITIONS_ONLY), inputs, overrides=overrides
    )
    return evaluated.definitions


def credited_components(credit: str | None) -> frozenset[str]:
    """The components named in a credit ("L0.H0, L1.H0")."""
    return frozenset(c for c in (credit or "").split(", ") if c)


def component_order(component: str) -> tuple:
    layer, part = component.split(".")
    return (int(layer[1:]), part)


def _groups(credited: list[tuple[str, frozenset]]) -> list[frozenset]:
    """Components joined whenever one variable is credited to several (connected sets)."""
    groups: list[set] = []
    for _, parts in credited:
        touching = [g for g in groups if g & parts]
        merged = set(parts).union(*touching)
        groups = [g for g in groups if not g & parts] + [merged]
    return sorted((frozenset(g) for g in groups), key=lambda g: min(map(component_order, g)))


def needed_definitions(program: ast.Program) -> list[str]:
    """Definitions the output depends on, in program order."""
    needed = reachable(program)
    return [d.name for d in program.definitions if d.name in needed]


def _pairs(values: np.ndarray, inputs, seed):
    """(same, different): (first, second, position) triples, at most PAIRS each; values
    [input, position, variable] are equal at the position or not. The two inputs have one
    length; where no such pair differs (a variable that changes only with the length, as
    the length itself does), different pairs are drawn across lengths, from a shorter
    donor at a position both have (the length of a longer one would have the program and
    the model read positions past the base's end, where neither says anything)."""
    rng = random.Random(seed)
    by_length: dict[int, list[int]] = defaultdict(list)
    for i, tokens in enumerate(inputs):
        by_length[len(tokens)].append(i)
    lengths = [n for n, rows in by_length.items() if len(rows) > 1]
    same: list = []
    different: list = []

    def draw(a, b):
        q = rng.randrange(min(len(inputs[a]), len(inputs[b])))
        if inputs[a][q] != inputs[b][q]:
            return  # the query's own token is the head's query, not the variable
        equal = list(values[a, q]) == list(values[b, q])
        if equal and len(same) < PAIRS:
            same.append((a, b, q))
        elif not equal and len(different) < PAIRS:
            different.append((a, b, q))

    for _ in range(200 * PAIRS):
        if not lengths or (len(same) >= PAIRS and len(different) >= PAIRS):
            break
        draw(*rng.sample(by_length[rng.choice(lengths)], 2))
    if not different and len(by_length) > 1:
        for _ in range(200 * PAIRS):
            if len(different) >= PAIRS:
                break
            a, b = rng.sample(range(len(inputs)), 2)
            if len(inputs[b]) < len(inputs[a]):  # a longer donor's length points past the end
                draw(a, b)
    return same, different


def _measure(program, parts, model, task, inputs, same, different, screening=False):
    """The group's Intervention (`parts`: its variables, in program order, and the
    components credited with each); `screening`: pairs in chunks, stopping once a figure
    must fall below FLAG_BELOW whatever the rest give (the figures patched alone are then
    measured only for a group that passes)."""
    names = tuple(parts)
    components = sorted(frozenset().union(*parts.values()), key=component_order)
    held = _figures(program, parts, model, task, inputs, same, different, True, screening)
    measured = Intervention(", ".join(components), names, *held)
    if screening and measured.flagged:
        return measured
    if len({component_order(c)[0] for c in components}) > 1:
        alone = _figures(program, parts, model, task, inputs, same, different, False)
    else:  # one layer: no component reads another at other positions, so nothing is held
        alone = held
    return dataclasses.replace(
        measured,
        alone_unchanged=alone.unchanged,
        alone_follows=alone.follows,
        alone_failed_elsewhere=alone.failed_elsewhere,
    )


class _Figures(NamedTuple):
    """An Intervention's figures under one protocol, in its fields' order."""

    same_pairs: int
    unchanged: float | None
    different_pairs: int
    follows: float | None
    undefined: int
    failed_elsewhere: int


def _figures(program, parts, model, task, inputs, same, different, hold, screening=False):
    """The figures of the group `parts`: with `hold`, each component keeps the base's own
    output wherever the program keeps its variables; without, only the patched position is
    set and every other is the model's. `screening`: see `_measure`."""
    chunk = SCREENING_CHUNK if screening else max(len(same), len(different), 1)
    allowed_same = (1 - FLAG_BELOW) * len(same)
    unchanged_count = 0
    for start in range(0, len(same), chunk):
        firsts, seconds, positions = _columns(same[start : start + chunk], inputs)
        # Equal values swapped in change nothing: every component keeps its own output
        # everywhere else.
        kept = _everywhere_but(parts, firsts, positions)
        patched, plain = _patched_read_out(
            model, task, firsts, seconds, positions, kept if hold else _nowhere(kept)
        )
        unchanged_count += sum(p == q for p, q in zip(patched, plain))
        measured = start + len(firsts)
        if screening and measured - unchanged_count > allowed_same:
            return _Figures(measured, unchanged_count / measured, 0, None, 0, 0)
    unchanged = unchanged_count / len(same) if same else None
    agree = total = elsewhere = undefined = 0
    for start in range(0, len(different), chunk):
        firsts, seconds, positions = _columns(different[start : start + chunk], inputs)
        predicted, kept = _intervened_program(program, parts, firsts, seconds, positions, task)
        patched, _ = _patched_read_out(
            model, task, firsts, seconds, positions, kept if hold else _nowhere(kept)
        )
        for tokens, q, got, wanted in zip(firsts, positions, patched, predicted):
            if wanted is None:
                undefined += 1
                continue
            total += 1
            wrong = [
                p - 1 for p, g, w in zip(task.positions_of(tokens), got, wanted) if label_of(g) != w
            ]
            agree += not wrong
            elsewhere += bool(wrong) and q not in wrong
        measured = start + len(firsts)
        # Undefined pairs are not scored: the most that could still be scored is what is left.
        most = total + len(different) - measured
        if screening and total - agree > (1 - FLAG_BELOW) * most:
            return _Figures(len(same), unchanged, measured, agree / total, undefined, elsewhere)
    follows = agree / total if total else None
    return _Figures(len(same), unchanged, len(different), follows, undefined, elsewhere)


def _nowhere(held: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """`held` with no position kept: only the patched one is set."""
    return {part: np.zeros_like(mask) for part, mask in held.items()}


def _columns(pairs, inputs) -> tuple[list, list, list]:
    """(first inputs, second inputs, positions) of (first, second, position) triples."""
    return (
        [inputs[a] for a, _, _ in pairs],
        [inputs[b] for _, b, _ in pairs],
        [q for _, _, q in pairs],
    )


def _everywhere_but(parts, firsts, positions) -> dict[str, np.ndarray]:
    """Per component of `parts`, [input, position]: every position but the patched one."""
    held = np.ones((len(firsts), max(map(len, firsts))), dtype=bool)
    held[np.arange(len(firsts)), positions] = False
    return {part: held for part in frozenset().union(*parts.values())}


def _intervened_program(program, parts, firsts, seconds, positions, task):
    """(read-outs, held): the program's read-out on `firsts` with the variables of `parts`
    holding, at each input's position, their values on `seconds` (None where undefined);
    and per component of `parts`, where [input, position] it keeps the base's output:
    every variable credited to it keeps its value there (the patched position aside)."""
    definitions = _reading(program, parts)
    donor = _values(definitions, seconds)
    base = own = _values(definitions, firsts)
    rows = np.arange(len(firsts))
    at = np.array(positions)
    overrides: dict = {}
    reads = {name: {d.name for d in _reading(program, [name])} - {name} for name in parts}
    stale: set = set()  # overridden since `own` was evaluated
    for name in parts:  # in program order: elsewhere, a variable follows the ones before it
        if reads[name] & stale:
            own, stale = _values(definitions, firsts, overrides), set()
        values = own[name].values().copy()
        values[rows, at] = donor[name].values()[rows, at]
        overrides[name] = SOpArray.from_values(values, own[name].failures)
        stale.add(name)
    intervened = evaluate_arrays(program, firsts, overrides=overrides)
    mixed = _mixed_categorical_reads(program, intervened)
    read_outs = [
        None if out is None or bad else [out[p - 1] for p in task.positions_of(tokens)]
        for tokens, out, bad in zip(firsts, intervened.outputs(), mixed)
    ]
    kept = {name: intervened.definitions[name].values() == base[name].values() for name in parts}
    held = {}
    for name, components in parts.items():
        for part in components:
            held[part] = held.get(part, True) & kept[name]
    for mask in held.values():
        mask[rows, at] = False
    return read_outs, held


def _mixed_categorical_reads(program: ast.Program, evaluation) -> np.ndarray:
    """Per input, whether a categorical aggregate selects keys that hold different values
    somewhere: RASP leaves that undefined (tracr compiles a categorical aggregate for one
    value among the selected keys; the evaluator's mean of numbers is numerical semantics).
    An intervention can make two keys claim one query (sort_unique's ranks) where the
    traced inputs never do: the program says nothing there, so the pair is not scored."""
    values, live = evaluation.definitions, evaluation.mask
    mixed = np.zeros(len(live), dtype=bool)
    for definition in program.definitions:
        node = definition.node
        if not (
            isinstance(node, ast.Aggregate)
            and node.encoding is ast.CATEGORICAL
            and isinstance(node.selector, ast.Name)
            and isinstance(node.sop, ast.Name)
        ):
            continue
        matrix = values[node.selector.id].matrix & live[:, None, :]
        codes = values[node.sop.id].codes[:, None, :]
        high = np.where(matrix, codes, -1).max(-1)
        low = np.where(matrix, codes, np.iinfo(np.int64).max).min(-1)
        mixed |= (matrix.any(-1) & (high != low)).any(-1)
    return mixed


def _patched_read_out(model, task, firsts, seconds, positions, held) -> tuple[list, list]:
    """(patched, plain): the model's read-out on `firsts` with each component of `held`
    given, at each input's position, its output on `seconds` there, and its own output
    on `firsts` where `held` [input, position] says; and its read-out unpatched."""
    hooks = {part: _hook_of(part) for part in held}
    names = sorted({hook for hook, _ in hooks.values()})
    ids, mask = model.encode(seconds)
    _, donor_trace = model.run_with_trace(ids, mask, names=names)
    ids, mask = model.encode(firsts)
    plain_out, base_trace = model.run_with_trace(ids, mask, names=names)
    modules = dict(model.named_modules())
    rows = torch.arange(len(firsts))
    at = torch.tensor(positions) + 1  # BOS is position 0

    def replacing(hook, head, keep):
        donor, base = donor_trace[hook], base_trace[hook]
        keep = torch.as_tensor(keep)
        width = min(keep.shape[1], base.shape[1] - 1)  # a donor may be shorter
        where = torch.zeros(base.shape[:2], dtype=torch.bool)
        where[:, 1 : 1 + width] = keep[:, :width]  # program positions are after BOS

        def replace(module, args, output):
            patched = output.clone()
            if head is None:
                patched[where] = base[where]
                patched[rows, at] = donor[rows, at]
            else:
                patched[where, head] = base[where, head]
                patched[rows, at, head] = donor[rows, at, head]
            return patched

        return replace

    handles = [
        modules[hook].register_forward_hook(replacing(hook, head, held[part]))
        for part, (hook, head) in hooks.items()
    ]
    try:
        with torch.no_grad():
            out = model(ids, mask)
    finally:
        for handle in handles:
            handle.remove()
    return task.decode(model, out, firsts), task.decode(model, plain_out, firsts)


def _hook_of(component: str) -> tuple[str, int | None]:
    """The hook that carries `component`'s output ("L1.H0" -> blocks.1.attn.hook_z, head 0)."""
    layer, part = component.split(".")
    number = int(layer[1:])
    if part == "MLP":
        return f"blocks.{number}.hook_mlp_out", None
    return f"blocks.{number}.attn.hook_z", int(part[1:])
