"""A lowered program compiled by tracr on the program's own value sets."""

from __future__ import annotations

import math

import numpy as np

from distill.emit.recompile.lowering import lower_for_tracr
from distill.emit.recompile.value_sets import value_sets
from distill.errors import BadInputError
from dsl import ast

# tracr's default for how sharp a discretising MLP steps between two values
# (it steps within 1 / this); raised where the values are closer together.
MLP_EXACTNESS = 100


def compile_program(
    program: ast.Program, *, vocab, max_seq_len: int, causal: bool = False, compiler_bos="BOS"
):
    """tracr's compiled model of `program` (lowered), built on the program's own value sets."""
    from tracr.compiler import (
        basis_inference,
        craft_graph_to_model,
        craft_model_to_transformer,
        expr_to_craft_graph,
        nodes,
        rasp_to_graph,
        validating,
    )
    from tracr.craft import bases
    from tracr.rasp import rasp

    import dsl

    if compiler_bos in vocab:
        raise BadInputError(f"the BOS token {compiler_bos!r} is in the vocab")
    lowered = lower_for_tracr(program, vocab=vocab, max_seq_len=max_seq_len, causal=causal)
    sop = dsl.to_tracr(lowered)
    # The stages of tracr's compiling.compile_rasp_to_model, value sets set in between.
    unsupported = validating.static_validate(sop)
    if unsupported:
        reasons = "\n".join(f"{u.expr.name}: {u.reason}" for u in unsupported)
        raise BadInputError(f"tracr cannot compile these expressions:\n{reasons}")
    extracted = rasp_to_graph.extract_rasp_graph(sop)
    graph, sources, sink = extracted.graph, extracted.sources, extracted.sink
    basis_inference.infer_bases(graph, sink, set(vocab), max_seq_len)
    sets = value_sets(lowered, vocab, max_seq_len)
    for node in graph.nodes.values():
        expr = node[nodes.EXPR]
        # Every SOp but tokens and indices is a definition, named after it (labels add an id).
        if isinstance(expr, rasp.SOp) and expr.name in sets:
            node[nodes.VALUE_SET] = set(sets[expr.name])
            if rasp.is_categorical(expr):
                space = bases.VectorSpaceWithBasis.from_values(expr.label, sets[expr.name])
                node[nodes.OUTPUT_BASIS] = space.basis
    expr_to_craft_graph.add_craft_components_to_rasp_graph(
        graph,
        bos_dir=bases.BasisDirection(rasp.tokens.label, compiler_bos),
        mlp_exactness=_mlp_exactness(graph, max_seq_len),
    )
    craft_model = craft_graph_to_model.craft_graph_to_model(graph, sources)
    return craft_model_to_transformer.craft_model_to_transformer(
        craft_model=craft_model,
        graph=graph,
        sink=sink,
        max_seq_len=max_seq_len,
        causal=causal,
        compiler_bos=compiler_bos,
        compiler_pad="compiler_pad",
    )


def _mlp_exactness(graph, max_seq_len: int) -> float:
    """Sharp enough that each discretising MLP steps well within half the gap of its inputs."""
    from tracr.compiler import nodes
    from tracr.rasp import rasp

    gaps = [math.inf]
    for node in graph.nodes.values():
        expr = node[nodes.EXPR]
        if isinstance(expr, rasp.SelectorWidth):
            # Its MLP reads 1/(w + 1) for w = 0..max_seq_len: the closest are 1/n and 1/(n + 1).
            gaps.append(1 / (max_seq_len * (max_seq_len + 1)))
        if isinstance(expr, rasp.Map) and rasp.is_numerical(expr.inner):
            values = np.sort(np.array(list(graph.nodes[expr.inner.label][nodes.VALUE_SET]), float))
            gaps.extend(np.diff(values))
    return max(MLP_EXACTNESS, 4 / min(gaps))


def recompile(program: ast.Program, *, vocab, max_seq_len: int, causal: bool = False):
    """Compile a distilled program with tracr and import it: model -> program -> model."""
    from distill.models.tracr_import import from_tracr

    return from_tracr(compile_program(program, vocab=vocab, max_seq_len=max_seq_len, causal=causal))
