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


def test_compression_to_the_read_rank_agrees_before_any_step(tmp_path):
    """W = the top principal directions of what the weights read reconstructs every read of
    the domain: at that rank the compressed model agrees on every input with no training,
    and the rank is below the whole residual's (hist never reads the indices tracr embeds)."""
    import torch

    from distill.models.compress import compress, domain_inputs, read_basis, read_rank

    assert main(compile_args(tmp_path / "hist.safetensors")) == 0
    model = distill.load_model(tmp_path / "hist.safetensors")
    inputs, whole = domain_inputs(model)
    rank = read_rank(model, inputs)
    ids, mask = model.encode(inputs)
    names = ["blocks.0.hook_resid_pre", "blocks.0.hook_resid_mid", "blocks.0.hook_resid_post"]
    _, trace = model.run_with_trace(ids, mask, names=names)
    residuals = torch.cat([trace[name][mask] for name in names])
    indices_only = model.pos_embed.W_pos.detach()[1:5]  # what positions write, BOS aside
    weights = {name: t.detach() for name, t in model.state_dict().items()}
    read = read_basis(weights, model.config.n_layers)
    rounding = model.config.d_model * torch.finfo(indices_only.dtype).eps  # of the SVD
    assert torch.linalg.norm(indices_only @ read) <= rounding * torch.linalg.norm(indices_only)
    assert whole and rank < int(torch.linalg.matrix_rank(residuals))
    small, attempt = compress(model, rank, inputs)
    assert attempt.agreed and attempt.steps == 0
    assert small.predict(inputs) == model.predict(inputs)
