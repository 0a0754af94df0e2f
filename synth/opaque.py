"""Hiding the meaning of categorical values: what a distiller reading a network sees.

A network's hidden variables carry no value names, only distinct clusters.
`scramble` turns a table program into that form: the values of the given
categorical definitions become arbitrary distinct ints 0..k-1 (shuffled by a
seed), and every table that reads them is rewritten, so the program computes
the same function. `synth.readable` is tested by recovering a program from it.

One caveat, shared with tracr's compiler: a categorical aggregate that selects
several different *numbers* gives their mean in tracr's evaluator, and a mean
of labels is no label. Scrambling keeps the function on every input where each
categorical aggregate of a scrambled class selects one value (or equal ones),
the inputs a compiled model is built for.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

from dsl import ast
from synth.errors import SynthError
from synth.graph import GENERATED_PREFIX, flatten, inline_single_uses
from synth.labels import label_classes, relabel


def scrambleable(program: ast.Program) -> frozenset[str]:
    """Definitions whose values can be hidden: categorical table maps and the aggregates of them.

    Not tokens, indices, selector widths, numerical definitions, the output or
    anything sharing values with it, nor values a non-table function reads.
    """
    names = set()
    for label_class in label_classes(flatten(program)):
        if not any(name.startswith(GENERATED_PREFIX) for name in label_class.members):
            names.update(label_class.members)
    return frozenset(names)


def scramble(program: ast.Program, free: Iterable[str], seed: int) -> ast.Program:
    """`program` with the values of the `free` definitions replaced by shuffled ints 0..k-1."""
    free = set(free)
    unknown = free - scrambleable(program)
    if unknown:
        raise SynthError(
            f"cannot hide the values of {', '.join(sorted(unknown))}: only categorical maps "
            "with a table (and aggregates of them) read only by tables can be scrambled"
        )
    rng = random.Random(seed)
    flat = flatten(program)
    for label_class in label_classes(flat):
        if free & set(label_class.members):
            opaque = list(range(len(label_class.labels)))
            rng.shuffle(opaque)
            flat = relabel(flat, label_class, dict(zip(label_class.labels, opaque)))
    return inline_single_uses(flat)
