"""certified(n): the network computes its table program on every input up to length n.

Shown without enumerating inputs, by induction over the layers (DESIGN.md,
Verification levels). The claim at each layer: at every position of every
input of length 1..n (under the precondition), the residual stream is within ε
of the *ideal* residual, the sum of its variables' embeddings (what
`distill.circuit.from_weights` tabulated). Each component then keeps it so:

- a head: its query and key differ from the tabulated ones by at most the
  incoming ε through W_Q, W_K, plus what it sees of the variables it does not
  read; so each score moves by at most δ. For every query value, selected keys
  must beat BOS and unselected ones must lose to it by more than 2δ; the weight
  left on the wrong keys (up to n of them) is then at most e^-(margin - 2δ)
  each, and the head's output moves by that weight times the spread of its
  values, plus the incoming ε through W_V W_O;
- an MLP: on every combination of its input values, units on (or off) over the
  whole perturbation form one linear map, bounded by its spectral norm; units
  whose pre-activation the perturbation can cross count in full (interval);
  the tabulated value's point is added as the clustering error;
- the read-out: every output value's logits decode the same way when each moves
  by at most the final bound (argmax with the ties rule, or a number within the
  resolution).

The error each component adds lies in the space it writes (the row space of
its W_O, or of its units' W_out: its tabulated values lie there too), so the
bound is kept per writer (`Errors`): a reader sees a writer's error only
through its weights restricted to that space. In a tracr model a component's
error then reaches only the components that read its variable, rather than
compounding through every later layer.

Bounds come from the weights only (norms, margins), never from samples. When a
condition fails, the certificate names it and where; the level then falls back.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from distill.circuit.discovery import Circuit
from distill.circuit.from_weights import _activation, _array, _mlp_output, output_labels
from distill.models.family import Model
from distill.models.numerics import RESOLUTION


@dataclass
class ComponentBound:
    component: str
    checked: int  # combinations (or query x key pairs) checked
    margin: float  # the worst margin met (score gap, or decoding gap)
    bound: float  # how far its output may be from the tabulated value
    failed: str = ""  # the condition that failed, if any
    note: str = ""  # conditions set aside, and why


@dataclass
class Certificate:
    max_seq_len: int
    components: list[ComponentBound] = field(default_factory=list)

    @property
    def holds(self) -> bool:
        return not any(c.failed for c in self.components)

    @property
    def failure(self) -> str:
        return "; ".join(f"{c.component}: {c.failed}" for c in self.components if c.failed)


class Errors:
    """How far the residual may be from the ideal one, per writer (module doc).

    A writer's deviation is `c @ M` for its output matrix M (W_O of a head, W_out of
    its units) and some coefficients c, with norm at most `bound`. Split along M's row
    space: the part in its leading directions B is seen by `weights` as at most
    bound x ||B^T weights||; the part in its negligible directions (singular values
    at most sigma_tail) has norm at most ||c|| sigma_tail, with `coefficients` a (crude)
    bound on ||c||. Every deviation so far also has norm at most `total`.
    """

    def __init__(self):
        # (B, bound, tail norm bound, per value): per value is None, or (variable, bounds
        # per code) for a writer whose bound depends on the value it writes, which a
        # reader of that variable knows at each combination it checks.
        self.writers: list[tuple[np.ndarray, float, float, tuple | None]] = []
        self.total = 0.0

    def add(self, writes: np.ndarray, bound: float, coefficients: float, per_value=None) -> None:
        """A writer of deviation `c @ writes` ([k, d_model]), norm <= bound, ||c|| <= coefficients;
        per_value: (variable name, [codes] bounds <= bound) where the value is known."""
        self.total += bound
        if bound == 0.0:
            return
        if not math.isfinite(bound):
            self.writers.append((np.eye(writes.shape[1]), bound, 0.0, None))
            return
        basis, tail = _leading_row_space(writes)
        self.writers.append((basis, bound, min(coefficients * tail, bound), per_value))

    def valued(self, names: set[str]) -> list[str]:
        """The variables among `names` whose writer has bounds per value."""
        return [w[3][0] for w in self.writers if w[3] is not None and w[3][0] in names]

    @staticmethod
    def _bound(bound: float, per_value, at: dict | None) -> float:
        if per_value is None or not at or per_value[0] not in at:
            return bound
        return float(per_value[1][at[per_value[0]]])

    def through(self, weights: np.ndarray, at: dict | None = None) -> float:
        """Bound on the norm of (deviation @ weights); `at`: variable -> code, where known."""
        total, norm = 0.0, None
        for basis, bound, tail, per_value in self.writers:
            if math.isinf(bound):  # its basis is the identity: seen unless weights are zero
                total += math.inf if np.any(weights) else 0.0
                continue
            total += _times(self._bound(bound, per_value, at), _norm(basis.T @ weights))
            if tail:
                norm = _norm(weights) if norm is None else norm
                total += tail * norm
        return total

    def per_column(self, weights: np.ndarray, at: dict | None = None) -> np.ndarray:
        """Bound on each entry of (deviation @ weights); `at` as for `through`."""
        columns = np.linalg.norm(weights, axis=0)
        total = np.zeros(weights.shape[1])
        for basis, bound, tail, per_value in self.writers:
            seen = np.linalg.norm(basis.T @ weights, axis=0)
            bound = self._bound(bound, per_value, at)
            total += np.where(seen > 0, bound * seen, 0.0) + tail * columns
        return total


def _times(bound: float, seen: float) -> float:
    """bound x seen, where weights that see nothing see nothing of an infinite bound."""
    return bound * seen if seen > 0 else 0.0


def _leading_row_space(writes: np.ndarray) -> tuple[np.ndarray, float]:
    """[d_model, r] an orthonormal basis of the row space of `writes` [k, d_model], without
    directions whose singular value is negligible, and the largest singular value left out."""
    if not writes.size:
        return np.zeros((writes.shape[-1], 0)), 0.0
    _, singular, vt = np.linalg.svd(writes, full_matrices=False)
    # The cut is for speed only: what it leaves out is bounded by `tail` (Errors.add).
    keep = singular > singular[0] * 1e-9
    tail = float(singular[~keep].max(initial=0.0))
    return vt[keep].T, tail


def certify(network: Circuit, model: Model, reachable=None) -> Certificate:
    """Check the conditions of the module doc on `network` (read off `model`'s weights).

    `reachable(label)`, when given, says whether some input can give the output variable
    that value (a proof, e.g. Z3's); a value no input reaches needs no decoding margin.
    """
    n = model.config.max_seq_len
    stream = network.stream
    certificate = Certificate(n)
    errors, errors_bos = Errors(), Errors()  # at non-BOS positions; at the BOS position
    readings = sorted(network.heads + network.mlps, key=lambda r: network.variables.index(r.output))
    by_layer: dict[int, list] = {}
    for reading in readings:
        by_layer.setdefault(int(reading.component.split(".")[0][1:]), []).append(reading)
    known = {"tokens", "indices"}
    config = model.config
    bos = _array(model.embed.W_E)[config.bos_id] + _array(model.pos_embed.W_pos)[0]
    ideal_reach = _ideal_reach(model, stream)

    def reach() -> float:
        """Any residual of the layer at hand has at most this norm (for coefficient bounds)."""
        return max(ideal_reach, float(np.linalg.norm(bos))) + max(errors.total, errors_bos.total)

    for layer in range(model.config.n_layers):
        heads = [r for r in by_layer.get(layer, []) if hasattr(r, "selector")]
        mlps = [r for r in by_layer.get(layer, []) if not hasattr(r, "selector")]
        attn, mlp = model.blocks[layer].attn, model.blocks[layer].mlp
        written = []
        for reading in heads:
            bound, bos_bound, per_value = _head_bound(
                reading, model, stream, known, errors, errors_bos, n
            )
            certificate.components.append(bound)
            head = int(reading.component.split(".")[1][1:])
            coefficients = 2 * _norm(_array(attn.W_V)[head]) * reach()
            written.append(
                (_array(attn.W_O)[head], bound.bound, bos_bound, coefficients, per_value)
            )
        for writes, bound, bos_bound, coefficients, per_value in written:
            errors.add(writes, bound, coefficients, per_value)
            errors_bos.add(writes, bos_bound, coefficients)
        known |= {r.output.name for r in heads}
        mlp_reach = reach()
        written = []
        for reading in mlps:
            bound = _mlp_bound(reading, model, stream, known, errors)
            certificate.components.append(bound)
            units = reading.units
            written.append(
                (_array(mlp.W_out)[units], bound.bound, _mlp_coefficients(mlp, units, mlp_reach))
            )
        for writes, bound, coefficients in written:
            errors.add(writes, bound, coefficients)
        known |= {r.output.name for r in mlps}
        # What BOS holds before this MLP: its heads' BOS outputs (each attends to BOS).
        bos = bos + sum(r.geometry.bos_value for r in heads) + _array(attn.b_O)
        errors_bos.add(
            _array(mlp.W_out),
            _bos_mlp_bound(model, layer, bos, errors_bos),
            _mlp_coefficients(mlp, slice(None), mlp_reach),
        )
        bos = bos + _mlp_output(model, layer, bos[None, :])[0] + _array(mlp.b_out)
    certificate.components.append(_readout_bound(network, model, stream, known, errors, reachable))
    return certificate


def _ideal_reach(model, stream) -> float:
    """A bound on the norm of any ideal residual at a non-BOS position: every variable's
    largest embedding and every bias, whichever subset a layer holds."""
    total = sum(
        float(np.linalg.norm(t, axis=-1).max(initial=0.0)) for t in stream.embeddings.values()
    )
    for block in model.blocks:
        total += float(
            np.linalg.norm(_array(block.attn.b_O)) + np.linalg.norm(_array(block.mlp.b_out))
        )
    return total


def _mlp_coefficients(mlp, units, reach: float) -> float:
    """A bound on how far the activations of `units` may be from any other activations
    they take on residuals of norm at most `reach` (ReLU and GELU: |act(x)| <= |x|)."""
    W_in, b_in = _array(mlp.W_in)[:, units], _array(mlp.b_in)[units]
    return 2 * (_norm(W_in) * reach + float(np.linalg.norm(b_in)))


def _norm(matrix: np.ndarray) -> float:
    """The spectral norm: from the eigenvalues of the smaller Gram matrix of a large
    matrix (its singular values squared; an SVD costs several times more)."""
    if not matrix.size:
        return 0.0
    if min(matrix.shape) < 64:
        return float(np.linalg.norm(matrix, 2))
    gram = matrix @ matrix.T if matrix.shape[0] <= matrix.shape[1] else matrix.T @ matrix
    return math.sqrt(max(float(np.linalg.eigvalsh(gram)[-1]), 0.0))


def _unread_leak(stream, known: set[str], read: set[str], weights: np.ndarray) -> float:
    """How far what `weights` see can move with the variables it is taken not to read."""
    total = 0.0
    for variable in stream.variables:
        if variable.name not in known or variable.name in read:
            continue
        table = stream.embeddings[variable.name]
        seen = (table - table.mean(axis=0)) @ weights
        total += float(np.linalg.norm(seen, axis=-1).max(initial=0.0))
    return total


def _head_bound(reading, model, stream, known, errors, errors_bos, n) -> ComponentBound:
    layer, head = (int(part[1:]) for part in reading.component.split("."))
    attn = model.blocks[layer].attn
    W_Q, W_K, W_V, W_O = (_array(w)[head] for w in (attn.W_Q, attn.W_K, attn.W_V, attn.W_O))
    g = reading.geometry
    read_q = {reading.query.name} if reading.query is not None else set()
    read_k = {reading.key.name} if reading.key is not None else set()
    read_v = {reading.value.name} if reading.value is not None else set()
    delta_q = _worst(errors, errors_bos, W_Q) + _unread_leak(stream, known, read_q, W_Q)
    delta_k = _worst(errors, errors_bos, W_K) + _unread_leak(stream, known, read_k, W_K)
    q_norm = max(float(np.linalg.norm(stream.bos @ W_Q)), 1e-300)
    q_norm = max(q_norm, _max_row_norm(stream, reading.query, W_Q))
    k_norm = max(float(np.linalg.norm(stream.bos @ W_K)), _max_row_norm(stream, reading.key, W_K))
    delta = attn.scale * (q_norm * delta_k + k_norm * delta_q + delta_q * delta_k)

    gaps = g.scores - g.bos_scores[None, :]  # [key values, query values]
    selected = g.selected
    if reading.kind == "selector_width":
        wrong = np.where(selected, np.inf, -gaps)  # unselected keys lose to BOS by this
        margin = float(wrong.min(initial=np.inf))
        spread_in = float(np.where(selected, np.abs(gaps), 0).max(initial=0.0))
        uneven = _expm1(2 * delta + 2 * spread_in)
    else:
        above = np.where(selected, gaps, np.inf).min(axis=0)  # selected beat BOS by
        below = np.where(selected, np.inf, -gaps).min(axis=0)  # unselected lose to BOS by
        hi = np.where(selected, g.scores, -np.inf).max(axis=0)
        lo = np.where(selected, g.scores, np.inf).min(axis=0)
        spread_in = float(np.nan_to_num(hi - lo, neginf=0.0, posinf=0.0).max(initial=0.0))
        margin = float(min(above.min(initial=np.inf), below.min(initial=np.inf)))
        uneven = _expm1(2 * delta + spread_in) if reading.value is not None else 0.0
    # BOS's own row attends to BOS itself, ahead of every key by bos_query_margin: that
    # bounds what BOS holds; the other rows bound every other position.
    checked = int(selected.size)
    worst_margin = min(margin, g.bos_query_margin)
    if not worst_margin > 2 * delta:
        row = "BOS's own query" if g.bos_query_margin < margin else "a score"
        return (
            ComponentBound(
                reading.component,
                checked,
                worst_margin,
                math.inf,
                f"{row} margin of {worst_margin:.3g} does not exceed twice the score bound {delta:.3g}",
            ),
            math.inf,
            None,
        )
    values = np.concatenate([g.values, g.bos_value[None, :]])
    spread = float(np.linalg.norm(values[:, None, :] - values[None, :, :], axis=-1).max())
    W_OV = W_V @ W_O
    through = _worst(errors, errors_bos, W_OV) + _unread_leak(stream, known, read_v, W_OV)
    numerical = reading.kind == "selector_width" or reading.output.encoding == "numerical"
    bound = _leak(n, margin, delta) * spread + through + (uneven * spread if numerical else 0.0)
    bos_bound = _leak(n, g.bos_query_margin, delta) * spread + errors_bos.through(W_OV)
    per_value = None
    if reading.kind == "selector_width":
        # Every non-BOS key holds the one key value v_K, so the head writes
        # a v_BOS + (1 - a) v_K for BOS's weight a, and w selected keys make the ideal
        # a* = 1 / (w + 1). Scores within delta (selected keys within spread_in of BOS,
        # up to n others losing by margin) keep |a - a*| <= a* (uneven + x): the error
        # shrinks as 1 / (w + 1), as the gaps between the values a width MLP tells
        # apart do (1/(w+1) - 1/(w+2)).
        x = n * math.exp(min(-(margin - 2 * delta), 700.0))
        widths = np.asarray(reading.output.values, dtype=float)
        per_value = (
            reading.output.name,
            np.minimum((uneven + x) / (widths + 1) * spread + through, bound),
        )
    return ComponentBound(reading.component, checked, worst_margin, bound), bos_bound, per_value


def _worst(errors: Errors, errors_bos: Errors, weights: np.ndarray) -> float:
    """What `weights` see of the deviation at the worse of a non-BOS and the BOS position."""
    return max(errors.through(weights), errors_bos.through(weights))


def _expm1(x: float) -> float:
    """e^x - 1, infinite past what a float holds (a bound too loose to certify anything)."""
    return math.expm1(x) if x < 700 else math.inf


def _leak(n: int, margin: float, delta: float) -> float:
    """The attention weight left on the wrong keys: at most n of them (BOS and the keys a
    query does not select, or every key when it selects none), each losing to the right
    ones by at least margin - 2 delta, so x = n e^-(margin - 2 delta) against at least 1."""
    x = n * math.exp(min(-(margin - 2 * delta), 700.0))
    return x / (1 + x)


def _max_row_norm(stream, variable, weights) -> float:
    if variable is None:
        return float(np.linalg.norm(stream.base() @ weights))
    residual, _ = stream.residuals([variable])
    return float(np.linalg.norm(residual @ weights, axis=-1).max(initial=0.0))


def _mlp_bound(reading, model, stream, known, errors: Errors) -> ComponentBound:
    layer = int(reading.component.split(".")[0][1:])
    mlp = model.blocks[layer].mlp
    units = reading.units
    W_in, b_in, W_out = (
        _array(mlp.W_in)[:, units],
        _array(mlp.b_in)[units],
        _array(mlp.W_out)[units],
    )
    read = {v.name for v in reading.inputs}
    residual, combos = stream.residuals(reading.inputs)
    pre = residual @ W_in + b_in
    leak = _per_unit_leak(stream, known, read, W_in)
    points = _activation(model.config.act_fn, pre) @ W_out
    centres = stream.embeddings[reading.output.name]
    codes = np.array([reading.table[tuple(c)] for c in combos])
    clustering = float(np.linalg.norm(points - centres[codes], axis=-1).max(initial=0.0))
    if model.config.act_fn != "relu":
        return ComponentBound(
            reading.component, len(combos), 0.0, math.inf, "only ReLU MLPs are certified"
        )

    # Inputs whose writer's bound depends on their value (a width head): the rows are
    # checked per value of those inputs, each with its own bound.
    valued = errors.valued(read)
    positions = [i for i, v in enumerate(reading.inputs) if v.name in valued]
    groups: dict[tuple, list[int]] = {}
    for row, combo in enumerate(combos):
        groups.setdefault(tuple(combo[i] for i in positions), []).append(row)
    worst, margin = 0.0, math.inf
    for codes_at, rows in groups.items():
        at = {reading.inputs[i].name: code for i, code in zip(positions, codes_at)}
        radius = errors.per_column(W_in, at) + leak

        def sees(linear: np.ndarray, at=at) -> float:
            """How far `linear` moves with the deviation and the variables not read."""
            return errors.through(linear, at) + _unread_leak(stream, known, read, linear)

        cache: dict = {}
        for row in pre[rows]:
            worst = max(worst, _relu_bound(row, radius, W_in, W_out, sees, cache))
        margin = min(margin, float(np.min(np.abs(pre[rows]) - radius[None, :], initial=np.inf)))
    return ComponentBound(reading.component, len(combos), margin, worst + clustering)


def _per_unit_leak(stream, known, read, W_in) -> np.ndarray:
    total = np.zeros(W_in.shape[1])
    for variable in stream.variables:
        if variable.name not in known or variable.name in read:
            continue
        table = stream.embeddings[variable.name]
        total += np.abs((table - table.mean(axis=0)) @ W_in).max(axis=0)
    return total


# Up to this many units whose state the deviation can change are bounded exactly (every
# on/off choice, 2^k linear maps); past it each counts in full.
EXACT_CROSSINGS = 6


def _relu_bound(pre: np.ndarray, radius: np.ndarray, W_in, W_out, sees, cache: dict) -> float:
    """How far ReLU units at pre-activations `pre` [units] move their output when each
    pre-activation moves by at most `radius`; `sees(linear)` bounds what a linear map
    makes of the input's deviation.

    relu(p + d) - relu(p) = s d for some s in [0, 1]: 1 for units on throughout, 0 for
    units off throughout, anything between for units the move can switch (`crossing`).
    The output's deviation is linear in s, so its largest norm is at a vertex: a choice
    of crossing units that act as on, with the on units one linear map (tracr's paired
    units cancel there)."""
    on = pre - radius > 0
    crossing = np.flatnonzero(np.abs(pre) <= radius)

    def through(units: np.ndarray) -> float:
        key = units.tobytes()
        if key not in cache:
            cache[key] = sees(W_in[:, units] @ W_out[units])
        return cache[key]

    if len(crossing) <= EXACT_CROSSINGS:
        worst = 0.0
        for chosen in itertools.product((False, True), repeat=len(crossing)):
            units = on.copy()
            units[crossing] = chosen
            worst = max(worst, through(units))
        return worst
    return through(on) + float(
        (np.abs(pre[crossing]) + radius[crossing]) @ np.linalg.norm(W_out[crossing], axis=1)
    )


def _bos_mlp_bound(model, layer: int, bos: np.ndarray, errors_bos: Errors) -> float:
    """The MLP's move at the BOS position, whose residual is the single point `bos`."""
    mlp = model.blocks[layer].mlp
    W_in, b_in, W_out = _array(mlp.W_in), _array(mlp.b_in), _array(mlp.W_out)
    if model.config.act_fn != "relu":
        return math.inf
    radius = errors_bos.per_column(W_in)
    return _relu_bound(bos @ W_in + b_in, radius, W_in, W_out, errors_bos.through, {})


def _readout_bound(network, model, stream, known, errors, reachable) -> ComponentBound:
    W_U, b_U = _array(model.unembed.W_U), _array(model.unembed.b_U)
    output = network.output
    delta = errors.through(W_U) + _unread_leak(stream, known, {output.name}, W_U)
    residual, _ = stream.residuals([output])
    logits = residual @ W_U + b_U
    if model.config.output_kind == "numerical":
        # A value's own number is a coordinate inside the network (its sign and scale are
        # the writer's); what the program outputs for it is its label, the number it
        # decodes to, and the logit must stay within the resolution of that.
        named = output_labels(network, model)
        labels = np.array([float(named[value]) for value in output.values])
        error = np.abs(logits[:, 0] - labels)
        margin = float(RESOLUTION - np.max(error, initial=0.0) - delta)
        failed = "" if margin > 0 else "a numerical output is not within the resolution"
        return ComponentBound("unembed", len(labels), margin, delta, failed)
    margins, unreachable = [], []
    for code, row in enumerate(logits):
        # The ties rule decodes the first value within RESOLUTION of the maximum: that value
        # must stay within it, and every earlier value out of it, with each logit moved by delta.
        top = row.max()
        chosen = int(np.argmax(row >= top - RESOLUTION))
        others = np.delete(row, chosen)
        stays = row[chosen] - others.max(initial=-np.inf) + RESOLUTION
        earlier_out = np.min(top - RESOLUTION - row[:chosen], initial=np.inf)
        margin = min(stays, earlier_out)
        label = output.values[code]
        if margin <= 2 * delta and reachable is not None and not reachable(label):
            unreachable.append(label)
            continue
        margins.append(margin)
    decoding = float(min(margins, default=np.inf))
    margin = decoding - 2 * delta
    failed = (
        ""
        if margin > 0
        else f"a decoding margin of {decoding:.3g} does not exceed twice the logit "
        f"bound {delta:.3g}"
    )
    note = (
        f"no input reaches {', '.join(map(repr, unreachable))} (proved): its decoding is not needed"
        if unreachable
        else ""
    )
    return ComponentBound("unembed", len(logits), margin, delta, failed, note)
