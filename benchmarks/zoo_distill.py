"""`distill run` over the zoo (benchmarks/zoo.py's output): the issue-13 table.

    python benchmarks/zoo_distill.py --zoo ZOO_DIR [--only NAME ...] [--out table.md]

Each model is distilled by `distill run` in a process of its own, timed whole (start to
exit). Beside it: with --train, its training (`distill train` with the zoo's recipe) or
compression (`distill compile --compress`) run again as a process of its own and timed
whole (the baseline the issue names, measured in the same run); without, the training
loop's seconds from the zoo's row. Per model:
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

ROOT = Path(__file__).resolve().parent.parent


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


def _train_command(name: str, row: dict, out: Path) -> list[str] | None:
    """The `distill` command that makes this zoo model again (benchmarks/zoo.py's recipe)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import zoo

    if name in zoo.TRAINED:
        task, layers, heads, d_model, dropout, max_len, steps = zoo.TRAINED[name]
        return ["train", task, "-o", str(out), "--layers", str(layers), "--heads", str(heads),
                "--d-model", str(d_model), "--dropout", str(dropout), "--max-len", str(max_len),
                "--context", str(zoo.CONTEXT * max_len), "--steps", str(steps), "--seed", "0",
                "--quiet"]  # fmt: skip
    if name in zoo.COMPRESSED and row.get("tried"):
        program, vocab, max_len = zoo.COMPRESSED[name]
        return ["compile", str(ROOT / "examples" / program), "--vocab", vocab, "--max-len",
                str(max_len), "--compress", str(row["tried"][0][0]), "-o", str(out)]  # fmt: skip
    return None


def _timed(arguments: list[str]) -> tuple[int, float, str]:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "distill.cli", *arguments], capture_output=True, text=True
    )
    return done.returncode, time.perf_counter() - start, done.stderr


def _distill(path: Path, out: Path) -> tuple[int, float, str]:
    return _timed(["run", str(path), "-o", str(out), "--quiet", "--min-agreement", "0.5"])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zoo", type=Path, required=True)
    parser.add_argument("--only", nargs="*", default=[])
    parser.add_argument("--out", type=Path, help="also write the table (markdown) here")
    parser.add_argument(
        "--train", action="store_true", help="time each model's training as a whole process too"
    )
    args = parser.parse_args(argv)
    header = (
        "| model | right up to | N | verdict | beyond N (sampled) | size | tables | "
        "interventions (unchanged / follows; patched alone) | distill s | train s |\n"
        "|---|---|---|---|---|---|---|---|---|---|"
    )
    lines = [header]
    print(header, flush=True)
    counted = solved = solved_alone = slower = 0
    with tempfile.TemporaryDirectory() as scratch:
        for path in _models(args.zoo, args.only):
            row = _row(path)
            out = Path(scratch) / path.stem
            status, seconds, err = _distill(path, out)
            trained = row.get("seconds", "")
            command = _train_command(
                path.stem, row, Path(scratch) / f"{path.stem}.again.safetensors"
            )
            if args.train and command:
                train_status, train_seconds, _ = _timed(command)
                trained = f"{train_seconds:.1f}" + (
                    "" if train_status == 0 else f" (exit {train_status})"
                )
                slower += seconds > train_seconds
            report = json.loads((out / "report.json").read_text()) if out.exists() else None
            right = _right_up_to(path, row)
            n = _exhaustive_up_to(path)
            perfect = right is not None and right >= n
            counted += perfect
            if report is None:
                reason = err.strip().splitlines()[0] if err.strip() else f"exit {status}"
                line = f"| {path.stem} | {right} | | {reason[:90]} | | | | | {seconds:.1f} | {trained} |"
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
                    + f"; {_f(i['alone_unchanged'])} / {_f(i['alone_follows'])}"
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
                    f"{figures} | {seconds:.1f} | {trained} |"
                )
                flagged = any(i["flagged"] for i in report["interventions"])
                solved += perfect and v["verified"] and not flagged
                solved_alone += (
                    perfect
                    and v["verified"]
                    and not flagged
                    and not any(i["read_elsewhere"] for i in report["interventions"])
                )
            lines.append(line)
            print(line, flush=True)
    summary = (
        f"\nmodels right on every input up to N: {counted}; of them given a program equal to the "
        f"model up to N with every intervention figure >= 0.99: {solved} (patched alone too: "
        f"{solved_alone})"
        + (f"; distilled slower than trained (whole processes): {slower}" if args.train else "")
    )
    print(summary)
    if args.out:
        args.out.write_text("\n".join(lines) + "\n" + summary + "\n")
    return 0


def _f(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


if __name__ == "__main__":
    raise SystemExit(main())
