"""Circuit discovery: components, the variables they write, and who reads what.

Works from weights and traces only (never residual labels):

- inputs: the token and position embeddings give the `tokens` and `indices`
  variables (their directions of variation);
- a head reads a query, a key and a value variable (its W_Q, W_K, W_V see
  their directions); its selector is read off attention patterns, its output
  variable from what it writes: the value it copies (categorical aggregate),
  the mean of a number (numerical aggregate), or, when the value read is no
  variable at all (tracr's BOS trick), the selector width;
- an MLP layer is split into independent sub-MLPs: units whose writes overlap
  belong together, and one-direction groups (one value each of a categorical
  map) are joined into variables whose values exactly cover every sample.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx
import numpy as np

from distill.circuit.evidence import Evidence, HeadEvidence, MLPEvidence, orthonormal_row_basis
from distill.circuit.variables import (
    CATEGORICAL,
    NUMBER_TOLERANCE,
    NUMERICAL,
    UNDEFINED,
    Variable,
    clean_number,
    cluster_points,
    variable_from_points,
    variables_read,
)
from distill.errors import DistillError
from distill.models.family import Model

WRITE_OVERLAP_TOLERANCE = 1e-3
ACTIVE_TOLERANCE = 1e-3
# A key counts as selected when its attention is at least this share of the row's maximum.
SELECTED_SHARE = 0.5
# What a categorical head outputs when it selects nothing. Not None: a compiled
# model computes on with what it wrote there (nothing), and the program must follow
# the model, so the default is a value of its own that later tables can map.
DEFAULT_LABEL = "<default>"


class UnsupportedCircuit(DistillError):
    """The network does something this distiller cannot read as a program."""


@dataclass
class HeadReading:
    component: str
    query: Variable | None
    key: Variable | None
    value: Variable | None
    selector: dict  # (key code, query code) -> bool; labels via key.values / query.values
    selector_conflicts: int
    output: Variable
    kind: str  # "aggregate" | "selector_width"
    default: object = None
    geometry: object = None  # scores and values over its value sets, when read from weights


@dataclass
class MLPReading:
    component: str
    inputs: list[Variable]
    table: dict  # tuple of input codes -> output code; labels via the variables' values
    output: Variable
    units: np.ndarray


@dataclass
class Circuit:
    variables: list[Variable]
    heads: list[HeadReading]
    mlps: list[MLPReading]
    output: Variable
    causal: bool = False  # every head sees only keys at or before its query
    graph: nx.DiGraph = field(default_factory=nx.DiGraph)
    stream: object = None  # the residual stream as value embeddings, when read from weights

    def selector_labels(self, reading: HeadReading) -> dict:
        """The head's selector as (key label, query label) -> bool."""
        return {
            (reading.key.values[k], reading.query.values[q]): chosen
            for (k, q), chosen in reading.selector.items()
        }

    def reading_of(self, variable: Variable):
        for reading in self.heads + self.mlps:
            if reading.output is variable:
                return reading
        return None


class _SplitLayer(Exception):
    """A cover of one-value groups turned out to be several variables: a head reads only some."""

    def __init__(self, layer: int):
        super().__init__(layer)
        self.layer = layer


def discover(model: Model, evidence: Evidence) -> Circuit:
    """Components, variables and reads; see the module doc.

    Exact covers are ambiguous: several numerical 0/1 maps whose ones never
    overlap look like one categorical map. A head that reads only some of such
    a variable's directions shows they are separate; that layer is then read
    again without merging.
    """
    unmerged: set[int] = set()
    while True:
        try:
            return _discover(model, evidence, unmerged)
        except _SplitLayer as split:
            if split.layer in unmerged:
                raise UnsupportedCircuit(
                    f"L{split.layer}.MLP: its variables cannot be told apart"
                ) from None
            unmerged.add(split.layer)


def _discover(model: Model, evidence: Evidence, unmerged: set[int]) -> Circuit:
    config = model.config
    if config.normalization is not None:
        raise UnsupportedCircuit(
            "models with layer norm are outside the supported family (reads are not linear)"
        )
    sample_index = _sample_index(evidence, config.n_ctx)
    variables = _input_variables(model, evidence)
    heads, mlps = [], []
    for layer in range(config.n_layers):
        available = list(variables)
        for head in (h for h in evidence.heads if h.layer == layer):
            reading = _read_head(model, head, available, evidence, sample_index)
            heads.append(reading)
            variables.append(reading.output)
        for mlp in (m for m in evidence.mlps if m.layer == layer):
            for reading in _read_mlp(
                mlp, list(variables), evidence, merge=mlp.layer not in unmerged
            ):
                mlps.append(reading)
                variables.append(reading.output)
    output = _output_variable(model, evidence, variables)
    circuit = Circuit(variables, heads, mlps, output, causal=config.causal)
    circuit.graph = circuit_graph(circuit)
    return circuit


# --------------------------------------------------------------------------
# Inputs and output.
# --------------------------------------------------------------------------


def _input_variables(model: Model, evidence: Evidence) -> list[Variable]:
    config = model.config
    W_E = model.embed.W_E.detach().double().numpy()[: len(config.vocab)]
    W_pos = model.pos_embed.W_pos.detach().double().numpy()[1 : config.max_seq_len + 1]
    token_code = {value: i for i, value in enumerate(config.vocab)}
    tokens = Variable(
        name="tokens",
        source="embed",
        encoding=CATEGORICAL,
        codes=np.array([token_code[t] for t in evidence.token_labels], dtype=np.int64),
        values=list(config.vocab),
        basis=orthonormal_row_basis(W_E - W_E.mean(axis=0)),
        free=False,
    )
    indices = Variable(
        name="indices",
        source="embed",
        encoding=CATEGORICAL,
        codes=evidence.pos - 1,
        values=list(range(config.max_seq_len)),
        basis=orthonormal_row_basis(W_pos - W_pos.mean(axis=0)),
        free=False,
    )
    return [tokens, indices]


def _output_variable(model: Model, evidence: Evidence, variables: list[Variable]) -> Variable:
    W_U = model.unembed.W_U.detach().double().numpy()
    read = variables_read(W_U, variables)
    if len(read) != 1:
        names = ", ".join(v.source for v in read) or "nothing"
        raise UnsupportedCircuit(f"the unembedding reads {names}; expected exactly one variable")
    return read[0]


def _sample_index(evidence: Evidence, n_ctx: int) -> np.ndarray:
    """[inputs, n_ctx]: the sample at (input, position), -1 where there is none."""
    index = np.full((len(evidence.inputs), n_ctx), -1, dtype=np.int64)
    index[evidence.input_of, evidence.pos] = np.arange(evidence.n_samples)
    return index


def single_read(read: list[Variable], what: str, component: str) -> Variable | None:
    if len(read) > 1:
        names = ", ".join(v.name for v in read)
        raise UnsupportedCircuit(f"{component}: its {what} reads several variables ({names})")
    return read[0] if read else None


# --------------------------------------------------------------------------
# Heads.
# --------------------------------------------------------------------------


def _read_head(
    model: Model,
    head: HeadEvidence,
    available: list[Variable],
    evidence: Evidence,
    sample_index: np.ndarray,
) -> HeadReading:
    attn = model.blocks[head.layer].attn
    W_Q = attn.W_Q.detach().double().numpy()[head.head]
    W_K = attn.W_K.detach().double().numpy()[head.head]
    W_V = attn.W_V.detach().double().numpy()[head.head]
    query = single_read(variables_read(W_Q, available), "query", head.id)
    key = single_read(variables_read(W_K, available), "key", head.id)
    value = single_read(variables_read(W_V, available), "value", head.id)
    _check_whole_read(W_V, value)
    query = query or available[0]  # a query that reads nothing compares with a constant
    key = key or available[0]

    pattern = head.pattern  # [samples, n_ctx]
    n_ctx = pattern.shape[1]
    lengths = evidence.lengths[evidence.input_of]
    key_pos = np.arange(n_ctx)[None, :]
    in_range = (key_pos >= 1) & (key_pos <= lengths[:, None])
    if model.config.causal:
        in_range &= key_pos <= evidence.pos[:, None]  # later keys are masked, not unselected
    row_max = pattern.max(axis=1, keepdims=True)
    selected = in_range & (pattern >= SELECTED_SHARE * row_max) & (pattern > 1e-6)
    key_samples = sample_index[evidence.input_of[:, None], np.minimum(key_pos, n_ctx - 1)]
    key_samples = np.where(in_range, key_samples, -1)

    # The selector as a table over (key label, query label).
    rows, cols = np.nonzero(in_range)
    key_codes = key.codes[key_samples[rows, cols]]
    query_codes = query.codes[rows]
    ok = (key_codes != UNDEFINED) & (query_codes != UNDEFINED)
    n_queries = len(query.values)
    pair = key_codes[ok] * n_queries + query_codes[ok]
    chosen = selected[rows[ok], cols[ok]]
    size = len(key.values) * n_queries
    yes = np.bincount(pair, weights=chosen, minlength=size)
    seen = np.bincount(pair, minlength=size)
    no = seen - yes
    selector = {
        (p // n_queries, p % n_queries): bool(yes[p] > no[p]) for p in np.flatnonzero(seen).tolist()
    }
    conflicts = int(np.minimum(yes, no).sum())

    name = f"head_{head.layer}_{head.head}"
    width = selected.sum(axis=1)
    if value is None:
        output = Variable(
            name=name,
            source=head.id,
            encoding=CATEGORICAL,
            codes=width.astype(np.int64),
            values=list(range(model.config.max_seq_len + 1)),
            basis=head.output_basis(1e-4),
            free=False,
        )
        return HeadReading(head.id, query, key, None, selector, conflicts, output, "selector_width")

    value_codes = np.where(key_samples >= 0, value.codes[np.maximum(key_samples, 0)], UNDEFINED)
    basis = head.output_basis(1e-4)
    if value.encoding == NUMERICAL:
        numbers = np.array([0.0 if v is None else float(v) for v in value.values])
        chosen = np.where(selected, numbers[np.maximum(value_codes, 0)], 0.0)
        means = np.where(width > 0, chosen.sum(axis=1) / np.maximum(width, 1), 0.0)
        codes, centres = cluster_points(means[:, None], NUMBER_TOLERANCE)
        values = [clean_number(c[0]) for c in centres]
        output = Variable(name, head.id, NUMERICAL, codes, values, basis, free=False)
        return HeadReading(head.id, query, key, value, selector, conflicts, output, "aggregate", 0)

    # Categorical: the one value the selection agrees on; none selected gives the default.
    masked = np.where(selected, value_codes, -2)
    lowest = np.where(selected, value_codes, np.iinfo(np.int64).max).min(axis=1)
    highest = masked.max(axis=1)
    unanimous = (width > 0) & (lowest == highest) & (highest != UNDEFINED)
    default_code = len(value.values)
    codes = np.where(width == 0, default_code, np.where(unanimous, highest, UNDEFINED))
    used = sorted(set(codes.tolist()) - {UNDEFINED})
    values = [DEFAULT_LABEL if c == default_code else value.values[c] for c in used]
    renumber = {c: i for i, c in enumerate(used)}
    codes = np.array([renumber.get(c, UNDEFINED) for c in codes.tolist()], dtype=np.int64)
    _check_function_of(head.outputs(), codes, head.id)
    # Its labels are the value's labels: renaming one renames both.
    selects_nothing = DEFAULT_LABEL in values
    output = Variable(
        name,
        head.id,
        CATEGORICAL,
        codes,
        values,
        basis,
        free=value.free,
        copies=value,
        null_code=values.index(DEFAULT_LABEL) if selects_nothing else None,
    )
    # Where no query ever selects nothing, the default is never used: leave it tracr's None.
    default = DEFAULT_LABEL if selects_nothing else None
    return HeadReading(
        head.id, query, key, value, selector, conflicts, output, "aggregate", default
    )


def _check_function_of(outputs: np.ndarray, codes: np.ndarray, component: str) -> None:
    """The component's output must be one point per label (else it computes something else)."""
    scale = max(float(np.abs(outputs).max()), 1e-12)
    for code in np.unique(codes[codes != UNDEFINED]):
        points = outputs[codes == code]
        if np.abs(points - points[0]).max() > 1e-2 * scale:
            raise UnsupportedCircuit(
                f"{component}: its output is not determined by the value it selects"
            )


# --------------------------------------------------------------------------
# MLPs.
# --------------------------------------------------------------------------


def _read_mlp(
    mlp: MLPEvidence, available: list[Variable], evidence: Evidence, merge: bool = True
) -> list[MLPReading]:
    groups = _split_units(mlp, available, merge)
    readings = []
    for index, units in enumerate(groups):
        component = f"L{mlp.layer}.MLP" if len(groups) == 1 else f"L{mlp.layer}.MLP[{index}]"
        local = [np.flatnonzero(mlp.units == u)[0] for u in units]
        inputs = variables_read(mlp.W_in[:, local], available)
        points = mlp.activations[:, local] @ mlp.W_out[local]
        defined = np.ones(len(points), dtype=bool)
        for variable in inputs:
            defined &= variable.defined
        name = f"mlp_{mlp.layer}" if len(groups) == 1 else f"mlp_{mlp.layer}_{index}"
        output = variable_from_points(name, component, points, defined)
        output.members = _distinct_directions(mlp.W_out[local])
        output.layer = mlp.layer
        table = _function_table(inputs, output, component, evidence)
        readings.append(MLPReading(component, inputs, table, output, np.asarray(units)))
    return readings


def _distinct_directions(rows: np.ndarray) -> np.ndarray:
    """The distinct directions [k, d_model] among write rows (a cover's values, one each)."""
    unit = rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
    kept: list[np.ndarray] = []
    for row in unit:
        if all(abs(float(row @ other)) < 0.999 for other in kept):
            kept.append(row)
    return np.array(kept)


def _check_whole_read(reader: np.ndarray, variable: Variable | None) -> None:
    """A head reading only some directions of a merged MLP variable shows it is several."""
    members = None if variable is None else variable.members
    if members is None or len(members) < 2:
        return
    strengths = np.linalg.norm(members @ reader, axis=1)
    seen = strengths > 1e-3 * max(float(strengths.max()), 1e-12)
    if seen.any() and not seen.all() and variable.encoding == CATEGORICAL:
        raise _SplitLayer(variable.layer)


def _function_table(
    inputs: list[Variable], output: Variable, component: str, evidence: Evidence
) -> dict:
    """(input codes) -> output code, over the samples where all are defined.

    Two samples that agree on every variable read but get different outputs show
    the component reads something no variable carries (e.g. a head's weighted
    mean where the program has a uniform one): the error names them.
    """
    if len(inputs) > 2:
        raise UnsupportedCircuit(
            f"{component} reads {len(inputs)} variables; at most two are supported"
        )
    defined = output.defined.copy()
    for variable in inputs:
        defined &= variable.defined
    samples = np.flatnonzero(defined)
    columns = [v.codes[samples] for v in inputs] + [output.codes[samples]]
    stacked = np.stack(columns, axis=1) if columns else np.zeros((0, 1), dtype=np.int64)
    unique, first = np.unique(stacked, axis=0, return_index=True)
    table: dict = {}
    witness: dict = {}
    for row, sample in zip(unique.tolist(), samples[first].tolist()):
        key, value = tuple(row[:-1]), row[-1]
        if key in table and table[key] != value:
            reads = (
                ", ".join(f"{v.name} = {v.values[code]!r}" for v, code in zip(inputs, key))
                or "nothing"
            )
            raise UnsupportedCircuit(
                f"{component}: its output is not a function of the variables it reads: "
                f"with {reads} it writes different values at "
                f"{_sample_text(evidence, witness[key])} and {_sample_text(evidence, sample)}"
            )
        table[key] = value
        witness[key] = sample
    return table


def _sample_text(evidence: Evidence, sample: int) -> str:
    """An input and 0-based position, as counterexamples are shown."""
    return f"input {evidence.inputs[evidence.input_of[sample]]} position {evidence.pos[sample] - 1}"


def _split_units(
    mlp: MLPEvidence, available: list[Variable], merge: bool = True
) -> list[list[int]]:
    """Partition the units active on the traces into independent sub-MLPs (see module doc).

    Units never active on the traced inputs do not change any output there and
    are left out (their read weights would only blur which variables are read).
    """
    peak = mlp.activations.max(axis=0) if len(mlp.activations) else np.zeros(len(mlp.units))
    firing = np.flatnonzero(peak > ACTIVE_TOLERANCE * max(float(peak.max(initial=0)), 1e-12))
    W_out = mlp.W_out[firing]
    W_out = W_out / np.maximum(np.linalg.norm(W_out, axis=1, keepdims=True), 1e-12)
    overlap = np.abs(W_out @ W_out.T) > WRITE_OVERLAP_TOLERANCE
    n_groups, labels = connected_components(overlap)
    groups = [firing[labels == g] for g in range(n_groups)]

    outputs = [mlp.activations[:, g] @ mlp.W_out[g] for g in groups]
    norms = [np.linalg.norm(o, axis=1) for o in outputs]
    active = [nrm > ACTIVE_TOLERANCE * max(float(nrm.max()), 1e-12) for nrm in norms]
    live = [i for i in range(len(groups)) if active[i].any()]
    read_variables = {i: variables_read(mlp.W_in[:, groups[i]], available) for i in live}
    reads = {i: tuple(sorted(v.name for v in read_variables[i])) for i in live}
    # A map applied to nothing (an input whose component wrote nothing) writes nothing:
    # those samples need no value of its output.
    unwritten = {}
    for i in live:
        unwritten[i] = np.zeros(len(mlp.activations), dtype=bool)
        for variable in read_variables[i]:
            unwritten[i] |= variable.nothing_written

    def one_value(i):
        # One direction, written at one strength when active: one value of a categorical map.
        rank = orthonormal_row_basis(mlp.W_out[groups[i]], 1e-4).shape[0]
        if rank != 1:
            return False
        strengths = norms[i][active[i]]
        return np.ptp(strengths) <= 1e-3 * strengths.max()

    candidates = sorted((i for i in live if one_value(i)), key=lambda i: (reads[i], i))
    parts: list[list[int]] = [[i] for i in live if i not in candidates]
    if merge:
        parts.extend(_exact_covers(candidates, active, unwritten))
    else:
        parts.extend([i] for i in candidates)
    parts.sort(key=lambda part: min(part))
    return [sorted(int(mlp.units[u]) for i in part for u in groups[i]) for part in parts]


def _exact_covers(members: list[int], active: list[np.ndarray], unwritten: dict) -> list[list[int]]:
    """Split one-value groups into sets whose activity covers every sample exactly once.

    Each set is one categorical variable (its values are mutually exclusive and
    exhaustive). Samples where a group's input was never written (a map applied
    past an aggregate's default) need no cover. Groups that join no exact cover
    stay alone (a numerical 0/1 map looks like one value of a categorical one).
    """
    remaining = list(members)
    covers: list[list[int]] = []
    while remaining:
        first = remaining[0]
        exempt = unwritten[first] & ~active[first]
        found = _find_cover([first], active[first] | exempt, remaining[1:], active)
        cover = found if found is not None else [first]
        covers.append(cover)
        remaining = [i for i in remaining if i not in cover]
    return covers


def _find_cover(chosen, covered, rest, active, depth=0):
    if covered.all():
        return chosen
    if depth > 40:
        return None
    uncovered = np.flatnonzero(~covered)[0]
    for position, i in enumerate(rest):
        if active[i][uncovered] and not (active[i] & covered & _written(active, chosen)).any():
            others = rest[:position] + rest[position + 1 :]
            found = _find_cover(chosen + [i], covered | active[i], others, active, depth + 1)
            if found is not None:
                return found
    return None


def _written(active, chosen) -> np.ndarray:
    written = np.zeros_like(active[chosen[0]])
    for i in chosen:
        written |= active[i]
    return written


def connected_components(adjacency: np.ndarray) -> tuple[int, np.ndarray]:
    graph = nx.Graph()
    graph.add_nodes_from(range(adjacency.shape[0]))
    graph.add_edges_from(zip(*np.nonzero(np.triu(adjacency, k=1))))
    labels = np.zeros(adjacency.shape[0], dtype=np.int64)
    for index, component in enumerate(nx.connected_components(graph)):
        labels[list(component)] = index
    # Number components by their lowest unit.
    order = sorted(
        range(index + 1 if adjacency.shape[0] else 0), key=lambda c: np.flatnonzero(labels == c)[0]
    )
    renumber = {c: i for i, c in enumerate(order)}
    return len(order), np.array([renumber[c] for c in labels])


# --------------------------------------------------------------------------
# The graph.
# --------------------------------------------------------------------------


def circuit_graph(circuit: Circuit) -> nx.DiGraph:
    """Components as nodes; an edge from writer to reader, labelled with the role read."""
    graph = nx.DiGraph()
    graph.add_node("embed", kind="embed", layer=-1)
    for reading in circuit.heads:
        layer = int(reading.component.split(".")[0][1:])
        graph.add_node(reading.component, kind="head", layer=layer, variable=reading.output.name)
        for role, variable in (
            ("query", reading.query),
            ("key", reading.key),
            ("value", reading.value),
        ):
            if variable is not None:
                graph.add_edge(
                    variable.source, reading.component, role=role, variable=variable.name
                )
    for reading in circuit.mlps:
        layer = int(reading.component.split(".")[0][1:])
        graph.add_node(reading.component, kind="mlp", layer=layer, variable=reading.output.name)
        for variable in reading.inputs:
            graph.add_edge(variable.source, reading.component, role="input", variable=variable.name)
    graph.add_node("unembed", kind="unembed", layer=len(graph))
    graph.add_edge(circuit.output.source, "unembed", role="output", variable=circuit.output.name)
    return graph
