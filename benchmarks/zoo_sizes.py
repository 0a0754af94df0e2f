"""Compressed tracr models of the zoo: the distilled program's size against its source's.

    python benchmarks/zoo_sizes.py --zoo ZOO_DIR

Each compressed model (benchmarks/zoo.py's COMPRESSED) is distilled by `distill run` in a
process of its own; operations (map, sequence_map, aggregate, selector_width, select and
its combinations, full) are counted in program.rasp and in the tracr source in examples/.
The issue-13 target is a ratio of at most 1.5.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import zoo  # noqa: E402

import dsl  # noqa: E402
from dsl import ast  # noqa: E402

OPERATIONS = (ast.Map, ast.SequenceMap, ast.Aggregate, ast.SelectorWidth, ast.Select,
              ast.SelectAnd, ast.SelectOr, ast.SelectNot, ast.Full)  # fmt: skip


def operations(program: ast.Program) -> int:
    def count(node) -> int:
        own = isinstance(node, OPERATIONS)
        return own + sum(count(c) for c in getattr(node, "children", ()) if isinstance(c, ast.Node))

    return sum(count(d.node) for d in program.definitions) + count(program.output)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zoo", type=Path, required=True)
    args = parser.parse_args(argv)
    print("| model | source | source operations | distilled operations | ratio |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as scratch:
        for name, (source, _, _) in zoo.COMPRESSED.items():
            path = args.zoo / f"{name}.safetensors"
            if not path.exists():
                path = args.zoo / "compressed" / f"{name}.safetensors"
            out = Path(scratch) / name
            done = subprocess.run(
                [sys.executable, "-m", "distill.cli", "run", str(path), "-o", str(out), "--quiet"],
                capture_output=True,
                text=True,
            )
            own = operations(dsl.parse((ROOT / "examples" / source).read_text()))
            if not (out / "program.rasp").exists():
                print(f"| {name} | {source} | {own} | exit {done.returncode} | |")
                continue
            got = operations(dsl.parse((out / "program.rasp").read_text()))
            print(f"| {name} | {source} | {own} | {got} | {got / own:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
