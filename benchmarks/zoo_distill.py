"""`distill run` over the zoo (benchmarks/zoo.py's output): the issue-13 table.

    python benchmarks/zoo_distill.py --zoo ZOO_DIR [--only NAME ...] [--out table.md]

Each model is distilled by `distill run` in a process of its own, timed whole (start to
exit), beside the time its training (or compression) took, from the zoo's row. Per model:
the verdict (the length N up to which the program equals the model on every input),
sampled agreement beyond N, the program's size (definitions) and tables left, the
intervention figures of every credited component, and whether the model itself is right
on every input up to N (from its exhaustive accuracy record), which is what the 90%
target counts over. Rows are printed as they finish; the summary comes last.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _models(zoo: Path, only: list[str]) -> list[Path]:
    compressed = sorted((zoo / "compressed").glob("*.safetensors"))
    names = {p.name for p in compressed}  # a copy at the top level is the same model
    paths = [p for p in sorted(zoo.glob("*.safetensors")) if p.name not in names] + compressed
    paths = [p for p in paths if not p.name.endswith(".hf.safetensors")]
    return [p for p in paths if not only or p.stem in only]


def _row(path: Path) -> dict:
    row_file = path.with_name(path.stem + ".row.json")
    return json.loads(row_file.read_text()) if row_file.exists() else {}


def _right_up_to(path: Path, row: dict) -> int | None:
    """The length up to which the model is right on every input (exhaustive record)."""
    if "correct_up_to" in row:
        return row["correct_up_to"]
    if row.get("agrees"):  # a compressed model: equal to its compiled source on every input
        return row.get("max_len")
    return None


def _exhaustive_up_to(path: Path) -> int:
    from distill.models.file_format import load_model
    from distill.trained.domain import domain_of, task_of

    return domain_of(task_of(load_model(path))).exhaustive_up_to


def _distill(path: Path, out: Path) -> tuple[int, float, str]:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "distill.cli", "run", str(path), "-o", str(out), "--quiet",
         "--min-agreement", "0.5"],
        capture_output=True,
        text=True,
    )  # fmt: skip
    return done.returncode, time.perf_counter() - start, done.stderr


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zoo", type=Path, required=True)
    parser.add_argument("--only", nargs="*", default=[])
    parser.add_argument("--out", type=Path, help="also write the table (markdown) here")
    args = parser.parse_args(argv)
    header = (
        "| model | right up to | N | verdict | beyond N (sampled) | size | tables | "
        "interventions (unchanged / follows) | distill s | train s |\n"
        "|---|---|---|---|---|---|---|---|---|---|"
    )
    lines = [header]
    print(header, flush=True)
    counted = solved = 0
    with tempfile.TemporaryDirectory() as scratch:
        for path in _models(args.zoo, args.only):
            row = _row(path)
            out = Path(scratch) / path.stem
            status, seconds, err = _distill(path, out)
            report = json.loads((out / "report.json").read_text()) if out.exists() else None
            right = _right_up_to(path, row)
            n = _exhaustive_up_to(path)
            perfect = right is not None and right >= n
            counted += perfect
            if report is None:
                reason = err.strip().splitlines()[0] if err.strip() else f"exit {status}"
                line = f"| {path.stem} | {right} | | {reason[:90]} | | | | | {seconds:.1f} | {row.get('seconds', '')} |"
            else:
                v = report["verification"]
                beyond = ", ".join(
                    f"{a['length']}: {a['agree']}/{a['inputs']}"
                    for a in v["lengths"]
                    if not a["exhaustive"]
                )
                figures = "; ".join(
                    f"{i['component']} {_f(i['unchanged'])} / {_f(i['follows'])}"
                    + (" FLAGGED" if i["flagged"] else "")
                    for i in report["interventions"]
                )
                size = report["program"].count("\n") - 1
                tables = ", ".join(
                    f"{t['definition']} ({t['entries']})" for t in report["tables_left"]
                )
                verdict = (
                    v["level"]
                    if v["verified"]
                    else f"APPROXIMATE {v['agreement']:.2%}: {v['level'][:60]}"
                )
                line = (
                    f"| {path.stem} | {right} | {n} | {verdict} | {beyond} | {size} | {tables or '-'} | "
                    f"{figures} | {seconds:.1f} | {row.get('seconds', '')} |"
                )
                flagged = any(i["flagged"] for i in report["interventions"])
                solved += perfect and v["verified"] and not flagged
            lines.append(line)
            print(line, flush=True)
    summary = (
        f"\nmodels right on every input up to N: {counted}; of them given a program equal to the "
        f"model up to N with every intervention figure >= 0.99: {solved}"
    )
    print(summary)
    if args.out:
        args.out.write_text("\n".join(lines) + "\n" + summary + "\n")
    return 0


def _f(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


if __name__ == "__main__":
    raise SystemExit(main())
