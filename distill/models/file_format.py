"""The model file: safetensors weights with the JSON config in the header metadata.

Loading never runs code (no pickle, no `torch.load`) and trusts nothing: the
config is checked field by field, every tensor's name, dtype and shape against
the config, and every weight for NaN/inf, before a model is built.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from distill.errors import ModelFileError
from distill.files import replaced_atomically
from distill.models.family import (
    FORMAT_VERSION,
    Model,
    ModelConfig,
    ModelConfigError,
    parameter_shapes,
)

CONFIG_KEY = "distill.config"
DTYPES = {"F32": torch.float32, "F64": torch.float64}
CONFIG_FIELDS = tuple(field.name for field in dataclasses.fields(ModelConfig))


def save_model(model: Model, path: str | os.PathLike) -> None:
    """Write `model` to `path` (a temporary file in the same folder, then renamed)."""
    path = Path(path)
    tensors = {name: tensor.detach().contiguous() for name, tensor in model.state_dict().items()}
    metadata = {CONFIG_KEY: json.dumps(dataclasses.asdict(model.config))}
    with replaced_atomically(path) as temporary:
        save_file(tensors, str(temporary), metadata=metadata)


def load_model(path: str | os.PathLike) -> Model:
    """Read and validate a model file; raise ModelFileError naming the bad field."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    try:
        with safe_open(str(path), framework="pt") as file:
            config = _read_config(file.metadata() or {}, set(file.keys()))
            dtype = _check_tensor_layout(file, config)
            tensors = {name: file.get_tensor(name) for name in file.keys()}  # noqa: SIM118 (not a dict)
    except SafetensorError as error:
        raise ModelFileError(f"{path}: not a valid safetensors file ({error})") from None
    except ModelFileError as error:
        raise ModelFileError(f"{path}: {error}") from None
    for name, tensor in tensors.items():
        if not torch.isfinite(tensor).all():
            raise ModelFileError(f"{path}: tensor {name}: expected finite values, found NaN or inf")
    model = Model(config, dtype=dtype)
    model.load_state_dict(tensors)
    return model


def _read_config(metadata: dict, tensor_names: set[str]) -> ModelConfig:
    if CONFIG_KEY not in metadata:
        raise ModelFileError(
            f"metadata: expected a {CONFIG_KEY!r} entry holding the model config as JSON "
            "(is this a distill model file?)"
        )
    try:
        fields = json.loads(metadata[CONFIG_KEY])
    except json.JSONDecodeError as error:
        raise ModelFileError(
            f"metadata {CONFIG_KEY!r}: expected JSON, got invalid JSON ({error})"
        ) from None
    if not isinstance(fields, dict):
        raise ModelFileError(f"config: expected a JSON object, got {type(fields).__name__}")
    # The version decides how to read everything else, so it is checked first.
    if fields.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(
            f"config.format_version: expected {FORMAT_VERSION}, got {fields.get('format_version')!r}"
        )
    missing = [name for name in CONFIG_FIELDS if name not in fields]
    unknown = sorted(set(fields) - set(CONFIG_FIELDS))
    if missing:
        raise ModelFileError(f"config: missing field(s) {', '.join(missing)}")
    if unknown:
        raise ModelFileError(f"config: unknown field(s) {', '.join(unknown)}")
    for name in ("vocab", "output_values"):
        if isinstance(fields[name], list):  # JSON has no tuples
            fields[name] = tuple(fields[name])
    try:
        config = ModelConfig(**fields)
    except ModelConfigError as error:
        raise ModelFileError(f"config.{error}") from None
    # Checked before building the expected layout, which costs time per layer.
    blocks = {
        int(match.group(1))
        for name in tensor_names
        if (match := re.match(r"blocks\.(\d+)\.", name))
    }
    if config.n_layers != len(blocks):
        raise ModelFileError(
            f"config.n_layers: expected {len(blocks)} (the file has tensors for {len(blocks)} "
            f"blocks), got {config.n_layers}"
        )
    return config


def _check_tensor_layout(file, config: ModelConfig) -> torch.dtype:
    """Check names, shapes and dtypes against the config; return the (single) dtype."""
    expected = parameter_shapes(config)
    present = set(file.keys())
    missing = sorted(set(expected) - present)
    extra = sorted(present - set(expected))
    if missing:
        raise ModelFileError(f"tensors: missing {', '.join(missing)}")
    if extra:
        raise ModelFileError(f"tensors: unexpected {', '.join(extra)}")
    dtypes = set()
    for name, shape in expected.items():
        tensor = file.get_slice(name)
        if tuple(tensor.get_shape()) != shape:
            raise ModelFileError(
                f"tensor {name}: expected shape {list(shape)}, got {list(tensor.get_shape())}"
            )
        if tensor.get_dtype() not in DTYPES:
            raise ModelFileError(
                f"tensor {name}: expected dtype F32 or F64, got {tensor.get_dtype()}"
            )
        dtypes.add(tensor.get_dtype())
    if len(dtypes) > 1:
        raise ModelFileError(
            f"tensors: expected one dtype for all, got {', '.join(sorted(dtypes))}"
        )
    return DTYPES[dtypes.pop()]
