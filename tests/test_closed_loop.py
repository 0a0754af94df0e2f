"""Model -> program -> model: a distilled program recompiled with tracr computes what the original did."""

from __future__ import annotations

import pytest

from distill.cli import main
from distill.model_file import load_model
from distill.tracr_import import from_tracr
from distill.tracr_suite import ALL_CASES, compiled


@pytest.mark.parametrize("name", ["sort_unique_1", "shift_by_one", "frac_prevs_1"])
def test_distill_run_then_compile_program_rasp_gives_the_same_model(name, tmp_path):
    case = next(c for c in ALL_CASES if c.name == name)
    original = from_tracr(compiled(case), rotate=2)
    original.save(tmp_path / "original.safetensors")
    assert (
        main(
            [
                "run",
                str(tmp_path / "original.safetensors"),
                "-o",
                str(tmp_path / "out"),
                "-q",
                "--no-prove",
            ]
        )
        == 0
    )
    vocab = ",".join(str(v) for v in original.config.vocab)
    status = main(
        [
            "compile",
            str(tmp_path / "out" / "program.rasp"),
            "--vocab",
            vocab,
            "--max-len",
            str(case.max_seq_len),
            "-o",
            str(tmp_path / "again.safetensors"),
        ]
    )
    assert status == 0
    again = load_model(tmp_path / "again.safetensors")
    from dsl.domain import enumerate_inputs

    inputs = [
        x
        for batch in enumerate_inputs(list(original.config.vocab), case.max_seq_len)
        for x in batch
    ]
    if name == "sort_unique_1":  # the source is defined on distinct tokens only
        inputs = [x for x in inputs if len(set(x)) == len(x)]
    for x, a, b in zip(inputs, original.predict(inputs), again.predict(inputs)):
        assert a == pytest.approx(b, abs=1e-3), x
