"""Names, `tokens`, `indices` and `full`: cells with finite tables."""

from __future__ import annotations

from dsl import ast
from verify.z3.cells import REAL, EncodedSOp, Finite, Unsupported, kind_of
from verify.z3.encoder import Encoder


def encode_name(enc: Encoder, node: ast.Name):
    if node.id not in enc.by_name:
        if node.id not in enc.lookup:
            raise Unsupported(f"undefined name {node.id!r}")
        enc.by_name[node.id] = enc.node(enc.lookup[node.id])
    return enc.by_name[node.id]


def encode_tokens(enc: Encoder, node: ast.Tokens) -> EncodedSOp:
    vocab = enc.inputs.vocab
    kind = kind_of(vocab)
    cells = tuple(enc.finite_cell(kind, Finite((i,), vocab)) for i in range(enc.length))
    return EncodedSOp(kind, cells, frozenset(vocab))


def encode_indices(enc: Encoder, node: ast.Indices) -> EncodedSOp:
    cells = tuple(enc.finite_cell(REAL, Finite((), (i,))) for i in range(enc.length))
    return EncodedSOp(REAL, cells, frozenset(range(enc.length)))


def encode_full(enc: Encoder, node: ast.Full) -> EncodedSOp:
    values = frozenset() if node.value is None else frozenset([node.value])
    kind = kind_of(values)
    cells = tuple(enc.finite_cell(kind, Finite((), (node.value,))) for _ in range(enc.length))
    return EncodedSOp(kind, cells, values, may_be_none=node.value is None)
