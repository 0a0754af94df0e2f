"""The circuit's output variable named with the model's output values."""

from __future__ import annotations

import numpy as np

from distill.circuit.discovery import DEFAULT_LABEL, Circuit
from distill.circuit.variables import NUMERICAL, clean_number
from distill.errors import DistillError
from distill.models.numerics import RESOLUTION


def traced_output_labels(circuit: Circuit, evidence, spec) -> dict:
    """Each traced value of the output variable -> what the model decoded it to."""
    output = circuit.output
    codes = output.codes
    mapping: dict = {}
    for code in np.unique(codes[codes >= 0]).tolist():
        where = np.flatnonzero(codes == code)
        if spec.output_kind == NUMERICAL:
            values = evidence.raw_output[where, 0]
            mapping[output.values[code]] = clean_number(float(np.median(values)))
        else:
            seen = {evidence.predictions[i] for i in where.tolist()}
            if len(seen) != 1:
                raise DistillError(
                    f"the model's output is not a function of {output.source}'s output "
                    f"(label {output.values[code]!r} decodes to {sorted(map(str, seen))})"
                )
            mapping[output.values[code]] = seen.pop()
    return mapping


def name_output(circuit: Circuit, mapping: dict) -> dict | None:
    """Give the output variable the model's output values (`mapping`: label -> what the
    model decodes it to); return the map when it can't be a rename."""
    output = circuit.output
    if all(_same(label, value) for label, value in mapping.items()):
        return None
    reading = circuit.reading_of(output)
    non_default = {k: v for k, v in mapping.items() if k != DEFAULT_LABEL}
    if all(_same(k, v) for k, v in non_default.items()) and DEFAULT_LABEL in mapping:
        # The model's output where nothing is selected: make it the aggregate's default.
        reading.default = mapping[DEFAULT_LABEL]
        output.values = [reading.default if v == DEFAULT_LABEL else v for v in output.values]
        return None
    injective = len(set(map(repr, mapping.values()))) == len(mapping)
    if output.free and output.copies is None and injective:
        output.values = [mapping.get(v, v) for v in output.values]
        output.free = False
        return None
    return mapping


def _same(a, b) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return abs(a - b) < RESOLUTION
    return a == b and type(a) is type(b)
