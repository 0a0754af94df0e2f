"""Sweeps on a local Ray with 2 workers give what the in-process run gives, bit for bit.

One Ray instance serves the module (starting one takes seconds); its tests are
one xdist group, so `pytest -n 2 --dist loadgroup` (make test) starts it once.
Each sweep runs in-process and on Ray and the results are compared whole, with
only measured times left out; the refuted checks are also compared with the
first disagreeing inputs in domain order, found here input by input.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import re
import sys

import pytest

import dsl
from distill.checks.sweep import check_exhaustively, count_chunks
from distill.cli import main
from distill.executor import InProcess
from distill.groundtruth.bench import COLUMNS, TIMING_COLUMNS, BenchOptions, bench_case
from distill.groundtruth.tracr_suite import ALL_CASES, compiled
from distill.models.numerics import in_float64
from distill.models.tracr_import import from_tracr
from dsl.domain import enumerate_inputs
from verify.check import check

ray = pytest.importorskip("ray")

pytestmark = [
    pytest.mark.xdist_group("ray"),
    # Ray starts its processes with subprocess (fork then exec at once), after jax is loaded.
    pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning"),
]

CHUNK = 40  # small chunks: the 1,364 inputs make 35 of them, finished in any order
IDENTITY = "return tokens\n"  # agrees with reverse on palindromes only


@pytest.fixture(scope="module")
def on_ray():
    from distill.executor import RayExecutor

    notes: list[str] = []
    executor = RayExecutor(workers=2, notify=notes.append)
    executor.notes = notes
    yield executor
    executor.close()
    assert not ray.is_initialized()


@pytest.fixture(scope="module")
def reverse():
    """tracr's make_reverse (vocab 4, length 5: 1,364 inputs), rotated; its source program."""
    case = next(c for c in ALL_CASES if c.name == "lib_make_reverse")
    model = in_float64(from_tracr(compiled(case), rotate=1))
    source = dsl.from_tracr(case.program, vocab=case.sorted_vocab, max_seq_len=case.max_seq_len)
    return model, source


def untimed(verdict):
    return dataclasses.replace(verdict, seconds=0.0)


def first_disagreements(program, model, count=5) -> list[tuple]:
    """The first `count` inputs in domain order where program and model differ, one by one."""
    found = []
    config = model.config
    for batch in enumerate_inputs(list(config.vocab), config.max_seq_len):
        for x, want, got in zip(batch, model.predict(batch), dsl.evaluate(program, batch)):
            if list(want) != list(got):
                found.append(tuple(x))
    return found[:count]


def test_local_ray_is_loopback_only_with_two_workers(on_ray):
    nodes = ray.nodes()
    assert [node["NodeManagerAddress"] for node in nodes] == ["127.0.0.1"]
    assert ray.cluster_resources()["CPU"] == 2


@pytest.mark.parametrize("wrong", [False, True])
def test_exhaustive_check_on_ray_equals_in_process(on_ray, reverse, wrong):
    model, source = reverse
    program = dsl.parse(IDENTITY) if wrong else source
    assert count_chunks(len(model.config.vocab), model.config.max_seq_len, CHUNK) > 20
    seen = []
    here = check_exhaustively(program, source, model, InProcess(), chunk_size=CHUNK)
    there = check_exhaustively(
        program, source, model, on_ray, lambda done, total: seen.append((done, total)), CHUNK
    )
    assert [untimed(v) for v in there] == [untimed(v) for v in here]
    claimed, whole = there
    if wrong:
        assert claimed.level == whole.level == "refuted"
        expected = first_disagreements(program, model)
        assert [c.input for c in claimed.counterexamples] == expected
    else:
        assert claimed.level == whole.level == "exhaustive"
        assert whole.inputs_covered == 4 + 16 + 64 + 256 + 1024
        # Progress counts every chunk merged, out of the whole domain's chunks.
        assert seen[-1] == (len(seen), len(seen)) and len(seen) > 20


@pytest.mark.parametrize("wrong", [False, True])
def test_sampled_check_on_ray_equals_in_process(on_ray, reverse, wrong):
    model, source = reverse
    program = dsl.parse(IDENTITY) if wrong else source
    config = model.config
    options = dict(
        vocab=config.vocab,
        max_seq_len=config.max_seq_len,
        exhaustive=False,
        samples=900,
        seed=7,
        batch_size=60,
    )
    here = check(program, model.predict, **options)
    there = check(program, model.predict, map_batches=on_ray.map, **options)
    assert untimed(there) == untimed(here)
    assert there.level == ("refuted" if wrong else "sampled")
    if not wrong:
        assert there.inputs_covered == 900


def test_two_case_bench_on_ray_prints_the_same_rows(on_ray):
    options = BenchOptions(prove=False)
    tasks = [("length_categorical_1", 0), ("make_nary_sequencemap_2", 1)]
    run = functools.partial(bench_case, options)
    here = [run(task) for task in tasks]
    there = list(on_ray.map(run, tasks))
    timed = [COLUMNS.index(column) for column in TIMING_COLUMNS]

    def untimed_row(row):
        cells = tuple("" if i in timed else cell for i, cell in enumerate(row.cells))
        log = re.sub(r"\d+\.\d+ s", "_ s", row.log or "")
        return dataclasses.replace(row, cells=cells, log=log, ratio=None, warm_ratio=None)

    assert [untimed_row(r) for r in there] == [untimed_row(r) for r in here]
    assert [r.cells[0] for r in there] == [name for name, _ in tasks]
    assert not any(r.failed for r in there)


TINY_ZOO = [
    ("trained", "tomita1-tiny", ("tomita1", 1, 1, 16, 0.0, 3, 30)),
    ("trained", "parity-tiny", ("parity", 1, 1, 16, 0.1, 3, 30)),
]


def test_two_model_zoo_sweep_on_ray_writes_the_same_rows(on_ray, tmp_path):
    from benchmarks import zoo

    def rows(out):
        return {
            kind: [{k: v for k, v in row.items() if k != "seconds"} for row in found]
            for kind, found in json.loads((out / "zoo.json").read_text()).items()
        }

    zoo.sweep(tmp_path / "here", TINY_ZOO, quick=False, export=False)
    zoo.sweep(tmp_path / "there", TINY_ZOO, quick=False, executor=on_ray, export=False)
    assert rows(tmp_path / "there") == rows(tmp_path / "here")
    assert [r["name"] for r in rows(tmp_path / "there")["trained"]] == [
        "tomita1-tiny",
        "parity-tiny",
    ]
    for _, name, _ in TINY_ZOO:
        for suffix in ("accuracy.json", "task.json"):
            mine = (tmp_path / "here" / f"{name}.{suffix}").read_bytes()
            assert (tmp_path / "there" / f"{name}.{suffix}").read_bytes() == mine


def test_a_dead_worker_is_retried_and_said(on_ray, tmp_path):
    marker = str(tmp_path / "died")

    # Defined here, so it travels by value: a fresh worker need not import this test module.
    def dies_once(item: int) -> int:
        if item == 2 and not os.path.exists(marker):
            open(marker, "w").close()
            os._exit(1)  # the worker process dies, as if killed
        return item * item

    on_ray.notes.clear()
    assert list(on_ray.map(dies_once, range(5))) == [0, 1, 4, 9, 16]
    assert len(on_ray.notes) == 1 and "worker died running item 2" in on_ray.notes[0]


def test_an_error_in_an_item_is_raised_as_in_process(on_ray):
    with pytest.raises(ZeroDivisionError):
        list(on_ray.map(lambda x: 1 / (x - 3), range(6)))
    # In its turn: the results before it come first, even when it fails sooner.
    seen = []
    with pytest.raises(ZeroDivisionError):
        for result in on_ray.map(lambda x: 1 / x if x == 0 else x, range(6)):
            seen.append(result)
    assert seen == []
    seen.clear()
    with pytest.raises(ZeroDivisionError):
        for result in on_ray.map(lambda x: 1 / 0 if x == 4 else x, range(6)):
            seen.append(result)
    assert seen == [0, 1, 2, 3]


def test_a_long_first_item_holds_no_worker_idle(on_ray, tmp_path):
    # The first item runs until the last one has run: with workers waiting for the first
    # item to finish before they take more, it would never end (it gives up after 120 s).
    released = str(tmp_path / "released")
    last = 9

    def waits_for_the_last(item: int) -> int:
        import time

        if item == last:
            open(released, "w").close()
        if item == 0:
            deadline = time.monotonic() + 120
            while not os.path.exists(released):
                if time.monotonic() > deadline:
                    raise TimeoutError("the last item never ran while the first one did")
                time.sleep(0.05)
        return item

    assert list(on_ray.map(waits_for_the_last, range(last + 1))) == list(range(last + 1))


@pytest.mark.parametrize(
    "options, message",
    [
        (["--workers", "0"], "--workers: expected a positive number"),
        (["--workers", "2", "--ray", "h:1"], "exclude each other"),
        (["--ray", "127.0.0.1:1"], "cannot reach the Ray cluster at 127.0.0.1:1"),
        (["--ray", "nonsense"], "expected a cluster address HOST:PORT"),
    ],
)
def test_bad_executor_options_exit_2(options, message, capsys):
    assert main(["bench", "--only", "none-such", *options]) == 2
    assert message in capsys.readouterr().err


def test_workers_without_ray_installed_names_the_extra(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    assert main(["bench", "--only", "none-such", "--workers", "2"]) == 2
    err = capsys.readouterr().err
    assert "optional extra 'ray'" in err and "pip install -e '.[ray]'" in err
