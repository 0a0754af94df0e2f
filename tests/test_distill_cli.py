"""`distill run`, `distill demo` and `distill bench` end to end, and their honest failures."""

from __future__ import annotations

import json
from html import escape

import pytest
import torch
from test_report_browser import _chromium

import dsl
from distill.cli import main
from distill.groundtruth.tracr_suite import ALL_CASES, compiled
from distill.models.family import Model
from distill.models.tracr_import import from_tracr


def _case(name):
    return next(c for c in ALL_CASES if c.name == name)


@pytest.fixture(scope="module")
def sort_unique_model():
    return from_tracr(compiled(_case("sort_unique_1")), rotate=3)


def test_run_writes_a_verified_program_and_its_evidence(tmp_path, sort_unique_model, capsys):
    path = tmp_path / "m.safetensors"
    sort_unique_model.save(path)
    status = main(["run", str(path), "-o", str(tmp_path / "out"), "--quiet"])
    out = capsys.readouterr().out
    assert status == 0, out
    files = {p.name for p in (tmp_path / "out").iterdir()}
    assert {
        "program.rasp",
        "program.py",
        "module.py",
        "report.json",
        "report.html",
        "config.json",
    } <= files
    program = dsl.parse((tmp_path / "out" / "program.rasp").read_text(), filename="program.rasp")
    # The written program computes what the model computes on unique-token inputs (its source's domain).
    inputs = [[4, 2, 3], [1], [3, 1, 4, 2], [2, 4, 1, 3]]
    assert (
        dsl.evaluate(program, inputs)
        == sort_unique_model.predict(inputs)
        == [sorted(x) for x in inputs]
    )
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    # The network is certified; the exhaustive check is reported beside it.
    level = report["verification"]["level"]
    assert level.startswith("certified(5); checked against the model exhaustive(5)"), level
    assert "verified: certified(5)" in out and "checked against the model: exhaustive(5)" in out
    certificate = report["verification"]["certificate"]
    assert certificate and all(line["failed"] == "" for line in certificate)
    assert {line["component"] for line in certificate} >= {"unembed"}


def test_run_samples_a_domain_over_the_exhaustive_limit(tmp_path, sort_unique_model, capsys):
    path = tmp_path / "m.safetensors"
    sort_unique_model.save(path)
    status = main(
        ["run", str(path), "-o", str(tmp_path / "out"), "-q", "--no-prove"]
        + ["--exhaustive-limit", "1000", "--samples", "300", "--seed", "7"]
    )
    out = capsys.readouterr().out
    assert status == 0, out
    assert "verified: sampled(300, seed=7)" in out  # 1,364 inputs: over the limit


def test_a_perturbed_model_gets_no_verified_claim(tmp_path, capsys):
    model = from_tracr(compiled(_case("sort_unique_1")), rotate=1)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for block in model.blocks:
            # A few large weights of every head's value and query: attention and outputs go irregular.
            for weight in (block.attn.W_V, block.attn.W_Q):
                noise = torch.zeros_like(weight)
                flat = noise.view(-1)
                picks = torch.randperm(flat.numel(), generator=generator)[:6]
                flat[picks] = torch.randn(6, generator=generator, dtype=flat.dtype) * 3
                weight += noise
    path = tmp_path / "bent.safetensors"
    model.save(path)
    status = main(["run", str(path), "-o", str(tmp_path / "out"), "--quiet"])
    captured = capsys.readouterr()
    assert status == 1
    assert "verified:" not in captured.out
    assert captured.err.startswith("no ")
    assert not (tmp_path / "out" / "report.json").exists()


def test_a_random_layer_norm_model_is_read_as_trained_and_gets_no_program(tmp_path, capsys):
    base = from_tracr(compiled(_case("sort_unique_1")))
    config = base.config.__class__(**{**base.config.__dict__, "normalization": "LN"})
    model = Model(config)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            tensor.copy_(torch.randn_like(tensor) * 0.1 + (1.0 if name.endswith(".w") else 0.0))
    path = tmp_path / "ln.safetensors"
    model.save(path)
    status = main(["run", str(path), "-o", str(tmp_path / "out"), "--quiet"])
    captured = capsys.readouterr()
    # Layer norm: read as a trained network (distill.trained); random weights follow no
    # program from its heads' variables, and nothing is claimed or written.
    assert status == 1
    assert "no faithful program: refuted" in captured.err and "input " in captured.err
    assert not (tmp_path / "out").exists()


def test_demo_compiles_distills_and_writes_the_report(tmp_path, capsys):
    status = main(["demo", "-o", str(tmp_path / "demo"), "--quiet"])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "verified: certified(5)" in out and "checked against the model: exhaustive(5)" in out
    assert "agrees with the source" in out
    # The page as a browser renders it: the program, the circuit picture, a heatmap per head.
    report = json.loads((tmp_path / "demo" / "report.json").read_text())
    page = tmp_path / "demo" / "report.html"
    dom = _chromium("--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr
    for line in (tmp_path / "demo" / "program.rasp").read_text().splitlines():
        assert escape(line, quote=False) in dom.stdout
    assert dom.stdout.count('<svg class="circuit"') == 1
    assert dom.stdout.count('<svg class="heatmap"') == len(report["heads"]) > 0
    shot = _chromium(f"--screenshot={tmp_path / 'demo.png'}", page.as_uri())
    assert shot.returncode == 0 and (tmp_path / "demo.png").stat().st_size > 10_000


def test_bench_prints_a_row_per_case_and_seed(capsys):
    status = main(["bench", "tracr", "--only", "shift_by_one", "--seeds", "0,1"])
    out = capsys.readouterr().out
    assert status == 0, out
    assert out.count("shift_by_one") == 2
    assert "median distill/compile ratio" in out
