"""`distill compile` and `distill predict`: the bundled examples end to end, and bad input."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import distill
from distill.cli import main
from distill.models.numerics import RESOLUTION

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture(scope="module")
def sort_model(tmp_path_factory):
    """The README example: tracr's make_sort_unique from a Python file, rotated."""
    path = tmp_path_factory.mktemp("models") / "sort.safetensors"
    status = main([
        "compile", f"{EXAMPLES / 'sort_unique.py'}:program",
        "--vocab", "1,2,3,4,5,6", "--max-len", "6", "--rotate", "0", "-o", str(path),
    ])  # fmt: skip
    assert status == 0
    return path


def test_compile_python_example_then_predict(sort_model, capsys):
    capsys.readouterr()
    assert main(["predict", str(sort_model), "5", "2", "6", "1"]) == 0
    assert capsys.readouterr().out == "1 2 5 6\n"
    model = distill.load_model(sort_model)
    assert model.config.vocab == (1, 2, 3, 4, 5, 6)
    assert model.config.max_seq_len == 6
    # tracr's own sort_unique semantics: sorted for distinct tokens.
    for tokens in ([3], [6, 5, 4, 3, 2, 1], [2, 4, 1]):
        assert model.predict([tokens]) == [sorted(tokens)]


def test_compile_rasp_example_then_predict(tmp_path, capsys):
    path = tmp_path / "reverse.safetensors"
    source = EXAMPLES / "reverse.rasp"
    assert (
        main(
            [
                "compile",
                str(source),
                "--vocab",
                "a,b,c",
                "--max-len",
                "4",
                "--rotate",
                "3",
                "-o",
                str(path),
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["predict", str(path), "a", "b", "b", "c"]) == 0
    assert capsys.readouterr().out == "c b b a\n"


def test_causal_compile_with_numerical_output(tmp_path, capsys):
    path = tmp_path / "frac.safetensors"
    source = EXAMPLES / "frac_prevs.rasp"
    assert (
        main(
            [
                "compile",
                str(source),
                "--vocab",
                "x,y",
                "--max-len",
                "4",
                "--causal",
                "-o",
                str(path),
            ]
        )
        == 0
    )
    assert distill.load_model(path).config.causal
    capsys.readouterr()
    assert main(["predict", str(path), "x", "y", "x", "x"]) == 0
    assert [float(v) for v in capsys.readouterr().out.split()] == pytest.approx(
        [1, 1 / 2, 2 / 3, 3 / 4], abs=RESOLUTION
    )


def test_help_says_the_python_form_runs_the_file(capsys):
    assert main(["compile", "--help"]) == 0
    text = capsys.readouterr().out
    assert "RUNS" in text and "Python" in text
    assert main(["predict", "--help"]) == 0
    assert "MODEL" in capsys.readouterr().out


def _write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


BAD_COMPILES = {
    "missing_rasp": (lambda d: str(d / "absent.rasp"), "absent.rasp"),
    "not_a_source": (
        lambda d: _write(d, "prog.txt", "x"),
        "expected a .rasp file or path/to/file.py:NAME",
    ),
    "py_without_name": (lambda d: _write(d, "prog.py", "x = 1\n"), "name the SOp as"),
    "missing_py": (lambda d: str(d / "absent.py") + ":program", "absent.py: no such file"),
    "name_not_defined": (
        lambda d: _write(d, "prog.py", "x = 1\n") + ":program",
        "defines no name 'program'",
    ),
    "name_not_sop": (
        lambda d: _write(d, "prog.py", "program = 42\n") + ":program",
        "expected a tracr SOp",
    ),
    "parse_error": (lambda d: _write(d, "bad.rasp", "return aggregate(\n"), r"bad.rasp:\d+"),
    "tracr_cannot_compile": (
        lambda d: (
            _write(
                d,
                "prog.py",
                "from tracr.rasp import rasp\n"
                "program = rasp.numerical(rasp.Aggregate(rasp.Select(rasp.tokens, rasp.tokens, "
                "rasp.Comparison.TRUE), rasp.tokens))\n",
            )
            + ":program"
        ),
        "tracr cannot compile this program",
    ),
}


@pytest.mark.parametrize("kind", BAD_COMPILES)
def test_bad_compile_source_exits_2(tmp_path, capsys, kind):
    make, message = BAD_COMPILES[kind]
    output = tmp_path / "out.safetensors"
    assert (
        main(["compile", make(tmp_path), "--vocab", "a,b", "--max-len", "3", "-o", str(output)])
        == 2
    )
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert re.search(message, err), err
    assert not output.exists()


@pytest.mark.parametrize(
    "options, message",
    [
        (["--vocab", "a,,b", "--max-len", "3"], "--vocab: expected comma-separated"),
        (["--vocab", "a,b", "--max-len", "0"], "--max-len: expected a positive integer"),
        (["--vocab", "a,b", "--max-len", "three"], "Invalid value for '--max-len'"),
    ],
)
def test_bad_compile_options_exit_2(tmp_path, capsys, options, message):
    argv = [
        "compile",
        str(EXAMPLES / "reverse.rasp"),
        *options,
        "-o",
        str(tmp_path / "m.safetensors"),
    ]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert message in captured.err + captured.out


@pytest.mark.parametrize(
    "tokens, message",
    [
        (["7"], "token 7 is not in the model's vocab"),
        (["1", "2", "3", "4", "5", "6", "1"], "7 tokens; the model takes at most 6"),
    ],
)
def test_bad_predict_input_exits_2(sort_model, capsys, tokens, message):
    assert main(["predict", str(sort_model), *tokens]) == 2
    assert message in capsys.readouterr().err
