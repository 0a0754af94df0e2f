"""Variables: the finite-valued quantities a circuit passes between components.

A variable is what one component (the embedding, a head, a sub-MLP) writes into
the residual stream, read off the traces as a label per sample. Categorical
variables take a few distinct points (labels are cluster ids unless their
meaning is known); numerical variables lie on a line through the origin (the
label is the coordinate). `basis` spans the directions in which the variable's
value varies: a component reads the variable when its read weights see them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from distill.circuit.evidence import orthonormal_row_basis
from distill.models.numerics import RESOLUTION

CATEGORICAL = "categorical"
NUMERICAL = "numerical"

# A sample on which a variable has no single value (e.g. a categorical head
# averaging several different values): code -1.
UNDEFINED = -1

# Points closer than this fraction of the largest norm are one value.
CLUSTER_TOLERANCE = 1e-3
# Numbers closer than this fraction of the largest are one value. Far finer: distinct
# numbers can be close (fractions of counts up to a length, their differences), and
# a centre between two of them would be neither.
NUMBER_TOLERANCE = 1e-6
# A reader whose weights see less than this fraction of a variable does not read it.
READ_TOLERANCE = 1e-4


@dataclass
class Variable:
    name: str
    source: str  # the component that writes it: "embed", "L0.H1", "L1.MLP[0]", ...
    encoding: str  # CATEGORICAL | NUMERICAL
    codes: np.ndarray  # [samples] int, index into `values`, UNDEFINED where it has none
    values: list  # the label of each code
    basis: np.ndarray  # [rank, d_model] orthonormal directions of variation
    free: bool  # labels are arbitrary cluster ids that synthesis may rename
    copies: Variable | None = None  # a head output whose labels are those of the value it copies
    null_code: int | None = None  # the value at which the component writes nothing (a zero vector)
    members: np.ndarray | None = None  # an MLP variable's distinct write directions [k, d_model]
    layer: int | None = None  # the layer of the MLP that writes it

    @property
    def nothing_written(self) -> np.ndarray:
        """[samples] bool: where the component wrote nothing (e.g. a head that selected nothing)."""
        if self.null_code is None:
            return np.zeros(len(self.codes), dtype=bool)
        return self.codes == self.null_code

    def labels(self) -> list:
        return [None if c == UNDEFINED else self.values[c] for c in self.codes.tolist()]

    @property
    def defined(self) -> np.ndarray:
        return self.codes != UNDEFINED


def read_strength(reader: np.ndarray, variable: Variable) -> float:
    """How much of the read matrix [d_model, k] falls on the variable's directions (0..1)."""
    if variable.basis.shape[0] == 0:
        return 0.0
    total = np.linalg.norm(reader)
    if total == 0:
        return 0.0
    return float(np.linalg.norm(variable.basis @ reader) / total)


def variables_read(reader: np.ndarray, candidates: list[Variable]) -> list[Variable]:
    return [v for v in candidates if read_strength(reader, v) > READ_TOLERANCE]


def cluster_points(
    points: np.ndarray, tolerance: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Group rows of `points` [n, d] that coincide; return (codes [n], centres [k, d]).

    Centres are ordered by first occurrence, so codes are deterministic.
    """
    if len(points) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros((0, points.shape[1]))
    scale = float(np.abs(points).max())
    tolerance = (tolerance if tolerance is not None else CLUSTER_TOLERANCE) * max(scale, 1e-12)
    grid = np.round(points / tolerance).astype(np.int64)
    # One int64 key per row (a random linear hash; wrap-around is harmless) sorts far
    # faster than unique rows.
    weights = np.random.default_rng(0).integers(1, 2**61, size=grid.shape[1], dtype=np.int64)
    _, first, inverse = np.unique(grid @ weights, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    # Neighbouring grid cells can split one value; merge cells whose points are close.
    reps = points[first]
    parent = list(range(len(reps)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    if len(reps) < 2000:
        distances = np.linalg.norm(reps[:, None, :] - reps[None, :, :], axis=-1)
        for i, j in zip(*np.nonzero(np.triu(distances < 3 * tolerance, k=1))):
            parent[find(i)] = find(j)
    roots = np.array([find(i) for i in range(len(reps))])
    merged = roots[inverse]
    # Renumber by first occurrence.
    renumber: dict[int, int] = {}
    for root in merged.tolist():
        renumber.setdefault(root, len(renumber))
    codes = np.array([renumber[root] for root in merged.tolist()], dtype=np.int64)
    centres = np.stack([points[codes == k].mean(axis=0) for k in range(len(renumber))])
    return codes, centres


def variable_from_points(
    name: str, source: str, points: np.ndarray, defined: np.ndarray | None = None
) -> Variable:
    """A variable from the points [samples, d_model] a component writes.

    Collinear points through the origin (rank 1) with several values make a
    numerical variable labelled by its coordinate; anything else is categorical
    with free cluster-id labels.
    """
    if defined is None:
        defined = np.ones(len(points), dtype=bool)
    codes = np.full(len(points), UNDEFINED, dtype=np.int64)
    sub_codes, centres = cluster_points(points[defined])
    codes[defined] = sub_codes
    norms = np.linalg.norm(centres, axis=1) if len(centres) else np.zeros(0)
    zero = np.flatnonzero(norms <= CLUSTER_TOLERANCE * max(float(norms.max(initial=0)), 1e-12))
    null_code = int(zero[0]) if len(zero) else None
    raw_basis = orthonormal_row_basis(centres, tolerance=1e-4) if len(centres) else centres
    variation = orthonormal_row_basis(centres - centres.mean(axis=0), tolerance=1e-4)
    if raw_basis.shape[0] == 1 and len(centres) >= 2:
        direction = raw_basis[0]
        if (centres @ direction).max() < -(centres @ direction).min():
            direction = -direction
        # Coded again along the line, at the finer tolerance numbers need.
        sub_codes, coordinates = cluster_points(
            points[defined] @ direction[:, None], NUMBER_TOLERANCE
        )
        codes[defined] = sub_codes
        coordinates = coordinates[:, 0]
        zero = np.flatnonzero(np.abs(coordinates) <= NUMBER_TOLERANCE * np.abs(coordinates).max())
        null_code = int(zero[0]) if len(zero) else None
        values = [clean_number(c) for c in coordinates]
        return Variable(
            name, source, NUMERICAL, codes, values, variation, free=False, null_code=null_code
        )
    return Variable(
        name,
        source,
        CATEGORICAL,
        codes,
        list(range(len(centres))),
        variation,
        free=True,
        null_code=null_code,
    )


def clean_number(x: float):
    """Snap a coordinate read off float weights to the simple number it stands for."""
    for denominator in range(1, 41):
        numerator = round(x * denominator)
        if abs(numerator / denominator - x) < RESOLUTION:
            value = numerator / denominator
            return int(value) if denominator == 1 or value == int(value) else value
    return float(x)
