"""Lowering a distilled program to what tracr compiles.

A distilled program follows its model: a categorical aggregate that selects
nothing gives the value the model shows there (`default=1`, or a default label
that later tables map). tracr compiles categorical aggregates with default
None only: there the compiled network writes nothing, exactly what the model
the program was read from did. So the lowering drops such defaults, and the
table entries keyed on them, and lets the recompiled network do the same
nothing-writing. The closed-loop test checks the recompiled model against the
original on the claimed domain.
"""

from __future__ import annotations

import dataclasses

from dsl import ast


def lower_for_tracr(program: ast.Program) -> ast.Program:
    """`program` with non-None categorical aggregate defaults (and table keys on them) removed."""
    dropped: set = set()

    def drop_default(node):
        if (
            isinstance(node, ast.Aggregate)
            and node.encoding == ast.CATEGORICAL
            and node.default is not None
        ):
            dropped.add(_hashable(node.default))
            return dataclasses.replace(node, default=None)
        return node

    def drop_keys(node):
        if isinstance(node, (ast.Map, ast.SequenceMap)) and isinstance(node.fn, ast.Table):

            def mentions(key):
                parts = key if isinstance(node, ast.SequenceMap) else (key,)
                return any(_hashable(part) in dropped for part in parts)

            entries = tuple((k, v) for k, v in node.fn.entries if not mentions(k))
            return dataclasses.replace(node, fn=ast.Table(entries))
        return node

    lowered = ast.rewrite_program(program, drop_default)
    # Table keys are dropped once every dropped default is known.
    return ast.rewrite_program(lowered, drop_keys) if dropped else program


def _hashable(value):
    return (type(value).__name__, value)


def recompile(program: ast.Program, *, vocab, max_seq_len: int, causal: bool = False):
    """Compile a distilled program with tracr and import it: model -> program -> model."""
    from tracr.compiler import compiling

    import dsl
    from distill.tracr_import import from_tracr

    sop = dsl.to_tracr(lower_for_tracr(program))
    assembled = compiling.compile_rasp_to_model(
        sop, vocab=set(vocab), max_seq_len=max_seq_len, compiler_bos="BOS", causal=causal
    )
    return from_tracr(assembled)


def closed_loop_disagreements(result, model, limit: int = 20_000) -> tuple[int, int, list]:
    """Recompile `result.program`; compare with `model` on the claimed domain (first `limit` inputs).

    Returns (inputs compared, inputs that differ, up to 3 examples).
    """
    from distill.precondition import precondition_holds
    from dsl.domain import enumerate_inputs

    spec = model.config
    rebuilt = recompile(
        result.program, vocab=spec.vocab, max_seq_len=spec.max_seq_len, causal=spec.causal
    )
    inputs = [x for batch in enumerate_inputs(list(spec.vocab), spec.max_seq_len) for x in batch][
        :limit
    ]
    inputs = [x for x, ok in zip(inputs, precondition_holds(result.table_program, inputs)) if ok]
    differ = [
        (x, a, b)
        for x, a, b in zip(inputs, model.predict(inputs), rebuilt.predict(inputs))
        if not all(_close(u, v) for u, v in zip(a, b))
    ]
    return len(inputs), len(differ), differ[:3]


def _close(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return abs(a - b) <= 1e-3
    return a == b
