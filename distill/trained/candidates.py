"""Definitions offered to a trained model's program, as `.rasp` text, and their values."""

from __future__ import annotations

from dataclasses import dataclass

import dsl
from dsl.interpreter import evaluate_arrays


@dataclass
class Candidate:
    """A definition offered to the program, and where it came from."""

    name: str
    source: str  # the right-hand side, in .rasp syntax
    component: str | None  # e.g. "L0.H1"; None for tokens and indices


def evaluate_definitions(
    definitions: list[Candidate], inputs: list[list], as_arrays: bool = False
) -> dict:
    """name -> values [batch, pos] (object) or selector matrix [batch, query, key] (bool);
    `as_arrays`: the interpreter's SOpArray / SelectorArray as they are."""
    lines = [f"{c.name} = {c.source}" for c in definitions]
    program = dsl.parse("\n".join([*lines, "return tokens", ""]), filename="<trained>")
    evaluation = evaluate_arrays(program, inputs)
    if as_arrays:
        return dict(evaluation.definitions)
    return {
        name: value.values() if hasattr(value, "codes") else value.matrix
        for name, value in evaluation.definitions.items()
    }
