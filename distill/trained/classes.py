"""Classes of what a head reads at its keys: the natural clusters of its key and value vectors.

A head past the first layer reads, at each key, a vector that depends on everything
computed there. Grouped by the values of the program's variables at the key, the vectors
form a few tight clusters when the head reads a discrete property (e.g. "the depth is
negative"). Clusters are cut from the minimum spanning tree of the group means at its
largest relative gap (single linkage), so no threshold is tuned per model; the result is
checked downstream like every other variable.
"""

from __future__ import annotations

import numpy as np

MAX_CLASSES = 8
# A cut is kept only when the edges it removes are this many times longer than the longest
# edge it keeps: the clusters must stand apart, not be a slice of a continuum.
MIN_GAP_RATIO = 4.0


def spanning_tree_edges(points: np.ndarray) -> list[tuple[float, int, int]]:
    """(length, i, j) of the minimum spanning tree of `points` (Prim's algorithm)."""
    n = len(points)
    if n < 2:
        return []
    squares = (points**2).sum(-1)

    # From point i to all, a row at a time: the n x n (x d) arrays are too big.
    def distance(i: int) -> np.ndarray:
        return np.sqrt(np.maximum(squares + squares[i] - 2 * points @ points[i], 0.0))

    inside = np.zeros(n, dtype=bool)
    inside[0] = True
    best = distance(0)
    parent = np.zeros(n, dtype=np.int64)
    edges = []
    for _ in range(n - 1):
        candidates = np.where(inside, np.inf, best)
        j = int(candidates.argmin())
        edges.append((float(best[j]), int(parent[j]), j))
        inside[j] = True
        from_j = distance(j)
        closer = from_j < best
        best = np.where(closer, from_j, best)
        parent = np.where(closer, j, parent)
    return edges


def natural_classes(points: np.ndarray) -> np.ndarray | None:
    """A class label per point (0..k-1, k in 2..MAX_CLASSES), or None without clear clusters."""
    edges = sorted(spanning_tree_edges(points))
    if not edges:
        return None
    lengths = np.array([e[0] for e in edges])
    best = None
    for k in range(2, min(MAX_CLASSES, len(points)) + 1):
        kept, cut = lengths[: len(lengths) - (k - 1)], lengths[len(lengths) - (k - 1)]
        longest_kept = kept.max() if len(kept) else 0.0
        ratio = cut / max(longest_kept, 1e-12)
        if ratio >= MIN_GAP_RATIO and (best is None or ratio > best[0]):
            best = (ratio, k)
    if best is None:
        return None
    k = best[1]
    parent = list(range(len(points)))

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for _, i, j in edges[: len(edges) - (k - 1)]:
        parent[root(i)] = root(j)
    roots = [root(i) for i in range(len(points))]
    order = {r: n for n, r in enumerate(dict.fromkeys(roots))}
    return np.array([order[r] for r in roots], dtype=np.int64)
