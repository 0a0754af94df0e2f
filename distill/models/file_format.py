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
import stat
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from distill.errors import ModelFileError
from distill.files import replaced_atomically
from distill.models import limits
from distill.models.family import (
    FORMAT_VERSION,
    Model,
    ModelConfig,
    ModelConfigError,
    parameter_shapes,
)

CONFIG_KEY = "distill.config"
RECORD_PREFIX = "distill."  # a record named X is stored as metadata "distill.X"
DTYPES = {"F32": torch.float32, "F64": torch.float64}
CONFIG_FIELDS = tuple(field.name for field in dataclasses.fields(ModelConfig))
# Fields added to version 1 after its first files were written: a file without them gets the
# defaults (no LayerNorm epsilon other than 1e-5, no tied unembedding), so those files still load.
ADDED_FIELDS = ("ln_eps", "tied_unembed")


def save_model(model: Model, path: str | os.PathLike) -> None:
    """Write `model` to `path` (a temporary file in the same folder, then renamed)."""
    path = Path(path)
    tensors = {name: tensor.detach().contiguous() for name, tensor in model.state_dict().items()}
    metadata = {CONFIG_KEY: json.dumps(dataclasses.asdict(model.config))}
    for name, record in model.records.items():
        metadata[RECORD_PREFIX + name] = json.dumps(record)
    with replaced_atomically(path) as temporary:
        save_file(tensors, str(temporary), metadata=metadata)


def load_model(path: str | os.PathLike) -> Model:
    """Read and validate a model file; raise ModelFileError naming the bad field.

    Every size is checked against `distill.models.limits` before anything is allocated.
    """
    path = Path(path)
    _check_is_model_file(path)
    try:
        with safe_open(str(path), framework="pt") as file:
            names = list(file.keys())
            if len(names) > limits.MAX_TENSORS:
                raise ModelFileError(
                    f"tensors: {len(names)}, over the limit {limits.MAX_TENSORS} "
                    f"({limits.limit_name('MAX_TENSORS')})"
                )
            metadata = file.metadata() or {}
            config = _read_config(metadata, set(names))
            records = _read_records(metadata)
            dtype = _check_tensor_layout(file, config)
            tensors = {name: file.get_tensor(name) for name in names}
    except SafetensorError as error:
        raise ModelFileError(f"{path}: not a valid safetensors file ({error})") from None
    except ModelFileError as error:
        raise ModelFileError(f"{path}: {error}") from None
    except (OSError, RuntimeError, ValueError) as error:
        raise ModelFileError(f"{path}: cannot read the model file ({error})") from None
    for name, tensor in tensors.items():
        if not torch.isfinite(tensor).all():
            raise ModelFileError(f"{path}: tensor {name}: expected finite values, found NaN or inf")
    if config.tied_unembed:
        _check_tied(tensors, config, path)
    model = Model(config, dtype=dtype)
    model.load_state_dict(tensors)
    model.records = records
    return model


def _check_tied(tensors: dict, config: ModelConfig, path: Path) -> None:
    """A tied unembedding is stored, and must be the embedding's first d_out rows transposed."""
    if not torch.equal(tensors["unembed.W_U"], tensors["embed.W_E"][: config.d_out].T):
        raise ModelFileError(
            f"{path}: tensor unembed.W_U: expected embed.W_E[:{config.d_out}] transposed "
            "(config.tied_unembed is true), got different values"
        )


def _check_is_model_file(path: Path) -> None:
    """A regular file (links followed) whose length prefix and header are within the limits."""
    try:
        status = path.stat()
    except FileNotFoundError:
        raise ModelFileError(f"{path}: no such model file") from None
    except OSError as error:
        raise ModelFileError(f"{path}: cannot read the model file ({error.strerror})") from None
    if stat.S_ISDIR(status.st_mode):
        raise ModelFileError(f"{path}: is a directory, expected a model file (.safetensors)")
    if not stat.S_ISREG(status.st_mode):
        raise ModelFileError(
            f"{path}: is not a regular file (a device, FIFO or socket), expected a model file"
        )
    try:
        with path.open("rb") as handle:
            prefix = handle.read(8)
    except OSError as error:
        raise ModelFileError(f"{path}: cannot read the model file ({error.strerror})") from None
    if len(prefix) < 8:
        raise ModelFileError(
            f"{path}: not a valid safetensors file: {status.st_size} bytes, shorter than "
            "the 8-byte header length"
        )
    header_bytes = int.from_bytes(prefix, "little")
    if header_bytes > limits.MAX_HEADER_BYTES:
        raise ModelFileError(
            f"{path}: not a valid safetensors file: header length {header_bytes} bytes, "
            "over the limit "
            f"{limits.MAX_HEADER_BYTES} ({limits.limit_name('MAX_HEADER_BYTES')})"
        )
    if header_bytes > status.st_size - 8:
        raise ModelFileError(
            f"{path}: not a valid safetensors file: header length {header_bytes} bytes, "
            "more than the file holds "
            f"({status.st_size - 8} after the length)"
        )


def _read_json(metadata: dict, key: str):
    """The JSON value of metadata entry `key`, within the size and depth limits."""
    text = metadata[key]
    if len(text) > limits.MAX_CONFIG_BYTES:
        raise ModelFileError(
            f"metadata {key!r}: {len(text)} characters, over the limit "
            f"{limits.MAX_CONFIG_BYTES} ({limits.limit_name('MAX_CONFIG_BYTES')})"
        )
    depth = _json_depth(text)
    if depth > limits.MAX_CONFIG_DEPTH:
        raise ModelFileError(
            f"metadata {key!r}: JSON nested {depth} deep, over the limit "
            f"{limits.MAX_CONFIG_DEPTH} ({limits.limit_name('MAX_CONFIG_DEPTH')})"
        )
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ModelFileError(
            f"metadata {key!r}: expected JSON, got invalid JSON ({error})"
        ) from None


def _read_records(metadata: dict) -> dict[str, dict]:
    """Every `distill.X` entry but the config, as record X (a JSON object)."""
    records = {}
    for key in sorted(metadata):
        if key == CONFIG_KEY or not key.startswith(RECORD_PREFIX):
            continue
        record = _read_json(metadata, key)
        if not isinstance(record, dict):
            raise ModelFileError(
                f"metadata {key!r}: expected a JSON object, got {type(record).__name__}"
            )
        records[key.removeprefix(RECORD_PREFIX)] = record
    return records


def _read_config(metadata: dict, tensor_names: set[str]) -> ModelConfig:
    if CONFIG_KEY not in metadata:
        raise ModelFileError(
            f"metadata: expected a {CONFIG_KEY!r} entry holding the model config as JSON "
            "(is this a distill model file?)"
        )
    fields = _read_json(metadata, CONFIG_KEY)
    if not isinstance(fields, dict):
        raise ModelFileError(f"config: expected a JSON object, got {type(fields).__name__}")
    # The version decides how to read everything else, so it is checked first.
    if fields.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(
            f"config.format_version: expected {FORMAT_VERSION}, got {fields.get('format_version')!r}"
        )
    missing = [name for name in CONFIG_FIELDS if name not in fields and name not in ADDED_FIELDS]
    unknown = sorted(set(fields) - set(CONFIG_FIELDS))
    if missing:
        raise ModelFileError(f"config: missing field(s) {', '.join(missing)}")
    if unknown:
        raise ModelFileError(f"config: unknown field(s) {', '.join(unknown)}")
    over = limits.architecture_problems(fields)
    if over:
        raise ModelFileError(f"config.{'; '.join(over)}")
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
    count = limits.parameter_count(expected)
    if count > limits.MAX_PARAMETERS:
        raise ModelFileError(
            f"config: {count:,} parameters, over the limit {limits.MAX_PARAMETERS:,} "
            f"({limits.limit_name('MAX_PARAMETERS')})"
        )
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


def _json_depth(text: str) -> int:
    """The deepest nesting of [ and { in JSON `text` (outside strings), without parsing it."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest
