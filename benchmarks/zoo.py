"""The zoo: trained models across formal tasks, and superposed (compressed) tracr models.

    python benchmarks/zoo.py --out zoo/            # everything (seeded)
    python benchmarks/zoo.py --out zoo/ --quick    # a subset, minutes on 2 cores
    python benchmarks/zoo.py --out zoo/ --only tomita1-l1h1d16 hist-abc4
    python benchmarks/zoo.py --out zoo/ --workers 2            # on a local Ray, 2 workers
    python benchmarks/zoo.py --out /shared/zoo/ --ray HOST:6379  # on a cluster (shared DIR)

A model whose row (DIR/NAME.row.json) is already there is not built again: an
interrupted run resumes where it stopped; delete the row to rebuild the model.
Models are built through distill.executor: one after the other in this process,
or side by side on Ray workers (--workers N, --ray ADDRESS), each worker writing
its model's files (on a cluster DIR must be one disk all nodes see); the rows
and the summary are the same either way (every run is seeded, single-threaded).

Per model, DIR/NAME.safetensors (its task, recipe and training log are records
in the file), DIR/NAME.task.json, DIR/NAME.log.json and DIR/NAME.accuracy.json
(accuracy per length: exhaustive while the domain fits the budget, sampled past
it, up to the model's context); DIR/zoo.md and DIR/zoo.json sum them up: the
length up to which each model is right on every input, and its sampled accuracy
at twice that length.

Dyck models are next-symbol-set language models (multi-label: the tokens whose logit is
> 0; a string is right when every set is), and copy models read `x SEP y` and predict
y (teacher forcing), as the task records say (`distill/models/formal_tasks.py`).

Every trained model GPT-2 can express (LayerNorm, causal attention: all but the
whole-string tasks sort, reverse and histogram, which read later positions) is
exported as a Hugging Face GPT-2 directory (DIR/NAME.hf/, with its task.toml),
imported back with `distill import hf`, and its read-out (what `distill predict`
prints) compared, input by input and exactly, with the argmax of
`transformers.GPT2LMHeadModel.from_pretrained` over the same directory (or, multi-label,
the tokens its logits score > 0), on the
task's domain (exhaustive while it holds at most `EXPORT_BUDGET` inputs, then
`SAMPLES` seeded strings per length).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import json
import random
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from distill.cli.compile import compile_sop, load_program  # noqa: E402
from distill.files import replaced_atomically  # noqa: E402
from distill.models.compress import domain_inputs, read_rank, smallest_agreeing  # noqa: E402
from distill.models.formal_tasks import named_task  # noqa: E402
from distill.models.tracr_import import from_tracr  # noqa: E402
from distill.models.training import (  # noqa: E402
    Recipe,
    accuracy_by_length,
    correct_up_to,
    train,
)

EXHAUSTIVE_BUDGET = 2**17
EXPORT_BUDGET = 2**16
SAMPLES = 1000
# The context is 4x the longest training input, so twice a length the model is right on
# every input up to (at most 2x the training lengths) is within it.
CONTEXT = 4

# name: (task, layers, heads, d_model, dropout, max_len, steps); context is CONTEXT * max_len.
TRAINED = {
    "tomita1-l1h1d16": ("tomita1", 1, 1, 16, 0.0, 12, 1500),
    "tomita2-l1h1d16": ("tomita2", 1, 1, 16, 0.0, 12, 1500),
    "tomita3-l2h2d32": ("tomita3", 2, 2, 32, 0.0, 12, 3000),
    "tomita4-l2h2d32": ("tomita4", 2, 2, 32, 0.0, 12, 3000),
    "tomita5-l2h2d32": ("tomita5", 2, 2, 32, 0.0, 12, 3000),
    "tomita6-l2h4d32": ("tomita6", 2, 4, 32, 0.0, 12, 3000),
    "tomita7-l2h2d32": ("tomita7", 2, 2, 32, 0.0, 12, 3000),
    "tomita4-l1h1d16-drop": ("tomita4", 1, 1, 16, 0.1, 12, 3000),
    "dyck1-l2h2d32": ("dyck1-d4", 2, 2, 32, 0.0, 12, 3000),
    "dyck2-l3h4d64": ("dyck2-d3", 3, 4, 64, 0.0, 10, 3000),
    "dyck2-l2h2d32-drop": ("dyck2-d3", 2, 2, 32, 0.1, 10, 3000),
    "parity-l1h1d16": ("parity", 1, 1, 16, 0.0, 10, 2000),
    "parity-l2h2d32": ("parity", 2, 2, 32, 0.0, 10, 3000),
    "binmaj-l1h1d16": ("binary-majority", 1, 1, 16, 0.0, 12, 2000),
    "binmaj-l2h2d32-drop": ("binary-majority", 2, 2, 32, 0.1, 12, 2000),
    "majority-l1h2d32": ("majority", 1, 2, 32, 0.0, 8, 2000),
    "majority-l2h4d64-drop": ("majority", 2, 4, 64, 0.1, 8, 2000),
    "sort-l2h2d32": ("sort", 2, 2, 32, 0.0, 6, 3000),
    "sort-l3h2d64-drop": ("sort", 3, 2, 64, 0.1, 6, 3000),
    "reverse-l2h2d32": ("reverse", 2, 2, 32, 0.0, 6, 3000),
    "reverse-l4h4d64": ("reverse", 4, 4, 64, 0.0, 6, 3000),
    "copy-l2h2d32": ("copy", 2, 2, 32, 0.0, 8, 2000),
    "copy-l2h1d16-drop": ("copy", 2, 1, 16, 0.1, 6, 3000),
    "histogram-l1h2d32": ("histogram", 1, 2, 32, 0.0, 8, 3000),
    "histogram-l2h2d32-drop": ("histogram", 2, 2, 32, 0.1, 8, 3000),
    "count-l1h1d32": ("count", 1, 1, 32, 0.0, 8, 3000),
    "count-l2h4d64": ("count", 2, 4, 64, 0.0, 8, 3000),
}
# name: (example program, vocab, max_len); the search for D starts one below the rank of what
# the weights read (`compress.read_rank`, where compression agrees before any step), or at half
# of d_model if that is less, and trains W below it (`compress.smallest_agreeing`).
COMPRESSED = {
    "reverse-abc4": ("reverse.rasp", "a,b,c", 4),
    "reverse-abcd4": ("reverse.rasp", "a,b,c,d", 4),
    "reverse-ab5": ("reverse.rasp", "a,b", 5),
    "hist-abc4": ("hist.rasp", "a,b,c", 4),
    "hist-abcd5": ("hist.rasp", "a,b,c,d", 5),
    "length-abc5": ("length.rasp", "a,b,c", 5),
    "shift-abc4": ("shift_by.rasp", "a,b,c", 4),
    "sort_unique-1234": ("sort_unique.rasp", "1,2,3,4", 4),
}
QUICK_TRAINED = ("tomita1-l1h1d16", "tomita4-l1h1d16-drop", "parity-l1h1d16", "copy-l2h2d32",
                 "binmaj-l1h1d16", "majority-l1h2d32")  # fmt: skip
QUICK_COMPRESSED = ("hist-abc4", "reverse-ab5")


def write_json(path: Path, value) -> None:
    with replaced_atomically(path) as temporary:
        temporary.write_text(json.dumps(value, indent=1, default=str) + "\n")


def build_trained(name: str, spec: tuple, out: Path, quick: bool, export: bool = True) -> dict:
    task_name, layers, heads, d_model, dropout, max_len, steps = spec
    steps = min(steps, 800) if quick else steps
    context = CONTEXT * max_len
    task = named_task(task_name, context=context)
    recipe = Recipe(layers=layers, heads=heads, d_model=d_model, dropout=dropout,
                    max_len=max_len, context=context, steps=steps, seed=0,
                    causal=task.causal)  # fmt: skip
    result = train(task, recipe)
    rows = accuracy_by_length(result.model, task, range(1, context + 1), EXHAUSTIVE_BUDGET,
                              SAMPLES)  # fmt: skip
    result.model.records["training"]["accuracy_by_length"] = rows
    result.model.save(out / f"{name}.safetensors")
    write_json(out / f"{name}.task.json", result.model.records["task"])
    write_json(out / f"{name}.log.json", result.log)
    write_json(out / f"{name}.accuracy.json", rows)
    gpt2 = (
        export_check(result.model, out / f"{name}.hf", out / f"{name}.hf.safetensors")
        if export
        else None
    )
    right_up_to = correct_up_to(rows)
    # Twice the length right everywhere, or the context where that is past it.
    doubled = next((r for r in rows if r["length"] == min(2 * right_up_to, context)), None)
    return {
        "name": name, "task": task_name, "layers": layers, "heads": heads, "d_model": d_model,
        "dropout": dropout, "train_max_len": max_len, "steps": result.steps,
        "seconds": round(result.seconds, 1), "held_out": result.held_out_accuracy,
        "correct_up_to": right_up_to,
        "at_double": None if doubled is None else
        {"length": doubled["length"], "accuracy": doubled["accuracy"],
         "exhaustive": doubled["exhaustive"]},
        "gpt2": gpt2,
    }  # fmt: skip


def export_inputs(task, seed: int = 0) -> tuple[list[list], bool]:
    """The task's domain, exhaustive while it fits EXPORT_BUDGET, then sampled per length."""
    rng = random.Random(seed)
    inputs, whole = [], True
    for length in range(task.domain["min_len"], task.domain["max_len"] + 1):
        if whole and len(inputs) + len(task.alphabet) ** length <= EXPORT_BUDGET:
            inputs += task.inputs(length)
        else:
            whole = False
            xs = [[rng.choice(task.alphabet) for _ in range(length)] for _ in range(SAMPLES)]
            inputs += task.inputs_of(xs)
    return inputs, whole


def transformers_read_out(directory: Path, task, inputs: list[list]) -> list[list]:
    """Per input, `transformers`' read-out at the read-out positions: the argmax over the
    read-out subset, or, multi-label, the tokens whose logit is > 0 (in token-id order)."""
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    hf = transformers.GPT2LMHeadModel.from_pretrained(directory).eval()
    ids = task.checkpoint_ids(hf.config.vocab_size)
    if task.readout["kind"] == "multilabel":
        names = {i: name for name, i in ids.items()}
        subset = [names.get(i) for i in range(hf.config.vocab_size)]
    else:
        subset = task.readout["subset"]
    columns = torch.tensor([ids[value] for value in subset if value is not None])
    results = {}
    by_length: dict[int, list[int]] = {}
    for i, x in enumerate(inputs):
        by_length.setdefault(len(x), []).append(i)
    with torch.no_grad():
        for rows in by_length.values():
            for start in range(0, len(rows), 4096):
                chunk = rows[start : start + 4096]
                batch = torch.tensor([[ids[task.special["bos"]], *(ids[t] for t in inputs[i])]
                                      for i in chunk])  # fmt: skip
                logits = hf(batch).logits
                if task.readout["kind"] == "multilabel":
                    on = (logits > 0).tolist()
                    for i, row in zip(chunk, on):
                        results[i] = [tuple(subset[j] for j, yes in enumerate(row[p]) if yes)
                                      for p in task.positions_of(inputs[i])]  # fmt: skip
                    continue
                best = logits[..., columns].argmax(-1).tolist()
                for i, row in zip(chunk, best):
                    results[i] = [subset[row[p]] for p in task.positions_of(inputs[i])]
    return [results[i] for i in range(len(inputs))]


def export_check(model, directory: Path, imported_path: Path) -> dict:
    """Export as GPT-2, import with the CLI, compare read-outs with transformers' (see top)."""
    from distill.cli import main as distill_main
    from distill.models.file_format import load_model
    from distill.models.hf_import import gpt2_problems, save_hf_gpt2
    from distill.models.task import Task

    problems = gpt2_problems(model)
    if problems:
        return {"exported": False, "why": "; ".join(problems)}
    task_path = save_hf_gpt2(model, directory)
    args = ["import", "hf", str(directory), "--task", str(task_path), "-o", str(imported_path)]
    with contextlib.redirect_stdout(io.StringIO()):
        status = distill_main(args)
    if status != 0:
        return {"exported": True, "imported": False, "status": status}
    imported = load_model(imported_path)
    task = Task.from_record(imported.records["task"])
    inputs, whole = export_inputs(task)
    ours = task.read_out(imported, inputs)  # what `distill predict` prints, input by input
    theirs = transformers_read_out(directory, task, inputs)
    original = Task.from_record(model.records["task"]).read_out(model, inputs)
    return {"exported": True, "imported": True, "inputs": len(inputs), "exhaustive": whole,
            "differ_from_transformers": sum(a != b for a, b in zip(ours, theirs)),
            "differ_from_original": sum(a != b for a, b in zip(ours, original))}  # fmt: skip


def build_compressed(name: str, spec: tuple, out: Path) -> dict:
    program, vocab_text, max_len = spec
    vocab = [int(v) if v.isdigit() else v for v in vocab_text.split(",")]
    source = str(ROOT / "examples" / program)
    original = from_tracr(compile_sop(load_program(source, vocab, max_len), vocab, max_len, False))
    inputs, whole = domain_inputs(original)
    started = time.perf_counter()
    rank = read_rank(original, inputs)
    start = max(1, min(original.config.d_model // 2, rank - 1))
    compressed, attempts = smallest_agreeing(original, start, inputs)
    row = {"name": name, "program": program, "vocab": vocab_text, "max_len": max_len,
           "d_model": original.config.d_model, "inputs": len(inputs), "exhaustive": whole,
           "tried": [(a.d, a.disagreements) for a in attempts],
           "seconds": round(time.perf_counter() - started, 1)}  # fmt: skip
    if compressed is None:
        return {**row, "d": None, "agrees": False}
    agrees = compressed.predict(inputs) == original.predict(inputs)
    compressed.records["source"] = {"kind": "compressed", "from": {"program": program,
                                    "vocab": vocab, "max_len": max_len},
                                    "d": compressed.config.d_model}  # fmt: skip
    compressed.save(out / f"{name}.safetensors")
    return {**row, "d": compressed.config.d_model, "agrees": agrees}


def gpt2_cell(gpt2: dict | None) -> str:
    if gpt2 is None:
        return "-"
    if not gpt2["exported"]:
        return "not exportable: " + gpt2["why"].split(":")[0]
    if not gpt2["imported"]:
        return f"import failed (exit {gpt2['status']})"
    domain = "all" if gpt2["exhaustive"] else "sampled"
    return (f"{gpt2['differ_from_transformers']} of {gpt2['inputs']} ({domain}) differ "
            f"({gpt2['differ_from_original']} from the original)")  # fmt: skip


def markdown(trained: list[dict], compressed: list[dict]) -> str:
    lines = ["## Trained", "",
             "| model | task | L | H | d | dropout | trained to | steps | s | right on every "
             "input up to | sampled at 2x | GPT-2 export: import + predict vs transformers |",
             "|" + "---|" * 12]  # fmt: skip
    for r in trained:
        double = r["at_double"]
        shown = "-" if double is None else (
            f"{double['accuracy']:.1%} (len {double['length']}"
            f"{', exhaustive' if double['exhaustive'] else ''})")  # fmt: skip
        lines.append(f"| {r['name']} | {r['task']} | {r['layers']} | {r['heads']} | "
                     f"{r['d_model']} | {r['dropout']} | {r['train_max_len']} | {r['steps']} | "
                     f"{r['seconds']} | {r['correct_up_to']} | {shown} | "
                     f"{gpt2_cell(r.get('gpt2'))} |")  # fmt: skip
    lines += ["", "## Compressed tracr models", "",
              "| model | d_model | D | D/d_model | inputs | agrees | s | tried (D, disagreements) |",
              "|" + "---|" * 8]  # fmt: skip
    for r in compressed:
        ratio = "-" if r["d"] is None else f"{r['d'] / r['d_model']:.0%}"
        lines.append(f"| {r['name']} | {r['d_model']} | {r['d']} | {ratio} | {r['inputs']}"
                     f"{'' if r['exhaustive'] else ' sampled'} | {r['agrees']} | {r['seconds']} "
                     f"| {r['tried']} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def build_job(out: Path, quick: bool, export: bool, job: tuple[str, str, tuple]) -> dict:
    """The row of one model (job = (kind, name, spec)), its files written to `out`."""
    torch.set_num_threads(1)  # seeded runs reproduce, in this process or on a worker
    kind, name, spec = job
    if kind == "trained":
        return build_trained(name, spec, out, quick, export)
    return build_compressed(name, spec, out)


def sweep(
    out: Path, jobs: list[tuple[str, str, tuple]], quick: bool, executor=None, export: bool = True
) -> dict[str, list[dict]]:
    """Every job's row, in job order: read back where an earlier run wrote DIR/NAME.row.json,
    else built through `executor` (distill.executor; in-process by default) and written.
    zoo.json and zoo.md are rewritten as rows arrive, with every row so far in job order."""
    from distill.executor import InProcess

    executor = executor or InProcess()
    out.mkdir(parents=True, exist_ok=True)
    rows: dict[str, dict] = {}
    for _, name, _ in jobs:
        path = out / f"{name}.row.json"
        if path.exists():
            rows[name] = json.loads(path.read_text())
    todo = [job for job in jobs if job[1] not in rows]

    def summary() -> dict[str, list[dict]]:
        done = {"trained": [], "compressed": []}
        for kind, name, _ in jobs:
            if name in rows:
                done[kind].append(rows[name])
        return done

    def summarise() -> None:
        done = summary()
        write_json(out / "zoo.json", done)
        with replaced_atomically(out / "zoo.md") as temporary:
            temporary.write_text(markdown(done["trained"], done["compressed"]))

    build = functools.partial(build_job, out, quick, export)
    for job, row in zip(todo, executor.map(build, todo, total=len(todo))):
        write_json(out / f"{job[1]}.row.json", row)
        print(json.dumps(row), flush=True)
        rows[job[1]] = row
        summarise()
    if not todo:
        summarise()
    return summary()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--quick", action="store_true", help="a subset with fewer steps")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="build only these models")
    parser.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="build the models on a local Ray with N workers (extra 'ray')",
    )
    parser.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="build them on the Ray cluster at ADDRESS (DIR on a shared disk)",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)  # seeded runs reproduce; 2 cores are shared anyway
    trained_names = QUICK_TRAINED if args.quick else tuple(TRAINED)
    compressed_names = QUICK_COMPRESSED if args.quick else tuple(COMPRESSED)
    if args.only:
        unknown = sorted(set(args.only) - set(TRAINED) - set(COMPRESSED))
        if unknown:
            parser.error(f"--only: unknown model(s) {', '.join(unknown)}; expected names of "
                         f"{', '.join([*TRAINED, *COMPRESSED])}")  # fmt: skip
        trained_names = tuple(n for n in TRAINED if n in args.only)
        compressed_names = tuple(n for n in COMPRESSED if n in args.only)
    if args.workers is not None and args.ray is not None:
        parser.error("--workers and --ray exclude each other: give one")
    if args.workers is not None and args.workers < 1:
        parser.error(f"--workers: expected a positive number, got {args.workers}")
    args.out.mkdir(parents=True, exist_ok=True)
    jobs = [("trained", n, TRAINED[n]) for n in trained_names]
    jobs += [("compressed", n, COMPRESSED[n]) for n in compressed_names]
    from distill.errors import BadInputError
    from distill.executor import executor

    try:
        chosen = executor(args.workers, args.ray)
    except BadInputError as error:
        parser.exit(2, f"error: {error}\n")
    with chosen:
        rows = sweep(args.out, jobs, args.quick, chosen)
    print(markdown(rows["trained"], rows["compressed"]))


if __name__ == "__main__":
    main()
