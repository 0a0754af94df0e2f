"""How much faster the emitted module.py is than the network it replaces, per tracr case.

For each distinct compilable tracr case (distill.tracr_suite): compile it,
import it rotated with `distill.from_tracr`, distill it, emit `module.py` from
the distilled program (what `distill run` writes),
and time both forwards on the same full-domain batch (every input up to the
case's length; a seeded sample of SAMPLE_SIZE inputs where the domain is
larger), in the same process, best of several repeats (the machine may be
shared). Checks the module agrees with the model wherever the program is
defined, then prints per case the layers, the batch size, both times and the
ratio; the module must equal the model on the claimed domain (the inputs meeting
the distilled program's precondition). Both run single-threaded (torch.set_num_threads(1)): on a shared
machine, multi-threaded timings of kernels this small measure thread-pool
waits, not work.

The expectation is >= EXPECTED_RATIO x for every case with >= 2 layers; cases
below it are listed at the end. On a batch of a few dozen inputs both forwards
are per-operation overhead (microseconds each), so the ratio is that of their
operation counts. Exit status 1 only if the module disagrees with the model.

    .venv/bin/python benchmarks/replacement.py [CASE_NAME ...]
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from tracr_cases import ALL_CASES, compiled, distinct_compilable

import distill
import dsl
from distill.emit_torch import CLASS_NAME, torch_module_source
from distill.pipeline import DistillConfig
from distill.precondition import precondition_holds
from dsl.domain import count_inputs, enumerate_inputs, sample_inputs

SAMPLE_SIZE = 20_000
REPEATS = 7
TIME_BUDGET = 3.0
EXPECTED_RATIO = 10.0


def best_time(forward, ids, mask) -> float:
    """The best of REPEATS runs, or of as many as fit in TIME_BUDGET seconds (at least one)."""
    best, spent = float("inf"), 0.0
    for _ in range(REPEATS):
        start = time.perf_counter()
        forward(ids, mask)
        elapsed = time.perf_counter() - start
        best, spent = min(best, elapsed), spent + elapsed
        if spent > TIME_BUDGET:
            break
    return best


def load_module(source: str, directory: str):
    path = Path(directory) / "module.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("replacement_module", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, CLASS_NAME)()


def domain(vocab, max_seq_len: int) -> tuple[list[list], str]:
    if count_inputs(vocab, max_seq_len) <= SAMPLE_SIZE:
        return [list(x) for batch in enumerate_inputs(vocab, max_seq_len) for x in batch], "all"
    return sample_inputs(vocab, max_seq_len, SAMPLE_SIZE, seed=0), "sample"


def disagreements(model, claimed, inputs, model_out, module_out) -> int:
    """Positions of inputs in the claimed domain where module and model decode differently."""
    lengths = [len(x) for x in inputs]
    by_model, by_module = model.decode(model_out, lengths), model.decode(module_out, lengths)
    count = 0
    for inside, a, b in zip(claimed, by_model, by_module):
        if not inside:
            continue
        for position in range(len(a)):
            if model.config.output_kind == "numerical":
                count += abs(a[position] - b[position]) > 1e-4
            else:
                count += a[position] != b[position]
    return count


def main(names: list[str]) -> int:
    torch.set_num_threads(1)
    cases = [c for c in distinct_compilable(ALL_CASES) if not names or c.name in names]
    print(f"{'case':34} {'layers':>6} {'inputs':>12} {'model ms':>9} {'module ms':>9} {'ratio':>7}")
    disagreeing, slow, not_emitted = [], [], []
    with tempfile.TemporaryDirectory() as directory, torch.no_grad():
        for case in cases:
            model = distill.from_tracr(compiled(case), rotate=0)
            config = model.config
            try:
                result = distill.distill(model, DistillConfig(prove=False))
                program = result.program
                source = torch_module_source(
                    program,
                    vocab=config.vocab,
                    bos=config.bos,
                    max_seq_len=config.max_seq_len,
                    output_kind=config.output_kind,
                    output_values=config.output_values,
                    domain_note="benchmark",
                )
            except (dsl.DSLError, distill.DistillError) as error:  # no program, or no module for it
                first_line = str(error).splitlines()[0]
                print(f"{case.name:34} {config.n_layers:>6}  not emitted: {first_line}", flush=True)
                not_emitted.append(case.name)
                continue
            module = load_module(source, directory)
            inputs, how = domain(config.vocab, config.max_seq_len)
            ids, mask = model.encode(inputs)
            model_out, module_out = model(ids, mask), module(ids, mask)
            model_time = best_time(model, ids, mask)
            module_time = best_time(module, ids, mask)
            ratio = model_time / module_time
            claimed = precondition_holds(result.table_program, inputs)
            wrong = disagreements(model, claimed, inputs, model_out, module_out)
            note = ""
            if wrong:
                note = f"  DISAGREES at {wrong} positions"
                disagreeing.append(case.name)
            elif config.n_layers >= 2 and ratio < EXPECTED_RATIO:
                note = f"  below {EXPECTED_RATIO:g}x"
                slow.append(f"{case.name} ({len(inputs)} inputs, {ratio:.1f}x)")
            print(
                f"{case.name:34} {config.n_layers:>6} {len(inputs):>7} {how:>4} "
                f"{1000 * model_time:>9.2f} {1000 * module_time:>9.2f} {ratio:>6.1f}x{note}",
                flush=True,
            )
    if not_emitted:
        print(f"not emitted (rejected by the type checker): {', '.join(not_emitted)}")
    if slow:
        print(f"below {EXPECTED_RATIO:g}x with >= 2 layers: {', '.join(slow)}")
    if disagreeing:
        print(f"module and model disagree: {', '.join(disagreeing)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
