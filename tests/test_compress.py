"""`distill compile --compress D`: a smaller residual that agrees with tracr's model exactly."""

from __future__ import annotations

import itertools
from pathlib import Path

import distill
from distill.cli import main

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def compile_args(path, *extra):
    return ["compile", str(EXAMPLES / "hist.rasp"), "--vocab", "a,b,c", "--max-len", "4",
            "-o", str(path), *extra]  # fmt: skip


def test_compressed_model_agrees_with_its_original_on_every_input(tmp_path, capsys):
    original, small = tmp_path / "hist.safetensors", tmp_path / "hist-small.safetensors"
    assert main(compile_args(original)) == 0
    d_model = distill.load_model(original).config.d_model
    assert main(compile_args(small, "--compress", "12")) == 0, capsys.readouterr()
    a, b = distill.load_model(original), distill.load_model(small)
    assert b.config.d_model < d_model
    assert b.config.d_model == b.records["source"]["d"]
    assert b.records["source"]["kind"] == "compressed"
    assert b.records["source"]["from"]["program"].endswith("hist.rasp")
    inputs = [list(x) for n in range(1, 5) for x in itertools.product("abc", repeat=n)]
    assert a.predict(inputs) == b.predict(inputs)


def test_compress_at_or_past_d_model_exits_2(tmp_path, capsys):
    status = main(compile_args(tmp_path / "m.safetensors", "--compress", "999"))
    assert status == 2
    assert "--compress 999: expected 1 <= D < d_model" in capsys.readouterr().err
    assert not (tmp_path / "m.safetensors").exists()
