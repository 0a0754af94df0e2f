"""`distill verify` and `distill equiv`: exit 0 / 1 / 2, a one-line verdict, the counterexample."""

from __future__ import annotations

import pytest

from distill.cli import main

REVERSE = """
length = selector_width(select(tokens, tokens, true))
opp = length - indices - 1
flip = select(indices, opp, ==)
return aggregate(flip, tokens)
"""
WRONG_REVERSE = REVERSE.replace("length - indices - 1", "length - indices")
REVERSE_BY_TABLE = REVERSE.replace(
    "opp = length - indices - 1",
    "opp = sequence_map(lambda n, i: n - i - 1, length, indices)",
)


@pytest.fixture(scope="module")
def reverse_model(tmp_path_factory):
    """tracr's compiled make_reverse (vocab a,b,c, length 3), rotated, saved as a model file."""
    from tracr.compiler import compiling, lib
    from tracr.rasp import rasp

    import distill

    assembled = compiling.compile_rasp_to_model(
        lib.make_reverse(rasp.tokens), vocab={"a", "b", "c"}, max_seq_len=3, compiler_bos="BOS"
    )
    path = tmp_path_factory.mktemp("models") / "reverse.safetensors"
    distill.from_tracr(assembled, rotate=0).save(path)
    return path


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_the_right_program_passes_exhaustively(reverse_model, tmp_path, capsys):
    status = main(
        ["verify", str(reverse_model), _write(tmp_path, "r.rasp", REVERSE), "--exhaustive"]
    )
    out = capsys.readouterr().out
    assert status == 0
    assert out.splitlines()[0] == "exhaustive(3): 39 inputs"  # 3 + 9 + 27


def test_a_wrong_program_is_refuted_with_its_counterexample(reverse_model, tmp_path, capsys):
    status = main(["verify", str(reverse_model), _write(tmp_path, "w.rasp", WRONG_REVERSE)])
    lines = capsys.readouterr().out.splitlines()
    assert status == 1
    # The first input: ["a"]; the wrong program selects nothing, so its output is None.
    assert lines[0] == "refuted: input ['a'] position 0: expected 'a', got None"
    assert lines[1].startswith("counterexample: input ['a']")


def test_sampling_reports_its_seed(reverse_model, tmp_path, capsys):
    status = main(
        [
            "verify",
            str(reverse_model),
            _write(tmp_path, "r.rasp", REVERSE),
            "--samples",
            "50",
            "--seed",
            "3",
        ]
    )
    assert status == 0
    assert capsys.readouterr().out.splitlines()[0] == "sampled(50, seed=3)"


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--exhaustive", "--samples", "5"], "exclude each other"),
        (["--samples", "0"], "--samples"),
        # inf would pass any number as equal, -1 and nan none: neither is a tolerance
        (["--tolerance", "inf"], "--tolerance: expected a finite number >= 0, got inf"),
        (["--tolerance", "-1"], "--tolerance: expected a finite number >= 0, got -1"),
        (["--tolerance", "nan"], "--tolerance: expected a finite number >= 0, got nan"),
    ],
)
def test_verify_rejects_bad_options(reverse_model, tmp_path, capsys, arguments, message):
    status = main(["verify", str(reverse_model), _write(tmp_path, "r.rasp", REVERSE), *arguments])
    assert status == 2
    assert message in capsys.readouterr().err


def test_verify_rejects_a_bad_program_with_its_location(reverse_model, tmp_path, capsys):
    path = _write(tmp_path, "bad.rasp", "x = select(tokens, tokens, ==\nreturn x\n")
    assert main(["verify", str(reverse_model), path]) == 2
    assert "bad.rasp:" in capsys.readouterr().err


def test_verify_rejects_a_missing_model(tmp_path, capsys):
    assert (
        main(["verify", str(tmp_path / "none.safetensors"), _write(tmp_path, "r.rasp", REVERSE)])
        == 2
    )
    assert "none.safetensors" in capsys.readouterr().err


def test_equiv_proves_equal_programs(tmp_path, capsys):
    a, b = _write(tmp_path, "a.rasp", REVERSE), _write(tmp_path, "b.rasp", REVERSE_BY_TABLE)
    assert main(["equiv", a, b, "--vocab", "a,b,c", "--max-len", "6"]) == 0
    assert capsys.readouterr().out.strip() == "proved(6)"


def test_equiv_refutes_with_a_counterexample(tmp_path, capsys):
    a, b = _write(tmp_path, "a.rasp", REVERSE), _write(tmp_path, "b.rasp", WRONG_REVERSE)
    assert main(["equiv", a, b, "--vocab", "a,b,c", "--max-len", "6"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "refuted: input ['a'] position 0: expected 'a', got None"
    assert lines[1].startswith("counterexample:")


def test_equiv_undecided_is_a_failed_check(tmp_path, capsys):
    a, b = _write(tmp_path, "a.rasp", REVERSE), _write(tmp_path, "b.rasp", REVERSE_BY_TABLE)
    status = main(["equiv", a, b, "--vocab", "a,b,c", "--max-len", "8", "--timeout", "0.00001"])
    assert status == 1
    assert capsys.readouterr().out.startswith("unknown: timeout")


def test_equiv_single_valued_precondition_option(tmp_path, capsys):
    prefix_mean = _write(
        tmp_path, "m.rasp", "return aggregate(select(indices, indices, <=), tokens)"
    )
    tokens = _write(tmp_path, "t.rasp", "return tokens")
    assert main(["equiv", prefix_mean, tokens, "--vocab", "1,2", "--max-len", "4"]) == 1
    capsys.readouterr()
    option = "--single-valued-aggregates"
    assert main(["equiv", prefix_mean, tokens, "--vocab", "1,2", "--max-len", "4", option]) == 0


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--vocab", "a,,b", "--max-len", "3"], "--vocab"),
        (["--vocab", "a,b", "--max-len", "0"], "--max-len"),
        (["--vocab", "a,b", "--max-len", "3", "--timeout", "0"], "--timeout"),
    ],
)
def test_equiv_rejects_bad_options(tmp_path, capsys, arguments, message):
    a = _write(tmp_path, "a.rasp", REVERSE)
    assert main(["equiv", a, a, *arguments]) == 2
    assert message in capsys.readouterr().err


def test_equiv_rejects_an_ill_typed_program(tmp_path, capsys):
    a = _write(tmp_path, "a.rasp", REVERSE)
    bad = _write(tmp_path, "bad.rasp", "return nothing_defined")
    assert main(["equiv", a, bad, "--vocab", "a,b", "--max-len", "3"]) == 2
    assert "bad.rasp:1" in capsys.readouterr().err


def test_both_commands_have_help(capsys):
    for command in ("verify", "equiv"):
        assert main([command, "--help"]) == 0
        assert "Usage" in capsys.readouterr().out
