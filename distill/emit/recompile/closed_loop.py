"""The closed loop: a distilled program recompiled, compared with its model on every input."""

from __future__ import annotations

import numpy as np

from distill.emit.recompile.tracr_compile import recompile
from distill.models.numerics import RESOLUTION
from dsl import ast


def closed_loop_disagreements(result, model) -> tuple[int, int, list]:
    """Recompile `result.program`; compare with `model` on every input of the claimed domain.

    Returns (inputs compared, inputs that differ, up to 3 (input, expected, got)).
    """
    spec = model.config
    rebuilt = recompile(
        result.program, vocab=spec.vocab, max_seq_len=spec.max_seq_len, causal=spec.causal
    )
    return disagreements(model, rebuilt, claimed=result.table_program)


def disagreements(model, rebuilt, claimed: ast.Program | None = None) -> tuple[int, int, list]:
    """Two models on every input (where `claimed`, a table program, meets the precondition).

    Returns (inputs compared, inputs that differ, up to 3 (input, expected, got)).
    """
    from distill.checks.sweep import agreement_matrix, chunks, evaluate_model
    from distill.circuit.precondition import precondition_holds, restricts
    from dsl.domain import ordered_vocab

    vocab = ordered_vocab(model.config.vocab)
    rebuilt_ids = np.array([list(rebuilt.config.vocab).index(token) for token in vocab])
    compared, differ, examples = 0, 0, []
    for chunk in chunks(vocab, model.config.max_seq_len):
        expected = evaluate_model(model, chunk.inputs, chunk.tokens)
        got = evaluate_model(rebuilt, chunk.inputs, rebuilt_ids[chunk.tokens])
        if model.config.output_kind == rebuilt.config.output_kind == "numerical":
            # Codes index the distinct numbers seen: compare the numbers themselves.
            gap = np.asarray(expected.table)[expected.codes] - np.asarray(got.table)[got.codes]
            agree = (np.abs(gap) <= RESOLUTION).all(axis=1)
        else:
            same = agreement_matrix(expected.table, got.table)
            agree = same[expected.codes, got.codes].all(axis=1)
        holds = np.ones(len(chunk.inputs), dtype=bool)
        if claimed is not None and restricts(claimed):
            holds = np.asarray(precondition_holds(claimed, chunk.inputs), dtype=bool)
        compared += int(holds.sum())
        rows = np.flatnonzero(holds & ~agree)
        differ += len(rows)
        for row in rows[: 3 - len(examples)].tolist():
            x = chunk.inputs[row]
            examples.append((x, model.predict([x])[0], rebuilt.predict([x])[0]))
    return compared, differ, examples
