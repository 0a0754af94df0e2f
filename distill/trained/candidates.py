"""Definitions offered to a trained model's program, as `.rasp` text, and their values."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import dsl
from dsl import ast
from dsl.interpreter import evaluate_arrays

# The output of a program evaluated for its definitions only.
DEFINITIONS_ONLY = ast.Tokens()


@dataclass
class Candidate:
    """A definition offered to the program, and where it came from."""

    name: str
    source: str  # the right-hand side, in .rasp syntax
    component: str | None  # e.g. "L0.H1"; None for tokens and indices
    # Read off a probe of a head's output or put together from such readings, not off an
    # attention pattern: the read-out's search tries sets without these first.
    hypothesis: bool = False


class DefinitionValues:
    """Definitions evaluated over one batch of inputs, each once: a later call evaluates
    only the definitions it has not seen (with the same source), the others going in as
    the interpreter's overrides. Discovery adds definitions layer by layer and evaluates
    them all each time; without this the first layer's are evaluated once per layer."""

    def __init__(self, inputs: list[list]):
        self.inputs = inputs
        self._known: dict[str, tuple[str, object, object]] = {}  # name -> source, array, values

    def evaluate(self, definitions: list[Candidate], as_arrays: bool = False, keep: bool = True):
        """name -> values [batch, pos] (object) or selector matrix [batch, query, key]
        (bool); `as_arrays`: the interpreter's SOpArray / SelectorArray as they are.
        `keep`: remember these for later calls (not for trial definitions, whose names
        are used again with other sources)."""
        program = ast.Program(
            tuple(_parsed(c.name, c.source) for c in definitions), DEFINITIONS_ONLY
        )
        known = {c.name: self._known.get(c.name) for c in definitions}
        overrides = {
            c.name: known[c.name][1]
            for c in definitions
            if known[c.name] is not None and known[c.name][0] == c.source
        }
        evaluation = evaluate_arrays(program, self.inputs, overrides=overrides)
        found = {}
        for c in definitions:
            array = evaluation.definitions[c.name]
            values = known[c.name][2] if c.name in overrides else None
            if not as_arrays and values is None:
                values = array.values() if hasattr(array, "codes") else array.matrix
            if keep:
                self._known[c.name] = (c.source, array, values)
            found[c.name] = array if as_arrays else values
        return found


@lru_cache(maxsize=8192)
def _parsed(name: str, source: str) -> ast.Definition:
    """One definition, parsed once: discovery evaluates the same ones layer after layer,
    and parsing every line again each time cost more than evaluating the new ones."""
    return dsl.parse(f"{name} = {source}\nreturn tokens\n", filename="<trained>").definitions[0]
