"""The model file: bit-exact round trip, and a clear error for every bad file.

Corrupt files are made from a valid one by changing one thing; each must be
refused by `load_model` with a message naming what is wrong, and by the CLI
with exit status 2.
"""

from __future__ import annotations

import dataclasses
import json
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import distill
from distill.cli import main
from distill.errors import ModelFileError
from distill.models.family import Model, ModelConfig, ModelConfigError
from distill.models.file_format import CONFIG_KEY

CONFIG = ModelConfig(
    n_layers=2,
    d_model=8,
    n_heads=2,
    d_head=3,
    d_mlp=5,
    n_ctx=5,
    act_fn="gelu",
    normalization="LN",
    causal=True,
    vocab=("a", "b", 3),
    bos="BOS",
    max_seq_len=4,
    output_kind="categorical",
    output_values=("x", 7, 2.5, True, None),
)


def random_model(config: ModelConfig = CONFIG, dtype=torch.float32, seed: int = 0) -> Model:
    model = Model(config, dtype=dtype)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator, dtype=dtype))
    return model


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_save_then_load_is_bit_exact(tmp_path, dtype):
    model = random_model(dtype=dtype)
    path = tmp_path / "model.safetensors"
    model.save(path)
    loaded = distill.load_model(path)
    assert loaded.config == model.config
    assert loaded.state_dict().keys() == model.state_dict().keys()
    for name, tensor in model.state_dict().items():
        assert loaded.state_dict()[name].dtype == dtype
        assert torch.equal(loaded.state_dict()[name], tensor), name
    inputs = [["a", 3], ["b"], [3, 3, "a", "b"]]
    assert loaded.predict(inputs) == model.predict(inputs)


def test_numerical_model_round_trips(tmp_path):
    config = dataclasses.replace(
        CONFIG, output_kind="numerical", output_values=(), normalization=None
    )
    model = random_model(config)
    model.save(tmp_path / "m.safetensors")
    loaded = distill.load_model(tmp_path / "m.safetensors")
    assert loaded.config == config
    assert loaded.predict([["a", "b"]]) == model.predict([["a", "b"]])


def test_records_round_trip_and_a_bad_record_is_refused(tmp_path):
    model = random_model()
    model.records = {"task": {"alphabet": ["a", "b"], "lengths": [1, 4]}, "training": {"seed": 3}}
    model.save(tmp_path / "m.safetensors")
    assert distill.load_model(tmp_path / "m.safetensors").records == model.records

    tensors = {name: t.contiguous() for name, t in model.state_dict().items()}
    metadata = {CONFIG_KEY: json.dumps(dataclasses.asdict(CONFIG)), "distill.task": "[1, 2]"}
    save_file(tensors, str(tmp_path / "bad.safetensors"), metadata=metadata)
    with pytest.raises(ModelFileError, match="'distill.task': expected a JSON object, got list"):
        distill.load_model(tmp_path / "bad.safetensors")


def test_save_replaces_atomically_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "model.safetensors"
    random_model(seed=1).save(path)
    random_model(seed=2).save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]
    assert torch.equal(distill.load_model(path).embed.W_E, random_model(seed=2).embed.W_E)


def test_config_rejects_bad_fields_in_code():
    with pytest.raises(ModelConfigError, match="n_heads: expected a positive integer, got 0"):
        dataclasses.replace(CONFIG, n_heads=0)


# ----------------------------------------------------------------------------
# Corrupt and hostile files.
# ----------------------------------------------------------------------------


def _valid_parts():
    model = random_model()
    tensors = {name: t.detach().clone().contiguous() for name, t in model.state_dict().items()}
    config = json.loads(json.dumps(dataclasses.asdict(CONFIG)))
    return tensors, config


def _write(path: Path, tensors: dict, config=None, raw_metadata: str | None = None):
    metadata = {}
    if config is not None:
        metadata[CONFIG_KEY] = json.dumps(config)
    if raw_metadata is not None:
        metadata[CONFIG_KEY] = raw_metadata
    save_file(tensors, str(path), metadata=metadata or None)


def _config_edit(**changes):
    def make(path):
        tensors, config = _valid_parts()
        for key, value in changes.items():
            if value is _DELETE:
                del config[key]
            else:
                config[key] = value
        _write(path, tensors, config)

    return make


def _tensor_edit(edit):
    def make(path):
        tensors, config = _valid_parts()
        edit(tensors)
        _write(path, tensors, config)

    return make


_DELETE = object()


class _Exploit:
    """Unpickling this would create a marker file: loading must never unpickle."""

    marker: Path

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _pickle_renamed(path):
    _Exploit.marker = path.with_name("UNPICKLED")
    path.write_bytes(pickle.dumps({"embed.W_E": _Exploit()}))


def _truncated(path):
    tensors, config = _valid_parts()
    _write(path, tensors, config)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 40])


def _set(name, value):
    def edit(tensors):
        tensors[name] = value

    return edit


def _poison(name, value):
    def edit(tensors):
        tensors[name] = tensors[name].clone()
        tensors[name].view(-1)[0] = value

    return edit


BAD_FILES = {
    "truncated": (_truncated, "not a valid safetensors file"),
    "empty": (lambda p: p.write_bytes(b""), "not a valid safetensors file"),
    "pickle_renamed": (_pickle_renamed, "not a valid safetensors file"),
    "text": (
        lambda p: p.write_text("hello, I am not a model\n" * 10),
        "not a valid safetensors file",
    ),
    "no_config": (lambda p: _write(p, _valid_parts()[0]), f"expected a '{CONFIG_KEY}' entry"),
    "config_not_json": (
        lambda p: _write(p, _valid_parts()[0], raw_metadata="{n_layers: 2"),
        "expected JSON, got invalid JSON",
    ),
    "config_not_object": (
        lambda p: _write(p, _valid_parts()[0], config=[1, 2]),
        "config: expected a JSON object",
    ),
    "no_format_version": (
        _config_edit(format_version=_DELETE),
        "config.format_version: expected 1, got None",
    ),
    "future_format_version": (
        _config_edit(format_version=2),
        "config.format_version: expected 1, got 2",
    ),
    "missing_field": (_config_edit(d_mlp=_DELETE), r"config: missing field\(s\) d_mlp"),
    "unknown_field": (_config_edit(dropout=0.1), r"config: unknown field\(s\) dropout"),
    "ill_typed_int": (
        _config_edit(n_heads="two"),
        "config.n_heads: expected a positive integer, got 'two'",
    ),
    "bool_as_int": (
        _config_edit(d_head=True),
        "config.d_head: expected a positive integer, got True",
    ),
    "zero_width": (_config_edit(d_model=0), "config.d_model: expected a positive integer, got 0"),
    "unknown_activation": (
        _config_edit(act_fn="tanh"),
        "config.act_fn: expected 'relu', 'gelu' or 'gelu_new', got 'tanh'",
    ),
    "unknown_normalization": (
        _config_edit(normalization="RMS"),
        "config.normalization: expected null or 'LN'",
    ),
    "causal_not_bool": (
        _config_edit(causal="yes"),
        "config.causal: expected true or false, got 'yes'",
    ),
    "vocab_not_list": (
        _config_edit(vocab="abc"),
        "config.vocab: expected a non-empty list of distinct",
    ),
    "vocab_empty": (_config_edit(vocab=[]), "config.vocab: expected a non-empty list"),
    "vocab_repeats": (
        _config_edit(vocab=["a", "a", 3]),
        "config.vocab: expected a non-empty list of distinct",
    ),
    "vocab_holds_bos": (_config_edit(vocab=["a", "BOS", 3]), "config.vocab: .*without bos"),
    "vocab_nested": (_config_edit(vocab=["a", ["b"], 3]), "config.vocab: expected"),
    "bos_not_string": (_config_edit(bos=0), "config.bos: expected a non-empty string, got 0"),
    "n_ctx_inconsistent": (
        _config_edit(n_ctx=7),
        r"config.n_ctx: expected max_seq_len \+ 1 = 5, got 7",
    ),
    "unknown_output_kind": (
        _config_edit(output_kind="softmax"),
        "config.output_kind: expected 'categorical' or",
    ),
    "numerical_with_values": (
        _config_edit(output_kind="numerical"),
        "config.output_values: expected an empty list for numerical output",
    ),
    "categorical_without_values": (
        _config_edit(output_values=[]),
        "config.output_values: expected a non-empty",
    ),
    "n_layers_disagrees": (
        _config_edit(n_layers=3),
        r"config.n_layers: expected 2 \(the file has tensors for 2",
    ),
    "missing_tensor": (
        _tensor_edit(lambda t: t.pop("blocks.1.mlp.W_in")),
        "tensors: missing blocks.1.mlp.W_in",
    ),
    "extra_tensor": (
        _tensor_edit(_set("blocks.0.attn.W_X", torch.zeros(2))),
        "tensors: unexpected blocks.0.attn.W_X",
    ),
    "wrong_shape": (
        _tensor_edit(_set("blocks.0.attn.W_Q", torch.zeros(2, 8, 4))),
        r"tensor blocks.0.attn.W_Q: expected shape \[2, 8, 3\], got \[2, 8, 4\]",
    ),
    "d_model_disagrees": (
        _config_edit(d_model=9),
        r"tensor embed.W_E: expected shape \[5, 9\], got \[5, 8\]",
    ),
    "integer_weights": (
        _tensor_edit(_set("unembed.b_U", torch.zeros(5, dtype=torch.int64))),
        "tensor unembed.b_U: expected dtype F32 or F64, got I64",
    ),
    "mixed_dtypes": (
        _tensor_edit(_set("unembed.b_U", torch.zeros(5, dtype=torch.float64))),
        "tensors: expected one dtype for all, got F32, F64",
    ),
    "nan_weight": (
        _tensor_edit(_poison("blocks.1.attn.W_K", float("nan"))),
        "tensor blocks.1.attn.W_K: expected finite",
    ),
    "inf_weight": (
        _tensor_edit(_poison("pos_embed.W_pos", float("inf"))),
        "tensor pos_embed.W_pos: expected finite",
    ),
}


@pytest.mark.parametrize("kind", BAD_FILES)
def test_bad_file_is_refused_with_a_clear_message(tmp_path, kind, capsys):
    make, message = BAD_FILES[kind]
    path = tmp_path / "bad.safetensors"
    make(path)
    with pytest.raises(ModelFileError, match=message) as raised:
        distill.load_model(path)
    assert str(raised.value).startswith(str(path))
    assert not path.with_name("UNPICKLED").exists()

    assert main(["predict", str(path), "a"]) == 2
    error_line = capsys.readouterr().err.strip()
    assert error_line.startswith("error: ") and str(path) in error_line and "\n" not in error_line


def test_missing_file_and_directory_are_refused(tmp_path, capsys):
    with pytest.raises(ModelFileError, match="no such model file"):
        distill.load_model(tmp_path / "absent.safetensors")
    with pytest.raises(ModelFileError, match="is a directory, expected a model file"):
        distill.load_model(tmp_path)
    assert main(["predict", str(tmp_path / "absent.safetensors"), "a"]) == 2
