"""A whole program at one length: the dispatch table, `encode_program`, and output equality."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import z3

from dsl import ast
from verify.z3 import aggregates, maps, primitives, selectors
from verify.z3.cells import FALSE, TRUE, EncodedSOp, Inputs, simplify
from verify.z3.encoder import Encoder, cells_equal


@dataclass(frozen=True)
class EncodedProgram:
    """A program at one length: its output cells and the formulas collected on the way."""

    output: EncodedSOp
    undefined: z3.BoolRef
    escapes: tuple[tuple[z3.BoolRef, str], ...]
    single_valued: z3.BoolRef


def encode_program(
    program: ast.Program, inputs: Inputs, *, single_valued: bool = False
) -> EncodedProgram:
    """Encode `program`; `single_valued` also builds that precondition (else it is left true)."""
    encoder = Encoder(program, inputs, ENCODERS, single_valued=single_valued)
    output = encoder.sop(program.output)
    return EncodedProgram(
        output=output,
        undefined=simplify(z3.Or(encoder.undefined)) if encoder.undefined else FALSE,
        escapes=tuple(encoder.escapes),
        single_valued=simplify(z3.And(encoder.single_valued)) if encoder.single_valued else TRUE,
    )


def outputs_equal_at(
    a: EncodedSOp, b: EncodedSOp, inputs: Inputs, *, where_valued: bool = False
) -> list[z3.BoolRef]:
    """Per position, Python's `==` between the two outputs (None == None); with
    `where_valued`, only where `b` is not None (there `a` is free)."""
    cells = []
    for i in range(inputs.length):
        same = cells_equal(a, i, b, i, inputs)
        cells.append(z3.Or(b.cells[i].none, same) if where_valued and b.may_be_none else same)
    return cells


ENCODERS: dict[type, Callable] = {
    ast.Name: primitives.encode_name,
    ast.Tokens: primitives.encode_tokens,
    ast.Indices: primitives.encode_indices,
    ast.Full: primitives.encode_full,
    ast.Map: maps.encode_map,
    ast.SequenceMap: maps.encode_sequence_map,
    ast.Aggregate: aggregates.encode_aggregate,
    ast.SelectorWidth: aggregates.encode_selector_width,
    ast.Select: selectors.encode_select,
    ast.SelectAnd: selectors.encode_select_and,
    ast.SelectOr: selectors.encode_select_or,
    ast.SelectNot: selectors.encode_select_not,
}
"""The encoder of each node type: (Encoder, node) -> EncodedSOp or Matrix."""
