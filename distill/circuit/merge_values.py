"""Values that no later component tells apart are one value.

A network can write several points for what its program treats as one value:
tracr's selector-width MLP, at lengths where 1/(w+1) and 1/(w+2) come close,
writes a blend of two one-hot outputs, and every map computed from it blends
too. Read off the weights, each blend is a value of its own; but where every
reader maps two values to the same thing (the same selector row, the same
table entries, the same output), the program can call them one, and its
tables shrink back to the function the network computes.

Only free labels (categorical MLP outputs, whose labels are cluster ids) are
merged: tokens, indices, copied values and numbers mean what they say.
"""

from __future__ import annotations

from distill.circuit.discovery import Circuit, HeadReading, MLPReading
from distill.circuit.variables import CATEGORICAL, Variable


def merge_equivalent_values(circuit: Circuit) -> None:
    """Merge, in place, the values of free variables that every reader treats alike."""
    for variable in reversed(circuit.variables):
        if not _mergeable(circuit, variable):
            continue
        signatures: dict[tuple, int] = {}
        representative = []
        for code in range(len(variable.values)):
            signature = tuple(
                _behaviour(reader, variable, code) for reader in _readers(circuit, variable)
            )
            representative.append(signatures.setdefault(signature, code))
        if len(signatures) < len(variable.values):
            _rewrite(circuit, variable, representative)


def _mergeable(circuit: Circuit, variable: Variable) -> bool:
    if variable.encoding != CATEGORICAL or not variable.free or variable.copies is not None:
        return False
    if variable is circuit.output:
        return False
    # A copied value keeps its labels (the head's output is labelled by them).
    return not any(h.value is variable for h in circuit.heads)


def _readers(circuit: Circuit, variable: Variable) -> list:
    return [
        r
        for r in circuit.heads + circuit.mlps
        if (isinstance(r, HeadReading) and variable in (r.query, r.key))
        or (isinstance(r, MLPReading) and any(v is variable for v in r.inputs))
    ]


def _behaviour(reader, variable: Variable, code: int) -> tuple:
    """What `reader` does with `variable` at `code`, over every value of its other inputs."""
    if isinstance(reader, HeadReading):
        parts = []
        if reader.query is variable:
            keys = range(len(reader.key.values))
            parts.append(("query",) + tuple(reader.selector[(k, code)] for k in keys))
        if reader.key is variable:
            queries = range(len(reader.query.values))
            parts.append(("key",) + tuple(reader.selector[(code, q)] for q in queries))
        return tuple(parts)
    return tuple(
        sorted(
            (tuple(c for i, c in enumerate(combo) if reader.inputs[i] is not variable), out)
            for combo, out in reader.table.items()
            if all(c == code for i, c in enumerate(combo) if reader.inputs[i] is variable)
        )
    )


def _rewrite(circuit: Circuit, variable: Variable, representative: list[int]) -> None:
    kept = sorted(set(representative))
    renumber = {old: new for new, old in enumerate(kept)}
    new_code = [renumber[representative[c]] for c in range(len(representative))]
    variable.values = [variable.values[c] for c in kept]
    if variable.null_code is not None:
        variable.null_code = new_code[variable.null_code]
    stream = circuit.stream
    if stream is not None:
        stream.embeddings[variable.name] = stream.embeddings[variable.name][kept]
    producer = circuit.reading_of(variable)
    if isinstance(producer, MLPReading):
        producer.table = {combo: new_code[out] for combo, out in producer.table.items()}
    for reader in _readers(circuit, variable):
        if isinstance(reader, HeadReading):
            reader.selector = {
                (
                    renumber[k] if reader.key is variable else k,
                    renumber[q] if reader.query is variable else q,
                ): chosen
                for (k, q), chosen in reader.selector.items()
                if (reader.key is not variable or k in renumber)
                and (reader.query is not variable or q in renumber)
            }
        else:
            reader.table = {
                tuple(
                    renumber[c] if reader.inputs[i] is variable else c for i, c in enumerate(combo)
                ): out
                for combo, out in reader.table.items()
                if all(
                    reader.inputs[i] is not variable or c in renumber for i, c in enumerate(combo)
                )
            }
