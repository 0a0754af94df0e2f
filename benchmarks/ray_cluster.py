"""A simulated multi-node Ray cluster runs the bench and prints the in-process table.

Starts NODES Ray nodes on this machine with Ray's own cluster utilities
(`ray.cluster_utils.Cluster`: a head and NODES-1 more, each its own raylet and
object store with 1 CPU, all on loopback), joins it the way a user joins a real
cluster (`RayExecutor(address=...)`, what `distill bench --ray ADDRESS` does),
runs the bench rows of the cases given (default: SMALL_CASES, seeds 0 and 1) on
it and in-process, and compares the rows (timings aside). Prints which node ran
each row and exits 1 if a row differs or fewer than two nodes took part.

    .venv/bin/python benchmarks/ray_cluster.py [--nodes 4] [CASE ...]

On a real cluster the same comes from `ray start --head` on one machine,
`ray start --address=HEAD:6379` on the others, and `distill bench --ray HEAD:6379`.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from distill.executor import RayExecutor  # noqa: E402
from distill.groundtruth.bench import COLUMNS, TIMING_COLUMNS, BenchOptions, bench_case  # noqa: E402

SMALL_CASES = ("length_categorical_1", "make_nary_sequencemap_2", "detect_pattern_ab", "hist")


def on_node(options: BenchOptions, task: tuple[str, int]):
    """(the id of the node that ran it, the bench row of task)."""
    import ray

    return ray.get_runtime_context().get_node_id(), bench_case(options, task)


def untimed(row):
    timed = {COLUMNS.index(column) for column in TIMING_COLUMNS}
    cells = tuple("" if i in timed else cell for i, cell in enumerate(row.cells))
    log = re.sub(r"\d+\.\d+ s", "_ s", row.log or "")
    return dataclasses.replace(row, cells=cells, log=log, ratio=None, warm_ratio=None)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="*", metavar="CASE", default=list(SMALL_CASES))
    parser.add_argument("--nodes", type=int, default=4)
    args = parser.parse_args(argv)
    from ray.cluster_utils import Cluster

    tasks = [(name, seed) for name in args.cases for seed in (0, 1)]
    options = BenchOptions(prove=False)
    started = time.perf_counter()
    here = [bench_case(options, task) for task in tasks]
    in_process = time.perf_counter() - started
    # The nodes' processes import this checkout, as every node of a real cluster must.
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])
    )
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "include_dashboard": False},
    )
    try:
        for _ in range(args.nodes - 1):
            cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        started = time.perf_counter()
        with RayExecutor(address=cluster.address) as executor:
            print(f"joined {executor.description}")
            there = list(executor.map(functools.partial(on_node, options), tasks))
        on_cluster = time.perf_counter() - started
    finally:
        cluster.shutdown()
    nodes = sorted({node for node, _ in there})
    differ = 0
    for (node, row), mine in zip(there, here):
        same = untimed(row) == untimed(mine)
        differ += not same
        print(f"{row.cells[0]:28s} seed {row.cells[1]}  node {nodes.index(node) + 1}  "
              f"{'same' if same else 'DIFFERS'}  {row.cells[8]}")  # fmt: skip
    print(f"{len(tasks)} rows on {len(nodes)} of {args.nodes} nodes: {differ} differ; "
          f"in-process {in_process:.1f} s, on the cluster {on_cluster:.1f} s (joining included)")  # fmt: skip
    return 1 if differ or len(nodes) < 2 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
