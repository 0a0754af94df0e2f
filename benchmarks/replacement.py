"""How much faster the emitted module.py is than the network it replaces, per tracr case.

For each distinct compilable tracr case (distill.tracr_suite): compile it,
import it rotated with `distill.from_tracr`, distill it, emit `module.py` from
the distilled program (what `distill run` writes), and run both forwards on
the case's whole domain (every input up to its length), in the same process:

- a domain of at most CHUNK_SIZE inputs is one batch (lengths mixed, PAD after
  short inputs), timed as the best of several repeats (the machine may be shared);
- a larger one is streamed in chunks of CHUNK_SIZE inputs of one length, their
  token ids built with torch from the index of each input (the enumeration order
  of dsl.domain), and each forward is timed once per chunk: the times are the
  sums over the chunks, so the ratio is over the whole domain.

The module must equal the model on the claimed domain (the inputs meeting the
distilled program's precondition), on every input: exit status 1 if it does not.
Prints per case the layers, the number of inputs, both times and the ratio, then
a summary. Both run single-threaded (torch.set_num_threads(1)): on a shared
machine, multi-threaded timings of kernels this small measure thread-pool waits,
not work.

The expectation is >= EXPECTED_RATIO x for every case with >= 2 layers; cases
below it are listed at the end. On a batch of a few dozen inputs both forwards
are per-operation overhead (microseconds each), so the ratio is that of their
operation counts.

    .venv/bin/python benchmarks/replacement.py [--workers N | --ray ADDRESS] [CASE_NAME ...]

With --workers or --ray the cases run side by side on Ray workers (lines in case
order); each ratio is still measured within one process, but the times include
the neighbours' contention for the cores.
"""

from __future__ import annotations

import argparse
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
from distill.circuit.precondition import precondition_holds
from distill.config import DistillConfig
from distill.emit.torch_module import CLASS_NAME, torch_module_source
from distill.executor import executor
from dsl import ast
from dsl.domain import count_inputs, enumerate_inputs

CHUNK_SIZE = 20_000
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


def length_chunks(config, length: int):
    """Token ids [chunk, 1 + length] of every input of one length, CHUNK_SIZE at a time, in
    dsl.domain's order: input number i has the base-len(vocab) digits of i as token ids."""
    base = len(config.vocab)
    powers = base ** torch.arange(length - 1, -1, -1)
    total = base**length
    for start in range(0, total, CHUNK_SIZE):
        index = torch.arange(start, min(start + CHUNK_SIZE, total))
        digits = index[:, None] // powers % base
        yield torch.cat([torch.full((len(index), 1), config.bos_id), digits], 1)


def needs_precondition(program: ast.Program) -> bool:
    """Whether precondition_holds can be False: only a categorical aggregate restricts it."""
    return any(
        isinstance(d.node, ast.Aggregate) and d.node.encoding == ast.CATEGORICAL
        for d in program.definitions
    )


def claimed_rows(result, config, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """[batch] bool: the inputs in the claimed domain (precondition_holds)."""
    if not needs_precondition(result.table_program):
        return torch.ones(len(ids), dtype=torch.bool)
    inputs = [
        [config.vocab[i] for i in row[1:length]]
        for row, length in zip(ids.tolist(), mask.sum(1).tolist())
    ]
    return torch.tensor(precondition_holds(result.table_program, inputs))


def disagreements(model, claimed, mask, model_out, module_out) -> int:
    """Positions of inputs in the claimed domain where module and model decode differently."""
    checked = mask.clone()
    checked[:, 0] = False  # BOS
    checked &= claimed[:, None]
    if model.config.output_kind == "numerical":
        wrong = (model_out[..., 0] - module_out[..., 0]).abs() > 1e-4
    else:
        wrong = model.output_indices(model_out) != model.output_indices(module_out)
    return int((wrong & checked).sum())


def compare(model, module, result) -> tuple[int, float, float, int]:
    """(inputs, model seconds, module seconds, disagreeing positions) over the whole domain."""
    config = model.config
    if count_inputs(config.vocab, config.max_seq_len) <= CHUNK_SIZE:
        inputs = [
            list(x) for batch in enumerate_inputs(config.vocab, config.max_seq_len) for x in batch
        ]
        ids, mask = model.encode(inputs)
        model_out, module_out = model(ids, mask), module(ids, mask)
        wrong = disagreements(
            model, claimed_rows(result, config, ids, mask), mask, model_out, module_out
        )
        return len(inputs), best_time(model, ids, mask), best_time(module, ids, mask), wrong
    inputs, model_time, module_time, wrong = 0, 0.0, 0.0, 0
    for length in range(1, config.max_seq_len + 1):
        for ids in length_chunks(config, length):
            mask = ids != config.pad_id
            start = time.perf_counter()
            model_out = model(ids, mask)
            middle = time.perf_counter()
            module_out = module(ids, mask)
            model_time += middle - start
            module_time += time.perf_counter() - middle
            claimed = claimed_rows(result, config, ids, mask)
            wrong += disagreements(model, claimed, mask, model_out, module_out)
            inputs += len(ids)
    return inputs, model_time, module_time, wrong


def replacement_case(name: str) -> tuple:
    """(name, layers, None, first error line) when no module is emitted, else
    (name, layers, (inputs, model seconds, module seconds, disagreeing positions), "")."""
    torch.set_num_threads(1)
    case = next(c for c in distinct_compilable(ALL_CASES) if c.name == name)
    model = distill.from_tracr(compiled(case), rotate=0)
    config = model.config
    try:
        result = distill.distill(model, DistillConfig(prove=False))
        source = torch_module_source(
            result.program,
            vocab=config.vocab,
            bos=config.bos,
            max_seq_len=config.max_seq_len,
            output_kind=config.output_kind,
            output_values=config.output_values,
            domain_note="benchmark",
        )
    except (dsl.DSLError, distill.DistillError) as error:  # no program, or no module for it
        return name, config.n_layers, None, str(error).splitlines()[0]
    with tempfile.TemporaryDirectory() as directory, torch.no_grad():
        module = load_module(source, directory)
        return name, config.n_layers, compare(model, module, result), ""


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="CASE")
    parser.add_argument("--workers", type=int, metavar="N", help="cases on a local Ray")
    parser.add_argument("--ray", metavar="ADDRESS", help="cases on the Ray cluster at ADDRESS")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    names = [
        c.name for c in distinct_compilable(ALL_CASES) if not args.names or c.name in args.names
    ]
    try:
        chosen = executor(args.workers, args.ray)
    except (distill.DistillError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{'case':34} {'layers':>6} {'inputs':>12} {'model ms':>9} {'module ms':>9} {'ratio':>7}")
    disagreeing, slow, not_emitted, ratios = [], [], [], []
    started = time.perf_counter()
    with chosen:
        for name, layers, measured, error in chosen.map(replacement_case, names):
            if measured is None:
                print(f"{name:34} {layers:>6}  not emitted: {error}", flush=True)
                not_emitted.append(name)
                continue
            inputs, model_time, module_time, wrong = measured
            ratio = model_time / module_time
            ratios.append((name, layers, ratio))
            note = ""
            if wrong:
                note = f"  DISAGREES at {wrong} positions"
                disagreeing.append(name)
            elif layers >= 2 and ratio < EXPECTED_RATIO:
                note = f"  below {EXPECTED_RATIO:g}x"
                slow.append(f"{name} ({inputs} inputs, {ratio:.1f}x)")
            print(
                f"{name:34} {layers:>6} {inputs:>12} "
                f"{1000 * model_time:>9.2f} {1000 * module_time:>9.2f} {ratio:>6.1f}x{note}",
                flush=True,
            )
    if not_emitted:
        print(f"not emitted (rejected by the type checker): {', '.join(not_emitted)}")
    if slow:
        print(f"below {EXPECTED_RATIO:g}x with >= 2 layers: {', '.join(slow)}")
    deep = [ratio for _, layers, ratio in ratios if layers >= 2]
    print(
        f"summary: {len(ratios)} cases compared on their whole domain, "
        f"{sum(ratio >= EXPECTED_RATIO for _, _, ratio in ratios)} at >= {EXPECTED_RATIO:g}x, "
        f"minimum ratio with >= 2 layers {min(deep, default=float('nan')):.1f}x; "
        f"{time.perf_counter() - started:.0f} s"
    )
    if disagreeing:
        print(f"module and model disagree: {', '.join(disagreeing)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
