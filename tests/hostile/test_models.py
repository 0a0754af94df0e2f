"""Hostile model files, compile sources and output paths: each is refused cleanly.

Every case asserts exit 2 (bad input), one `error:` line naming the problem, no
traceback and, where an output path is given, nothing changed there. One model
is compiled per module (reverse.rasp with a vocab holding tracr's BOS names) and
copies of its file are mutated. Inputs meant to blow up memory or time run in a
capped subprocess (few: each costs seconds of imports).
"""

from __future__ import annotations

import json
import os
import random
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import distill
from distill.models import limits
from tests.hostile.harness import (
    assert_clean_refusal,
    fingerprint,
    run_capped,
    run_in_process,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CONFIG_KEY = "distill.config"


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    """reverse.rasp over a vocab holding both of tracr's usual BOS names (once a StopIteration)."""
    from distill.cli import main

    path = tmp_path_factory.mktemp("model") / "m.safetensors"
    status = main([
        "compile", str(EXAMPLES / "reverse.rasp"), "--vocab", "BOS,compiler_bos,a",
        "--max-len", "3", "--rotate", "0", "-o", str(path),
    ])  # fmt: skip
    assert status == 0
    return path


def test_fixture_model_reverses_with_a_fresh_bos(model_file):
    model = distill.load_model(model_file)
    assert model.config.bos not in model.config.vocab
    for tokens in (["BOS", "a", "compiler_bos"], ["a"], ["compiler_bos", "BOS"]):
        assert model.predict([tokens]) == [tokens[::-1]]


# --- the file: pieces of a safetensors file, reassembled ----------------------------------------


def split(path: Path) -> tuple[dict, bytes]:
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + length]), raw[8 + length :]


def assemble(header: dict | bytes, body: bytes, prefix: int | None = None) -> bytes:
    data = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(data) if prefix is None else prefix) + data + body


def with_config(path: Path, **changes) -> bytes:
    header, body = split(path)
    config = json.loads(header["__metadata__"][CONFIG_KEY])
    config.update(changes)
    header["__metadata__"][CONFIG_KEY] = json.dumps(config)
    return assemble(header, body)


def with_config_text(path: Path, text: str) -> bytes:
    header, body = split(path)
    header["__metadata__"][CONFIG_KEY] = text
    return assemble(header, body)


def with_tensors(path: Path, change) -> bytes:
    """The file re-saved after `change(tensors)` edits its tensors (config kept)."""
    header, _ = split(path)
    tensors = load_file(str(path))
    change(tensors)
    scratch = path.with_name("scratch.safetensors")
    save_file(tensors, str(scratch), metadata=header["__metadata__"])
    return scratch.read_bytes()


def config_of(path: Path) -> dict:
    return json.loads(split(path)[0]["__metadata__"][CONFIG_KEY])


def _set(name, value):
    def change(tensors):
        tensors[name] = value(tensors[name])

    return change


def _drop(name):
    return lambda tensors: tensors.pop(name)


def _poison(value):
    def change(tensors):
        tensors["embed.W_E"] = tensors["embed.W_E"].clone()
        tensors["embed.W_E"][0, 0] = value

    return change


def _many_tensors(tensors):
    for i in range(limits.MAX_TENSORS + 1):
        tensors[f"blocks.0.extra{i}"] = torch.zeros(1)


# name -> (bytes of the hostile file from the good one, words the refusal must name)
FILE_CASES = {
    "empty": (lambda p: b"", ["8-byte"]),
    "seven bytes": (lambda p: b"\x01" * 7, ["8-byte"]),
    "text file": (lambda p: b"hello, this is not a model file\n" * 4, ["header length"]),
    "prefix past the end": (
        lambda p: assemble(split(p)[0], split(p)[1], prefix=10**6),
        ["header length", "more than the file holds"],
    ),
    "prefix 2**63": (
        lambda p: assemble(split(p)[0], split(p)[1], prefix=2**63),
        ["header length", "MAX_HEADER_BYTES"],
    ),
    "header not JSON": (lambda p: assemble(b"\xff\xfe{{not json", b""), ["safetensors"]),
    "header a JSON list": (lambda p: assemble(b"[1, 2, 3]", b""), ["safetensors"]),
    "truncated body": (lambda p: p.read_bytes()[:-100], ["safetensors"]),
    "no metadata": (
        lambda p: assemble(
            {k: v for k, v in split(p)[0].items() if k != "__metadata__"}, split(p)[1]
        ),
        [CONFIG_KEY],
    ),
    "config not JSON": (lambda p: with_config_text(p, "{n_layers: 4"), ["expected JSON"]),
    "config a list": (lambda p: with_config_text(p, "[1, 2]"), ["JSON object"]),
    "config nested 100,000 deep": (
        lambda p: with_config_text(p, "[" * 100_000 + "]" * 100_000),
        ["nested", "MAX_CONFIG_DEPTH"],
    ),
    "config over a megabyte": (
        lambda p: with_config_text(p, json.dumps({"pad": "x" * (limits.MAX_CONFIG_BYTES + 1)})),
        ["MAX_CONFIG_BYTES"],
    ),
    "format version 2": (lambda p: with_config(p, format_version=2), ["format_version"]),
    "missing field": (
        lambda p: with_config_text(
            p, json.dumps({k: v for k, v in config_of(p).items() if k != "d_mlp"})
        ),
        ["missing", "d_mlp"],
    ),
    "unknown field": (
        lambda p: with_config(p, eval_this="__import__('os')"),
        ["unknown", "eval_this"],
    ),
    "20,000 layers claimed": (
        lambda p: with_config(p, n_layers=20_000),
        ["n_layers", "MAX_LAYERS"],
    ),
    "max_seq_len 100,000": (
        lambda p: with_config(p, max_seq_len=100_000, n_ctx=100_001),
        ["max_seq_len", "MAX_SEQ_LEN"],
    ),
    "negative d_model": (lambda p: with_config(p, d_model=-5), ["d_model"]),
    "d_model 10**12": (lambda p: with_config(p, d_model=10**12), ["d_model", "MAX_D_MODEL"]),
    "d_model a string": (lambda p: with_config(p, d_model="43"), ["d_model"]),
    "d_model a float": (lambda p: with_config(p, d_model=43.0), ["d_model"]),
    "zero heads": (lambda p: with_config(p, n_heads=0), ["n_heads"]),
    "d_head 0": (lambda p: with_config(p, d_head=0), ["d_head"]),
    "d_mlp huge": (lambda p: with_config(p, d_mlp=10**9), ["d_mlp", "MAX_D_MLP"]),
    "too many parameters": (
        lambda p: with_config(p, d_model=limits.MAX_D_MODEL, d_mlp=limits.MAX_D_MLP),
        ["MAX_PARAMETERS"],
    ),
    "vocab over the limit": (
        lambda p: with_config(p, vocab=list(range(limits.MAX_VOCAB + 1))),
        ["vocab", "MAX_VOCAB"],
    ),
    "vocab of lists and objects": (lambda p: with_config(p, vocab=[[1], {"a": 1}, "a"]), ["vocab"]),
    "vocab with null": (lambda p: with_config(p, vocab=[None, "a", "b"]), ["vocab"]),
    "vocab with NaN": (
        lambda p: with_config_text(
            p, json.dumps({**config_of(p), "vocab": [float("nan"), "a", "b"]})
        ),
        ["vocab"],
    ),
    "vocab duplicated": (lambda p: with_config(p, vocab=["a", "a", "b"]), ["vocab"]),
    "vocab 1 and true": (lambda p: with_config(p, vocab=[1, True, "a"]), ["vocab"]),
    "bos inside the vocab": (
        lambda p: with_config(p, vocab=["a", "b", config_of(p)["bos"]]),
        ["vocab"],
    ),
    "vocab empty": (lambda p: with_config(p, vocab=[]), ["vocab"]),
    "bos empty": (lambda p: with_config(p, bos=""), ["bos"]),
    "output_kind unknown": (lambda p: with_config(p, output_kind="probabilistic"), ["output_kind"]),
    "output_values duplicated": (
        lambda p: with_config(p, output_values=["a", "a", "b", "c"]),
        ["output_values"],
    ),
    "causal a string": (lambda p: with_config(p, causal="yes"), ["causal"]),
    "act_fn unknown": (lambda p: with_config(p, act_fn="swish"), ["act_fn"]),
    "normalization unknown": (lambda p: with_config(p, normalization="RMS"), ["normalization"]),
    "n_ctx disagrees": (lambda p: with_config(p, n_ctx=7), ["n_ctx"]),
    "n_layers disagrees with the tensors": (
        lambda p: with_config(p, n_layers=config_of(p)["n_layers"] - 1),
        ["n_layers"],
    ),
    "dtype F16": (
        lambda p: with_tensors(p, _set("embed.W_E", lambda t: t.half())),
        ["dtype", "F16"],
    ),
    "dtype I64": (lambda p: with_tensors(p, _set("embed.W_E", lambda t: t.long())), ["dtype"]),
    "dtypes mixed": (
        lambda p: with_tensors(
            p, _set("embed.W_E", lambda t: t.float() if t.dtype == torch.float64 else t.double())
        ),
        ["one dtype"],
    ),
    "shape disagrees": (
        lambda p: with_tensors(p, _set("embed.W_E", lambda t: t[:-1])),
        ["embed.W_E", "shape"],
    ),
    "tensor missing": (
        lambda p: with_tensors(p, _drop("pos_embed.W_pos")),
        ["missing", "pos_embed.W_pos"],
    ),
    "tensor extra": (
        lambda p: with_tensors(p, lambda t: t.update(extra=torch.zeros(2))),
        ["unexpected", "extra"],
    ),
    "too many tensors": (lambda p: with_tensors(p, _many_tensors), ["MAX_TENSORS"]),
    "NaN weight": (lambda p: with_tensors(p, _poison(float("nan"))), ["embed.W_E", "finite"]),
    "inf weight": (lambda p: with_tensors(p, _poison(float("inf"))), ["embed.W_E", "finite"]),
}


def _edit_header(path: Path, edit) -> bytes:
    header, body = split(path)
    edit(header)
    return assemble(header, body)


def _offsets_past_end(header):
    header["embed.W_E"]["data_offsets"] = [0, 10**9]


def _dtype_unknown(header):
    header["embed.W_E"]["dtype"] = "X99"


def _shape_negative(header):
    header["embed.W_E"]["shape"] = [-1, 5]


FILE_CASES.update({
    "offsets past the end": (lambda p: _edit_header(p, _offsets_past_end), ["safetensors"]),
    "dtype name unknown": (lambda p: _edit_header(p, _dtype_unknown), ["safetensors"]),
    "negative shape": (lambda p: _edit_header(p, _shape_negative), ["safetensors"]),
})  # fmt: skip


@pytest.mark.parametrize("case", sorted(FILE_CASES))
def test_hostile_model_file_is_refused(case, model_file, tmp_path, capsys):
    build, mentions = FILE_CASES[case]
    hostile = tmp_path / "hostile.safetensors"
    hostile.write_bytes(build(model_file))
    outcome = run_in_process(["predict", hostile, "a"], capsys)
    assert_clean_refusal(outcome, str(hostile), *mentions)


def test_every_byte_mutation_loads_or_is_refused(model_file, tmp_path, capsys):
    """Seeded mutations of the length prefix, the header (config, dtypes, shapes, offsets) and
    the first weights: each loads a valid model or is refused naming the file."""
    raw = model_file.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    rng = random.Random(0)
    hostile = tmp_path / "mutant.safetensors"
    statuses = []
    for _ in range(150):
        data = bytearray(raw)
        for _ in range(rng.choice((1, 1, 2, 4))):
            where = rng.choice(
                (rng.randrange(8), rng.randrange(8, 8 + length), rng.randrange(len(raw)))
            )
            data[where] = rng.randrange(256)
        hostile.write_bytes(bytes(data))
        outcome = run_in_process(["predict", hostile, "a"], capsys)
        assert outcome.status in (0, 2), (outcome.status, outcome.stderr[-1500:])
        if outcome.status == 2:
            assert_clean_refusal(outcome, str(hostile))
        statuses.append(outcome.status)
    assert statuses.count(2) > 50  # most mutations break something, and are caught


# --- the model path itself --------------------------------------------------------------------


def test_directory_as_model(tmp_path, capsys):
    assert_clean_refusal(run_in_process(["predict", tmp_path, "a"], capsys), "is a directory")


def test_missing_model(tmp_path, capsys):
    outcome = run_in_process(["predict", tmp_path / "absent.safetensors", "a"], capsys)
    assert_clean_refusal(outcome, "no such model file")


def test_fifo_as_model_does_not_block(tmp_path, capsys):
    fifo = tmp_path / "model.safetensors"
    os.mkfifo(fifo)
    assert_clean_refusal(run_in_process(["predict", fifo, "a"], capsys), "not a regular file")


def test_link_to_dev_zero_as_model(tmp_path, capsys):
    link = tmp_path / "model.safetensors"
    link.symlink_to("/dev/zero")
    assert_clean_refusal(run_in_process(["predict", link, "a"], capsys), "not a regular file")


# --- options -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, mentions",
    [
        (["predict", "{model}"], ["no input tokens"]),
        (["predict", "{model}", "z"], ["'z'", "vocab"]),
        (["predict", "{model}", "a", "a", "a", "a"], ["4 tokens"]),
        (["run", "{model}", "-o", "{out}", "--exhaustive-limit", "0", "--samples", "0"], ["--samples"]),
        (["run", "{model}", "-o", "{out}", "--exhaustive-limit", "-1"], ["--exhaustive-limit"]),
        (["run", "{model}", "-o", "{out}", "--seed", "-1"], ["--seed"]),
        (["bench", "--seeds", "a,b"], ["--seeds", "'a,b'"]),
        (["bench", "--seeds", "0,,1"], ["--seeds"]),
        (["bench", "--z3-timeout", "0"], ["--z3-timeout"]),
        (["compile", "{rasp}", "--vocab", "a,b", "--max-len", "100000", "-o", "{out}"], ["--max-len", "limit"]),
        (["compile", "{rasp}", "--vocab", ",".join(map(str, range(2000))), "--max-len", "3", "-o", "{out}"], ["--vocab", "limit"]),
    ],
)  # fmt: skip
def test_bad_option_is_refused(args, mentions, model_file, tmp_path, capsys):
    values = {"model": model_file, "out": tmp_path / "out", "rasp": EXAMPLES / "reverse.rasp"}
    outcome = run_in_process([a.format(**values) for a in args], capsys)
    assert_clean_refusal(outcome, *mentions)
    assert not (tmp_path / "out").exists()


# --- output paths: checked before the work, nothing changed there ---------------------------------


def _existing_file(tmp_path, model_file):
    path = tmp_path / "existing.txt"
    path.write_text("keep me\n")
    return path


def _inside_model(tmp_path, model_file):
    return model_file / "out"


def _foreign_folder(tmp_path, model_file):
    folder = tmp_path / "home"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine\n")
    (folder / "program.rasp").write_text("old\n")
    return folder


def _link_to_folder(tmp_path, model_file):
    folder = tmp_path / "real"
    folder.mkdir()
    link = tmp_path / "link"
    link.symlink_to(folder)
    return link


RUN_OUTPUTS = {
    "an existing file": (_existing_file, ["not a directory"]),
    "a path inside the model file": (_inside_model, ["not a directory"]),
    "an unwritable place": (
        lambda tmp, m: Path("/proc/distill-hostile-out"),
        ["cannot write in /proc"],
    ),
    "a folder of other files": (_foreign_folder, ["notes.txt", "did not write"]),
    "a link to a folder": (_link_to_folder, ["not a directory"]),
    "the current directory": (lambda tmp, m: Path("."), ["current directory"]),
}


@pytest.mark.parametrize("case", sorted(RUN_OUTPUTS))
@pytest.mark.parametrize("command", ["run", "demo"])
def test_run_output_refused_before_work(command, case, model_file, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "program.rasp").write_text("an earlier run's, in the current directory\n")
    make, mentions = RUN_OUTPUTS[case]
    target = make(tmp_path, model_file)
    before, model_before = fingerprint(target), fingerprint(model_file)
    args = (
        ["run", model_file, "-o", target, "-q"]
        if command == "run"
        else ["demo", "-o", target, "-q"]
    )
    outcome = run_in_process(args, capsys)
    assert_clean_refusal(outcome, str(target), *mentions)
    assert fingerprint(target) == before
    assert fingerprint(model_file) == model_before


def _fifo(tmp_path):
    path = tmp_path / "fifo"
    os.mkfifo(path)
    return path


COMPILE_OUTPUTS = {
    # Through a link: if the check ever failed, the rename would replace the link, not the device.
    "a device": (
        lambda tmp: (tmp / "null").symlink_to("/dev/null") or tmp / "null",
        ["not a regular file"],
    ),
    "a FIFO": (_fifo, ["not a regular file"]),
    "a directory": (lambda tmp: tmp, ["is a directory"]),
    "a missing folder": (lambda tmp: tmp / "no" / "such" / "m.safetensors", ["does not exist"]),
    "an unwritable folder": (lambda tmp: Path("/proc/m.safetensors"), ["cannot write in /proc"]),
    "a dangling link": (
        lambda tmp: (tmp / "dangling").symlink_to(tmp / "nowhere") or tmp / "dangling",
        ["not a regular file"],
    ),
}


@pytest.mark.parametrize("case", sorted(COMPILE_OUTPUTS))
def test_compile_output_refused_before_work(case, tmp_path, capsys):
    make, mentions = COMPILE_OUTPUTS[case]
    target = make(tmp_path)
    before = fingerprint(target)
    args = ["compile", EXAMPLES / "reverse.rasp", "--vocab", "a,b", "--max-len", "3", "-o", target]
    outcome = run_in_process(args, capsys)
    assert_clean_refusal(outcome, str(target), *mentions)
    assert fingerprint(target) == before
    assert not [p for p in tmp_path.rglob(".*")], "a hidden temporary file was left"


def _old_outputs(outdir: Path) -> None:
    from distill.emit.artifacts import OUTPUT_NAMES

    outdir.mkdir()
    for name in OUTPUT_NAMES:
        (outdir / name).write_text(f"an earlier run's {name}\n")


def test_run_failure_while_writing_leaves_old_outputs(model_file, tmp_path, capsys, monkeypatch):
    """A write failing on the fifth file (the disk full) leaves OUTDIR as it was, no mix."""
    from distill.report import schema

    outdir = tmp_path / "out"
    _old_outputs(outdir)
    before = fingerprint(outdir)

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(schema, "write_html", disk_full)
    outcome = run_in_process(["run", model_file, "-o", outdir, "-q"], capsys)
    assert_clean_refusal(outcome, str(outdir), "No space left")
    assert ".new-" not in outcome.stderr and ".tmp" not in outcome.stderr
    assert fingerprint(outdir) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_run_replaces_old_outputs_whole(model_file, tmp_path, capsys):
    from distill.emit.artifacts import OUTPUT_NAMES

    outdir = tmp_path / "out"
    _old_outputs(outdir)
    outcome = run_in_process(["run", model_file, "-o", outdir, "-q"], capsys)
    assert outcome.status == 0, outcome.stderr[-2000:]
    assert sorted(p.name for p in outdir.iterdir()) == sorted(OUTPUT_NAMES)
    assert all("an earlier run" not in (outdir / n).read_text() for n in OUTPUT_NAMES)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    # The written program is the one verified: it reverses.
    import dsl

    program = dsl.parse((outdir / "program.rasp").read_text(), filename="program.rasp")
    assert dsl.evaluate(program, [["a", "BOS", "compiler_bos"]]) == [["compiler_bos", "BOS", "a"]]


# --- compile sources: data stays data, Python runs only when asked, and fails cleanly ------------


def test_rasp_file_named_like_python_is_data(tmp_path, capsys, monkeypatch):
    """`evil.py:prog.rasp` beside `evil.py` is a .rasp file: parsed, and evil.py never runs."""
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "PWNED"
    Path("evil.py").write_text(f"import pathlib\npathlib.Path({str(marker)!r}).write_text('x')\n")
    Path("evil.py:prog.rasp").write_text("return tokens +\n")
    outcome = run_in_process(
        ["compile", "evil.py:prog.rasp", "--vocab", "a,b", "--max-len", "3", "-o", "m.safetensors"],
        capsys,
    )
    assert_clean_refusal(outcome, "evil.py:prog.rasp:1")
    assert not marker.exists()
    assert not Path("m.safetensors").exists()


def test_missing_rasp_named_like_python_runs_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "PWNED"
    Path("evil.py").write_text(f"import pathlib\npathlib.Path({str(marker)!r}).write_text('x')\n")
    outcome = run_in_process(
        ["compile", "evil.py:prog.rasp", "--vocab", "a,b", "--max-len", "3", "-o", "m.safetensors"],
        capsys,
    )
    assert_clean_refusal(outcome, "no such file")
    assert not marker.exists()


PYTHON_SOURCES = {
    "sys.exit(0)": ("import sys\nsys.exit(0)\n", "program", ["sys.exit(0)"]),
    "raises": (
        "raise RuntimeError('boom\\nsecond line')\n",
        "program",
        ["RuntimeError", "boom second line"],
    ),
    "syntax error": ("def program(:\n", "program", ["syntax error", ":1:"]),
    "needs arguments": (
        "def program(vocab, n=2):\n    pass\n",
        "program",
        ["no arguments", "vocab"],
    ),
    "exits when called": (
        "import sys\ndef program():\n    sys.exit(3)\n",
        "program",
        ["sys.exit(3)"],
    ),
    "raises when called": ("def program():\n    return 1 / 0\n", "program", ["ZeroDivisionError"]),
    "name missing": ("x = 1\n", "program", ["defines no name 'program'"]),
    "not a SOp": ("program = 42\n", "program", ["expected a tracr SOp", "int"]),
    "returns tokens": (
        "from tracr.rasp import rasp\nprogram = rasp.tokens\n",
        "program",
        ["returns tokens itself"],
    ),
}


@pytest.mark.parametrize("case", sorted(PYTHON_SOURCES))
def test_python_source_fails_cleanly(case, tmp_path, capsys):
    text, name, mentions = PYTHON_SOURCES[case]
    source = tmp_path / "prog.py"
    source.write_text(text)
    out = tmp_path / "m.safetensors"
    args = ["compile", f"{source}:{name}", "--vocab", "a,b", "--max-len", "3", "-o", out]
    outcome = run_in_process(args, capsys)
    assert_clean_refusal(outcome, str(source), *mentions)
    assert not out.exists()


def _bytes_file(name, data):
    def make(tmp_path):
        path = tmp_path / name
        path.write_bytes(data)
        return path

    return make


def _rasp_folder(tmp_path):
    path = tmp_path / "x.rasp"
    path.mkdir()
    return path


COMPILE_SOURCES = {
    "a .py without NAME": (_bytes_file("prog.py", b"x = 1\n"), ["name the SOp"]),
    "a .txt": (_bytes_file("prog.txt", b"return tokens\n"), ["expected a .rasp"]),
    "a folder named .rasp": (_rasp_folder, ["is a directory"]),
    "not UTF-8": (_bytes_file("bad.rasp", b"return \xff\xfe\n"), ["bad.rasp:1:8", "UTF-8"]),
    "returns tokens": (_bytes_file("t.rasp", b"x = tokens\nreturn x\n"), ["returns tokens itself"]),
}


@pytest.mark.parametrize("case", sorted(COMPILE_SOURCES))
def test_compile_source_refused(case, tmp_path, capsys):
    make, mentions = COMPILE_SOURCES[case]
    source = make(tmp_path)
    out = tmp_path / "m.safetensors"
    args = ["compile", source, "--vocab", "a,b", "--max-len", "3", "-o", out]
    assert_clean_refusal(run_in_process(args, capsys), *mentions)
    assert not out.exists()


# --- blow-ups, capped: refused before the memory or time is spent ------------------------------


def _tiny_model(path: Path, **changes) -> Path:
    from distill.models.family import Model, ModelConfig

    fields = dict(
        n_layers=1, d_model=4, n_heads=1, d_head=2, d_mlp=4, n_ctx=6, act_fn="relu",
        normalization=None, causal=False, vocab=("a", "b"), bos="BOS", max_seq_len=5,
        output_kind="categorical", output_values=("a", "b"),
    )  # fmt: skip
    fields.update(changes)
    Model(ModelConfig(**fields)).save(path)
    return path


def test_capped_run_long_context_model_refused_before_work(tmp_path):
    """A valid file whose context (8,000 positions) makes distillation's work explode."""
    model = _tiny_model(tmp_path / "long.safetensors", max_seq_len=8000, n_ctx=8001)
    out = tmp_path / "out"
    outcome = run_capped(["run", model, "-o", out, "-q"])
    assert_clean_refusal(outcome, "MAX_TRACE_VALUES")
    assert not out.exists()


def test_capped_twenty_thousand_layers_refused(tmp_path):
    """20,000 tiny blocks in the file itself: loading is quadratic in layers; refused at once."""
    path = tmp_path / "deep.safetensors"
    header, body = {}, b""
    for layer in range(20_000):
        header[f"blocks.{layer}.attn.b_O"] = {
            "dtype": "F32",
            "shape": [1],
            "data_offsets": [len(body), len(body) + 4],
        }
        body += b"\0\0\0\0"
    header["__metadata__"] = {CONFIG_KEY: json.dumps({"n_layers": 20_000})}
    path.write_bytes(assemble(header, body))
    outcome = run_capped(["predict", path, "a"])
    assert_clean_refusal(outcome, "MAX_TENSORS")


def test_capped_predict_runs_under_the_cap(model_file):
    """The cap leaves room for ordinary use (torch imports and a prediction)."""
    outcome = run_capped(["predict", model_file, "a", "BOS"])
    assert outcome.status == 0, outcome.stderr[-2000:]
    assert outcome.stdout == "BOS a\n"


# --- trained checkpoints and task files (distill import) -----------------------------------------

GOOD_TASK = (
    'alphabet = ["a", "b"]\n[special]\nbos = "BOS"\n[domain]\nkind = "strings"\nmax_len = 4\n'
    '[readout]\npositions = "all"\nkind = "argmax"\n'
)


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory) -> Path:
    """A random 1-layer GPT-2 over ids a, b, BOS (n_positions 6), saved as safetensors."""
    transformers = pytest.importorskip("transformers")
    directory = tmp_path_factory.mktemp("gpt2")
    config = transformers.GPT2Config(
        vocab_size=3, n_positions=6, n_embd=8, n_layer=1, n_head=2,
        bos_token_id=None, eos_token_id=None,
    )  # fmt: skip
    torch.manual_seed(0)
    transformers.GPT2LMHeadModel(config).save_pretrained(directory, safe_serialization=True)
    return directory


def _copy_dir(source: Path, target: Path, config_changes=None, tensors=None) -> Path:
    target.mkdir()
    config = json.loads((source / "config.json").read_text())
    config.update(config_changes or {})
    (target / "config.json").write_text(json.dumps(config))
    state = load_file(str(source / "model.safetensors"))
    if tensors:
        tensors(state)
    save_file(state, str(target / "model.safetensors"))
    return target


CHECKPOINT_CASES = {
    "rotary positions": (dict(rotary_dim=4), ["rotary_dim"]),
    "GPT-J model type": (dict(model_type="gptj"), ["model_type"]),
    "post-LN": (dict(apply_residual_connection_post_layernorm=True), ["post_layernorm"]),
    "parallel attention and MLP": (dict(use_parallel_residual=True), ["use_parallel_residual"]),
    "cross attention": (dict(add_cross_attention=True), ["add_cross_attention"]),
    # Other score scales fold into the queries (tests/test_importers.py); flags that are not
    # true or false cannot say which scale.
    "attention scale a string": (dict(scale_attn_weights="no"), ["scale_attn_weights"]),
    "inverse layer scaling a number": (
        dict(scale_attn_by_inverse_layer_idx=1),
        ["inverse_layer_idx", "true or false"],
    ),
    "unknown activation": (dict(activation_function="swish"), ["activation_function"]),
    "heads not dividing d": (dict(n_head=3), ["n_head"]),
    "n_embd a string": (dict(n_embd="8"), ["n_embd"]),
    "20,000 layers": (dict(n_layer=20_000), ["n_layer"]),
    "wrong shape": (
        dict(n_embd=16, n_head=2),
        ["shape"],
    ),
}


@pytest.mark.parametrize("case", sorted(CHECKPOINT_CASES))
def test_hostile_hf_config_is_refused(case, gpt2_dir, tmp_path, capsys):
    changes, mentions = CHECKPOINT_CASES[case]
    directory = _copy_dir(gpt2_dir, tmp_path / "ckpt", config_changes=changes)
    (tmp_path / "task.toml").write_text(GOOD_TASK)
    out = tmp_path / "m.safetensors"
    args = ["import", "hf", directory, "--task", tmp_path / "task.toml", "-o", out]
    assert_clean_refusal(run_in_process(args, capsys), *mentions)
    assert not out.exists() and list(tmp_path.glob(".m.safetensors*")) == []


def _drop_tensor(state):
    state.pop("transformer.h.0.mlp.c_fc.bias")


def _nan_tensor(state):
    state["transformer.wte.weight"][0, 0] = float("nan")


def _pickle_only(directory: Path) -> None:
    (directory / "model.safetensors").unlink()
    (directory / "pytorch_model.bin").write_bytes(b"\x80\x04not really a pickle")


DIRECTORY_CASES = {
    "missing tensor": (lambda d: None, _drop_tensor, ["missing", "c_fc.bias"]),
    "NaN weight": (lambda d: None, _nan_tensor, ["wte.weight", "finite"]),
    "pickle only": (_pickle_only, None, ["pytorch_model.bin", "pickle"]),
    "no config": (lambda d: (d / "config.json").unlink(), None, ["config.json"]),
    "config not JSON": (
        lambda d: (d / "config.json").write_text("{model_type: gpt2"),
        None,
        ["JSON"],
    ),
}


@pytest.mark.parametrize("case", sorted(DIRECTORY_CASES))
def test_hostile_hf_directory_is_refused(case, gpt2_dir, tmp_path, capsys):
    edit, tensors, mentions = DIRECTORY_CASES[case]
    directory = _copy_dir(gpt2_dir, tmp_path / "ckpt", tensors=tensors)
    edit(directory)
    (tmp_path / "task.toml").write_text(GOOD_TASK)
    out = tmp_path / "m.safetensors"
    args = ["import", "hf", directory, "--task", tmp_path / "task.toml", "-o", out]
    assert_clean_refusal(run_in_process(args, capsys), *mentions)
    assert not out.exists()


TASK_CASES = {
    "alphabet larger than the vocab": (
        GOOD_TASK.replace('["a", "b"]', '["a", "b", "c"]'),
        ["alphabet", "at most 2 tokens"],
    ),
    "readout position beyond n_ctx": (
        GOOD_TASK.replace('positions = "all"', "positions = [1, 9]"),
        ["readout.positions", "n_ctx"],
    ),
    "max_len beyond the context": (
        GOOD_TASK.replace("max_len = 4", "max_len = 6"),
        ["domain.max_len"],
    ),
    "unknown readout kind": (
        GOOD_TASK.replace('kind = "argmax"', 'kind = "softmax"'),
        ["readout.kind", "softmax"],
    ),
    "bad TOML": (GOOD_TASK.replace("[domain]", "[domain"), ["TOML"]),
    "alphabet a string": (GOOD_TASK.replace('["a", "b"]', '"ab"'), ["alphabet"]),
    "max_len a string": (GOOD_TASK.replace("max_len = 4", 'max_len = "4"'), ["domain.max_len"]),
    "unknown domain kind": (
        GOOD_TASK.replace('kind = "strings"', 'kind = "regex"'),
        ["domain.kind", "regex"],
    ),
    "no bos": (GOOD_TASK.replace('bos = "BOS"', 'eos = "EOS"'), ["special.bos"]),
    "membership not RASP": (
        GOOD_TASK.replace("max_len = 4", 'max_len = 4\nmembership = "import os"'),
        ["domain.membership"],
    ),
    "membership file missing": (
        GOOD_TASK.replace("max_len = 4", 'max_len = 4\nmembership_file = "nope.rasp"'),
        ["membership_file"],
    ),
    "subset outside the outputs": (
        GOOD_TASK.replace('kind = "argmax"', 'kind = "subset_argmax"\nsubset = ["z"]'),
        ["readout.subset"],
    ),
    "unknown top-level key": ("eval = 1\n" + GOOD_TASK, ["eval"]),
    "after_sep without sep": (
        GOOD_TASK.replace('positions = "all"', 'positions = "after_sep"'),
        ["special.sep"],
    ),
}


@pytest.mark.parametrize("case", sorted(TASK_CASES))
def test_task_file_not_matching_the_model_is_refused(case, gpt2_dir, tmp_path, capsys):
    text, mentions = TASK_CASES[case]
    (tmp_path / "task.toml").write_text(text)
    out = tmp_path / "m.safetensors"
    args = ["import", "hf", gpt2_dir, "--task", tmp_path / "task.toml", "-o", out]
    assert_clean_refusal(run_in_process(args, capsys), *mentions)
    assert not out.exists()


def test_tl_config_with_rotary_positions_is_refused(tmp_path, capsys):
    (tmp_path / "cfg.json").write_text(json.dumps({
        "n_layers": 1, "d_model": 4, "n_heads": 1, "d_head": 4, "d_mlp": 4, "n_ctx": 5,
        "d_vocab": 4, "act_fn": "relu", "positional_embedding_type": "rotary",
    }))  # fmt: skip
    save_file({"embed.W_E": torch.zeros(4, 4)}, str(tmp_path / "tl.safetensors"))
    (tmp_path / "task.toml").write_text(GOOD_TASK)
    out = tmp_path / "m.safetensors"
    args = ["import", "tl", tmp_path / "tl.safetensors", "--config", tmp_path / "cfg.json",
            "--task", tmp_path / "task.toml", "-o", out]  # fmt: skip
    assert_clean_refusal(run_in_process(args, capsys), "positional_embedding_type")
    assert not out.exists()


def test_run_on_an_imported_model_claims_a_program_only_where_it_equals_the_model(
    gpt2_dir, tmp_path, capsys
):
    (tmp_path / "task.toml").write_text(GOOD_TASK)
    model = tmp_path / "m.safetensors"
    args = ["import", "hf", gpt2_dir, "--task", tmp_path / "task.toml", "-o", model]
    assert run_in_process(args, capsys).status == 0
    outcome = run_in_process(["run", model, "-o", tmp_path / "out", "-q"], capsys)
    assert "Traceback" not in outcome.stderr
    if outcome.status == 1:
        assert "no faithful program: refuted" in outcome.stderr and outcome.stdout == ""
        assert not (tmp_path / "out").exists()
        return
    # A program is claimed: it equals the imported model on every input of the task (30).
    assert outcome.status == 0 and "verified: exhaustive(4) on 30 inputs" in outcome.stdout
    import dsl
    from distill.trained.domain import task_of

    imported = distill.load_model(model)
    task = task_of(imported)
    program = dsl.parse((tmp_path / "out" / "program.rasp").read_text(), filename="p.rasp")
    inputs = [x for n in range(1, 5) for x in task.inputs(n)]
    assert len(inputs) == 30
    assert dsl.evaluate(program, inputs) == task.read_out(imported, inputs)
