"""The circuit read from the weights, with tables complete by construction.

Every variable has a finite value set and, per value, the vector its component
writes into the residual stream (its *embedding*). Value sets flow forward from
`tokens` (the token embeddings) and `indices` (the position embeddings); each
component is then tabulated on the whole cross product of the value sets of
the variables it reads, by running the component itself on the residual
vectors of each combination. No sample decides which entries exist, so no
domain size makes a table incomplete.

The residual at a position is the sum of its variables' embeddings plus the
biases so far (`Stream.constant`). A reader sees only the variables its weights
see (`variables_read`); every other variable enters at its mean embedding,
which the reader cannot tell from any of its values (`distill.circuit.certificate`
bounds the difference).

Attention is read as tracr builds it: for a query value, a key value is
selected when it scores above the BOS key (which every query sees); an
aggregate averages the selected keys' values and falls back to BOS's value
when none is selected; a head whose value reads no variable counts its
selected keys (tracr's selector width: BOS shares the attention with them).
The BOS position is its own residual, computed the same way; its query must
select nothing, else what it holds would depend on the input.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from distill.circuit.discovery import (
    DEFAULT_LABEL,
    Circuit,
    HeadReading,
    MLPReading,
    UnsupportedCircuit,
    circuit_graph,
    connected_components,
    single_read,
)
from distill.circuit.evidence import orthonormal_row_basis
from distill.circuit.variables import (
    CATEGORICAL,
    NUMERICAL,
    READ_TOLERANCE,
    Variable,
    clean_number,
    variable_from_points,
    variables_read,
)
from distill.models.family import Model
from dsl.means import aggregate_means

# Score gaps below this share of a head's largest score are ties (selector width ties
# its selected keys with BOS on purpose; anything else is a decision).
TIE_SHARE = 1e-6
# Two write rows overlap (belong to one sub-MLP) when their cosine exceeds this.
WRITE_OVERLAP = 1e-3
# Most combinations one component is tabulated on.
MAX_GRID = 1_000_000


@dataclass
class Stream:
    """The residual stream between components, symbolically."""

    variables: list[Variable]
    constant: np.ndarray  # [d_model] biases written so far (at every non-BOS position)
    bos: np.ndarray  # [d_model] the residual at the BOS position
    embeddings: dict[str, np.ndarray] = field(default_factory=dict)  # name -> [values, d_model]

    def base(self) -> np.ndarray:
        """The residual with every variable at its mean embedding."""
        total = self.constant.copy()
        for variable in self.variables:
            total += self.embeddings[variable.name].mean(axis=0)
        return total

    def residuals(self, read: list[Variable]) -> tuple[np.ndarray, list[tuple]]:
        """[combinations, d_model] residuals over the cross product of `read`'s values."""
        base = self.base()
        sizes = [len(v.values) for v in read]
        count = int(np.prod(sizes)) if sizes else 1
        if count > MAX_GRID:
            names = ", ".join(v.name for v in read)
            raise UnsupportedCircuit(f"{count:,} combinations of {names}: over {MAX_GRID:,}")
        combos = list(itertools.product(*[range(n) for n in sizes]))
        residual = np.tile(base, (len(combos), 1))
        for position, variable in enumerate(read):
            table = self.embeddings[variable.name]
            codes = np.array([c[position] for c in combos], dtype=np.int64)
            residual += table[codes] - table.mean(axis=0)
        return residual, combos

    def add(self, variable: Variable, embedding: np.ndarray) -> None:
        self.variables.append(variable)
        self.embeddings[variable.name] = embedding


def read_circuit(model: Model) -> Circuit:
    """Variables, complete tables and reads of `model`, from its weights alone."""
    config = model.config
    if config.normalization is not None:
        raise UnsupportedCircuit(
            "models with layer norm are outside the supported family (reads are not linear)"
        )
    stream = _input_stream(model)
    heads, mlps = [], []
    for layer in range(config.n_layers):
        available = list(stream.variables)
        attn = model.blocks[layer].attn
        bos_writes = np.zeros(config.d_model)
        for head in range(config.n_heads):
            W_V, W_O = _array(attn.W_V)[head], _array(attn.W_O)[head]
            if not np.any(W_V @ W_O):
                continue
            reading, embedding, bos_output = _read_head(model, layer, head, stream, available)
            heads.append(reading)
            stream.add(reading.output, embedding)
            bos_writes += bos_output
        b_O = _array(attn.b_O)
        stream.constant = stream.constant + b_O
        stream.bos = stream.bos + bos_writes + b_O
        for reading, embedding in _read_mlp(model, layer, stream):
            mlps.append(reading)
            stream.add(reading.output, embedding)
        mlp = model.blocks[layer].mlp
        stream.bos = stream.bos + _mlp_output(model, layer, stream.bos[None, :])[0]
        stream.constant = stream.constant + _array(mlp.b_out)
    W_U = _array(model.unembed.W_U)
    read = variables_read(W_U, stream.variables)
    if len(read) != 1:
        names = ", ".join(v.source for v in read) or "nothing"
        raise UnsupportedCircuit(f"the unembedding reads {names}; expected exactly one variable")
    circuit = Circuit(stream.variables, heads, mlps, read[0], causal=config.causal)
    circuit.graph = circuit_graph(circuit)
    circuit.stream = stream
    return circuit


def _array(parameter) -> np.ndarray:
    return parameter.detach().double().numpy()


# --------------------------------------------------------------------------
# Inputs.
# --------------------------------------------------------------------------


def _input_stream(model: Model) -> Stream:
    config = model.config
    W_E = _array(model.embed.W_E)
    W_pos = _array(model.pos_embed.W_pos)
    token_rows = W_E[: len(config.vocab)]
    index_rows = W_pos[1 : config.max_seq_len + 1]
    tokens = _variable("tokens", "embed", CATEGORICAL, list(config.vocab), token_rows)
    indices = _variable(
        "indices", "embed", CATEGORICAL, list(range(config.max_seq_len)), index_rows
    )
    stream = Stream([], np.zeros(config.d_model), W_E[config.bos_id] + W_pos[0])
    stream.add(tokens, token_rows)
    stream.add(indices, index_rows)
    return stream


def _variable(name, source, encoding, values, embedding, **extra) -> Variable:
    return Variable(
        name=name,
        source=source,
        encoding=encoding,
        codes=np.zeros(0, dtype=np.int64),
        values=values,
        basis=orthonormal_row_basis(embedding - embedding.mean(axis=0), 1e-4),
        free=extra.pop("free", False),
        **extra,
    )


# --------------------------------------------------------------------------
# Heads.
# --------------------------------------------------------------------------


@dataclass
class HeadGeometry:
    """A head's scores and values over the value sets it reads (kept for the certificate)."""

    scores: np.ndarray  # [key values, query values]
    bos_scores: np.ndarray  # [query values]: the BOS key's score
    values: np.ndarray  # [value values, d_model]: what a key holding each value contributes
    bos_value: np.ndarray  # [d_model]: what the BOS key contributes
    selected: np.ndarray  # [key values, query values] bool
    bos_query_margin: float  # how far BOS's own query prefers the BOS key to every other key


def _read_head(model: Model, layer: int, head: int, stream: Stream, available: list[Variable]):
    attn = model.blocks[layer].attn
    W_Q, W_K, W_V, W_O = (_array(w)[head] for w in (attn.W_Q, attn.W_K, attn.W_V, attn.W_O))
    b_Q, b_K, b_V = (_array(b)[head] for b in (attn.b_Q, attn.b_K, attn.b_V))
    component = f"L{layer}.H{head}"
    query = single_read(variables_read(W_Q, available), "query", component)
    key = single_read(variables_read(W_K, available), "key", component)
    value = single_read(variables_read(W_V, available), "value", component)
    query_var = query or available[0]  # a query that reads nothing compares with a constant
    key_var = key or available[0]
    scale = attn.scale

    query_resid, _ = stream.residuals([query_var])
    key_resid, _ = stream.residuals([key_var])
    queries = query_resid @ W_Q + b_Q
    scores = (key_resid @ W_K + b_K) @ queries.T * scale  # [key values, query values]
    bos_scores = (stream.bos @ W_K + b_K) @ queries.T * scale
    spread = max(float(np.abs(scores).max(initial=0)), float(np.abs(bos_scores).max()), 1e-12)
    tie = TIE_SHARE * spread
    bos_value = (stream.bos @ W_V + b_V) @ W_O
    bos_margin = _bos_query_margin(stream, W_Q, b_Q, W_K, b_K, scale, key_resid, tie, component)

    name = f"head_{layer}_{head}"
    if value is None:
        # Selector width: BOS ties with the selected keys, and the head writes
        # (BOS's value + w x a key's value) / (w + 1) for w selected keys.
        behind = bos_scores[None, :] - scores
        selected = behind <= _width_tie(behind, tie)
        key_value = (stream.base() @ W_V + b_V) @ W_O
        widths = list(range(model.config.max_seq_len + 1))
        embedding = np.stack([(bos_value + w * key_value) / (w + 1) for w in widths])
        output = _variable(name, component, CATEGORICAL, widths, embedding)
        geometry = HeadGeometry(
            scores, bos_scores, key_value[None, :], bos_value, selected, bos_margin
        )
        reading = _head_reading(
            component, query_var, key_var, None, selected, output, "selector_width"
        )
        reading.geometry = geometry
        return reading, embedding, bos_value  # BOS's query selects nothing (checked)

    value_resid, _ = stream.residuals([value])
    values = (value_resid @ W_V + b_V) @ W_O  # [value values, d_model]
    selected = scores > bos_scores[None, :] + tie
    ties = np.abs(scores - bos_scores[None, :]) <= tie
    if ties.any():
        raise UnsupportedCircuit(
            f"{component}: some keys score the same as BOS, so an aggregate would mix "
            "BOS's value into theirs"
        )
    geometry = HeadGeometry(scores, bos_scores, values, bos_value, selected, bos_margin)
    if value.encoding == NUMERICAL:
        output, embedding = _numerical_aggregate(name, component, value, values, bos_value, model)
        reading = _head_reading(component, query_var, key_var, value, selected, output, "aggregate")
        reading.default = 0
    else:
        labels = list(value.values) + [DEFAULT_LABEL]
        embedding = np.concatenate([values, bos_value[None, :]])
        output = _variable(
            name,
            component,
            CATEGORICAL,
            labels,
            embedding,
            free=value.free,
            copies=value,
            null_code=len(labels) - 1,
        )
        reading = _head_reading(component, query_var, key_var, value, selected, output, "aggregate")
        reading.default = DEFAULT_LABEL
    reading.geometry = geometry
    return reading, embedding, bos_value  # BOS's query selects nothing (checked)


def _width_tie(behind: np.ndarray, tie: float) -> float:
    """How far behind BOS a key may score and still tie with it, for a selector width.

    A compiled width head scores its selected keys the same as BOS and the others
    lower; a compiled MLP upstream moves every score a little. When the scores
    behind BOS fall into two clean clusters (the widest gap is 100 times the spread
    of the lower cluster, which holds BOS itself), the tie is the middle of the gap;
    else `tie`. The certificate bounds what the uneven ties do to the output.
    """
    levels = np.unique(np.append(behind.ravel(), 0.0))
    if len(levels) < 2:
        return tie
    gaps = np.diff(levels)
    widest = int(np.argmax(gaps))
    if levels[widest] - levels[0] >= gaps[widest] / 100:
        return tie
    return max(tie, float(levels[widest] + gaps[widest] / 2))


def _head_reading(component, query, key, value, selected, output, kind) -> HeadReading:
    selector = {
        (k, q): bool(selected[k, q])
        for k in range(selected.shape[0])
        for q in range(selected.shape[1])
    }
    return HeadReading(component, query, key, value, selector, 0, output, kind)


def _bos_query_margin(stream, W_Q, b_Q, W_K, b_K, scale, key_resid, tie, component) -> float:
    """How far BOS's own query prefers the BOS key; it must select no other key, else the
    BOS residual depends on the input."""
    query = stream.bos @ W_Q + b_Q
    key_scores = (key_resid @ W_K + b_K) @ query * scale
    bos_score = (stream.bos @ W_K + b_K) @ query * scale
    if (key_scores > bos_score + tie).any():
        raise UnsupportedCircuit(
            f"{component}: the BOS position's query selects keys, so what BOS holds "
            "depends on the input"
        )
    return float(bos_score - key_scores.max(initial=-np.inf))


def _numerical_aggregate(name, component, value, values, bos_value, model):
    """Means of the selected keys' numbers; the head's output is affine in the mean."""
    numbers = np.array([float(v) for v in value.values])
    # The value vectors lie on a line: values[i] = offset + numbers[i] * direction.
    design = np.stack([np.ones_like(numbers), numbers], axis=1)
    coefficients, *_ = np.linalg.lstsq(design, values, rcond=None)
    offset, direction = coefficients
    scale = max(float(np.abs(values).max(initial=0)), 1e-12)
    if np.abs(design @ coefficients - values).max() > READ_TOLERANCE * scale:
        raise UnsupportedCircuit(f"{component}: its values do not lie on a line (not a mean)")
    if np.abs(bos_value - offset).max() > READ_TOLERANCE * scale:
        raise UnsupportedCircuit(f"{component}: selecting nothing does not write the mean 0")
    # The program's values, as tracr's evaluator gives them: one selected key gives its own
    # value, none the default 0, several the float mean (1.0 is not the value 1).
    labels: list = []
    seen = set()
    means = sorted(aggregate_means(value.values, model.config.max_seq_len))
    for label in [*value.values, 0, *means]:
        if (type(label), label) not in seen:
            seen.add((type(label), label))
            labels.append(label)
    embedding = np.stack([offset + float(m) * direction for m in labels])
    output = _variable(name, component, NUMERICAL, labels, embedding)
    return output, embedding


# --------------------------------------------------------------------------
# MLPs.
# --------------------------------------------------------------------------


def _mlp_output(model: Model, layer: int, residual: np.ndarray, units=None) -> np.ndarray:
    """[n, d_model] what the MLP's `units` (all by default) write for residuals [n, d_model]."""
    mlp = model.blocks[layer].mlp
    W_in, b_in, W_out = _array(mlp.W_in), _array(mlp.b_in), _array(mlp.W_out)
    if units is not None:
        W_in, b_in, W_out = W_in[:, units], b_in[units], W_out[units]
    pre = residual @ W_in + b_in
    return _activation(model.config.act_fn, pre) @ W_out


def _activation(name: str, pre: np.ndarray) -> np.ndarray:
    if name == "relu":
        return np.maximum(pre, 0.0)
    from scipy.special import erf

    return 0.5 * pre * (1.0 + erf(pre / np.sqrt(2.0)))


def _read_mlp(model: Model, layer: int, stream: Stream):
    """The MLP's sub-MLPs, each one variable, tabulated on its inputs' cross product.

    Units whose writes overlap are inseparable (write groups). Groups that read the
    same variables and share a later reader (a head's query, key or value, an MLP,
    the unembedding) are one variable: what a reader reads together is one value (a
    categorical map writes one direction per value; a numerical one writes one
    direction at many strengths). Sharing is transitive: a sort key's largest value
    is read by the key side of `<` only and its smallest by the query side only, yet
    both are values of the one key.
    """
    mlp = model.blocks[layer].mlp
    W_in, b_in, W_out = _array(mlp.W_in), _array(mlp.b_in), _array(mlp.W_out)
    live = np.flatnonzero(
        (np.abs(W_out).max(axis=1) > 0) & ((np.abs(W_in).max(axis=0) > 0) | (np.abs(b_in) > 0))
    )
    if not len(live):
        return []
    rows = W_out[live] / np.linalg.norm(W_out[live], axis=1, keepdims=True)
    n_groups, labels = connected_components(np.abs(rows @ rows.T) > WRITE_OVERLAP)
    readers = _later_readers(model, layer)
    groups: list[tuple[tuple[str, ...], set[str], list[int]]] = []
    for g in range(n_groups):
        units = live[labels == g]
        read = variables_read(W_in[:, units], stream.variables)
        basis = orthonormal_row_basis(W_out[units], 1e-4)
        seen_by = tuple(
            name
            for name, reader in readers
            if np.linalg.norm(basis @ reader) > READ_TOLERANCE * max(np.linalg.norm(reader), 1e-12)
        )
        if not seen_by:
            continue  # nothing later reads it: it cannot change the output
        groups.append((tuple(v.name for v in read), set(seen_by), units.tolist()))

    ordered = sorted(_merge_shared_readers(groups).items(), key=lambda item: min(item[1]))
    results = []
    for index, (signature, units) in enumerate(ordered):
        units = sorted(units)
        single = len(ordered) == 1
        component = f"L{layer}.MLP" if single else f"L{layer}.MLP[{index}]"
        name = f"mlp_{layer}" if single else f"mlp_{layer}_{index}"
        read = [v for v in stream.variables if v.name in signature[0]]
        if len(read) > 2:
            raise UnsupportedCircuit(
                f"{component} reads {len(read)} variables; at most two are supported"
            )
        residual, combos = stream.residuals(read)
        points = _mlp_output(model, layer, residual, units)
        output = variable_from_points(name, component, points)
        codes, output.codes = output.codes, np.zeros(0, dtype=np.int64)  # codes per combination
        centres = np.stack([points[codes == c].mean(axis=0) for c in range(len(output.values))])
        output.layer = layer
        table = {tuple(combo): int(code) for combo, code in zip(combos, codes.tolist())}
        results.append((MLPReading(component, read, table, output, np.asarray(units)), centres))
    return results


def _merge_shared_readers(groups) -> dict[tuple, list[int]]:
    """(read variables, readers) -> units: groups reading the same variables are joined
    whenever some reader reads both (the connected components of that relation)."""
    count = len(groups)
    shared = np.array(
        [[a[0] == b[0] and bool(a[1] & b[1]) for b in groups] for a in groups], dtype=bool
    ).reshape(count, count)
    _, labels = connected_components(shared)
    parts: dict[int, tuple[tuple[str, ...], set[str], list[int]]] = {}
    for label, (read, seen_by, units) in zip(labels.tolist(), groups):
        part = parts.setdefault(label, (read, set(), []))
        part[1].update(seen_by)
        part[2].extend(units)
    return {(read, tuple(sorted(seen_by))): units for read, seen_by, units in parts.values()}


def _later_readers(model: Model, layer: int) -> list[tuple[str, np.ndarray]]:
    """Every later component's read weights [d_model, k], named."""
    readers = []
    config = model.config
    for later in range(layer + 1, config.n_layers):
        attn = model.blocks[later].attn
        for head in range(config.n_heads):
            for role, weights in (("Q", attn.W_Q), ("K", attn.W_K), ("V", attn.W_V)):
                readers.append((f"L{later}.H{head}.{role}", _array(weights)[head]))
        readers.append((f"L{later}.MLP", _array(model.blocks[later].mlp.W_in)))
    readers.append(("unembed", _array(model.unembed.W_U)))
    return readers


def output_labels(circuit: Circuit, model: Model) -> dict:
    """Each value of the output variable -> what the model decodes it to."""
    stream = circuit.stream
    output = circuit.output
    residual, combos = stream.residuals([output])
    logits = residual @ _array(model.unembed.W_U) + _array(model.unembed.b_U)
    config = model.config
    labels = {}
    for (code,), row in zip(combos, logits):
        if config.output_kind == NUMERICAL:
            labels[output.values[code]] = clean_number(float(row[0]))
        else:
            import torch

            index = int(model.output_indices(torch.as_tensor(row)[None, None, :])[0, 0])
            labels[output.values[code]] = config.output_values[index]
    return labels
