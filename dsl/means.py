"""The values a numerical aggregate can take: means of the values it selects."""

from __future__ import annotations

from collections.abc import Iterable

# Aggregate means are enumerated exactly (every multiset of selected values)
# up to this many distinct sums per count; beyond it the bridge gives up on
# the means, which only a categorical aggregate of several numbers produces.
MAX_MEAN_SUMS = 20_000


def aggregate_means(values: Iterable, max_seq_len: int) -> set:
    """Every mean tracr's aggregate can give when it selects 2..max_seq_len of `values`."""
    numbers = {v for v in values if isinstance(v, (int, bool, float))}
    means: set = set()
    sums = set(numbers)
    for count in range(2, max_seq_len + 1):
        sums = {total + v for total in sums for v in numbers}
        if len(sums) > MAX_MEAN_SUMS:
            break
        means |= {total / count for total in sums}
    return means
