"""Which inputs to trace: every input of a small domain, else the short ones and samples."""

from __future__ import annotations

from distill.config import DistillConfig
from dsl.domain import count_inputs, enumerate_inputs, sample_inputs


def inputs_to_trace(vocab: list, max_len: int, config: DistillConfig) -> list[list]:
    if count_inputs(vocab, max_len) <= config.evidence_inputs:
        return [x for batch in enumerate_inputs(vocab, max_len) for x in batch]
    # Every short input (they carry the edge cases), then seeded samples of the rest.
    inputs: list[list] = []
    length = 0
    while length < max_len and count_inputs(vocab, length + 1) <= config.evidence_inputs // 2:
        length += 1
    if length:
        inputs = [x for batch in enumerate_inputs(vocab, length) for x in batch]
    rest = config.evidence_inputs - len(inputs)
    inputs += sample_inputs(vocab, max_len, rest, seed=config.seed, min_len=length + 1)
    return inputs
