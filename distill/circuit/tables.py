"""The table program: a circuit written as a DSL program of lookup tables.

Every head becomes `select` with a table predicate plus `aggregate` (or
`selector_width`), every sub-MLP a `map` / `sequence_map` with a table. It is
faithful by construction on the traced inputs and is the reference that the
readable program is proved equal to.

Tables hold only the input combinations seen in the traces: the others are
don't-cares that synthesis may choose freely. The table program is undefined
(raises) on an input that reaches an unseen combination; the proof that the
readable program equals it then fails with that input, which is traced next.
"""

from __future__ import annotations

from dataclasses import dataclass

from distill.circuit.discovery import Circuit
from distill.circuit.variables import NUMERICAL, Variable
from dsl import ast


@dataclass
class TableProgram:
    program: ast.Program
    free: frozenset[str]  # definitions whose labels are arbitrary
    components: dict[str, str]  # definition name -> component id


# A causal model's heads see keys at or before the query only: every select is and-ed with this.
CAUSAL_MASK = "causal"
CAUSAL_SELECT = ast.Select(ast.Indices(), ast.Indices(), ast.Comparison("<="))


def _encoding(variable: Variable) -> ast.Encoding:
    return ast.NUMERICAL if variable.encoding == NUMERICAL else ast.CATEGORICAL


def _ref(variable: Variable) -> ast.Node:
    if variable.name == "tokens":
        return ast.Tokens()
    if variable.name == "indices":
        return ast.Indices()
    return ast.Name(variable.name)


def _labels(inputs: list[Variable], codes: tuple):
    labels = tuple(variable.values[code] for variable, code in zip(inputs, codes))
    return labels[0] if len(labels) == 1 else labels


def build(circuit: Circuit, output_values: dict | None = None) -> TableProgram:
    """The table program of `circuit`; `output_values` relabels the output variable."""
    definitions: list[ast.Definition] = []
    components: dict[str, str] = {}
    free = set()
    if circuit.causal:
        definitions.append(ast.Definition(CAUSAL_MASK, CAUSAL_SELECT))
        components[CAUSAL_MASK] = "causal mask"
    readings = sorted(
        circuit.heads + circuit.mlps,
        key=lambda r: circuit.variables.index(r.output),
    )
    for reading in readings:
        out = reading.output
        if hasattr(reading, "selector"):
            selector_name = f"select_{out.name.removeprefix('head_')}"
            entries = circuit.selector_labels(reading)
            if circuit.causal:
                # Pairs seen only past the query are masked anyway: any value fits, False reads best.
                keys = {k for k, _ in entries}
                queries = {q for _, q in entries}
                entries = {(k, q): entries.get((k, q), False) for k in keys for q in queries}
            select = ast.Select(
                _ref(reading.key), _ref(reading.query), ast.Table(tuple(entries.items()))
            )
            if circuit.causal:
                select = ast.SelectAnd(ast.Name(CAUSAL_MASK), select)
            definitions.append(ast.Definition(selector_name, select))
            components[selector_name] = reading.component
            if reading.kind == "selector_width":
                node = ast.SelectorWidth(ast.Name(selector_name))
            else:
                node = ast.Aggregate(
                    ast.Name(selector_name),
                    _ref(reading.value),
                    default=reading.default,
                    encoding=_encoding(out),
                )
        else:
            observed = {_labels(reading.inputs, k): out.values[v] for k, v in reading.table.items()}
            table = ast.Table(tuple(observed.items()))
            if len(reading.inputs) == 0:
                node = ast.Full(out.values[reading.table[()]], encoding=_encoding(out))
            elif len(reading.inputs) == 1:
                node = ast.Map(table, _ref(reading.inputs[0]), encoding=_encoding(out))
            else:
                node = ast.SequenceMap(
                    table, _ref(reading.inputs[0]), _ref(reading.inputs[1]), encoding=_encoding(out)
                )
        definitions.append(ast.Definition(out.name, node))
        components[out.name] = reading.component
        if out.free:
            free.add(out.name)

    output = _ref(circuit.output)
    if output_values is not None:
        # The model's output values name the output variable's labels.
        table = ast.Table(
            tuple(
                (label, output_values[label])
                for label in circuit.output.values
                if label in output_values
            )
        )
        encoding = ast.CATEGORICAL if circuit.output.encoding != NUMERICAL else ast.NUMERICAL
        definitions.append(ast.Definition("output", ast.Map(table, output, encoding=encoding)))
        components["output"] = "unembed"
        output = ast.Name("output")
    program = ast.Program(tuple(definitions), output)
    return TableProgram(program, frozenset(free), components)
