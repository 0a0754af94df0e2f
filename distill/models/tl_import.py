"""TransformerLens checkpoints in and out: a TL-named state dict (safetensors) with its
`HookedTransformerConfig` fields as JSON. Files only, never pickle.

The family already uses TransformerLens' names and shapes (`embed.W_E`,
`blocks.0.attn.W_Q [n_heads, d_model, d_head]`, `ln_final.w`, `unembed.W_U`, ...),
so importing is checking the config, reordering token rows and columns to the
family's order (`Task.checkpoint_ids`), and refusing what the family cannot compute.
`hf_import` converts a GPT-2 checkpoint into this layout and assembles it here.

Config fields that change the computed function and that the family lacks are
refused by name (rotary or shortformer positions, parallel attention and MLP,
RMS norm, gated MLPs, grouped-query or local attention, mixtures of experts, ...);
fields that don't (names, devices, initialisation) are ignored. A score scale
other than the family's 1/sqrt(d_head) (`use_attn_scale`, `attn_scale`,
`scale_attn_by_inverse_layer_idx`; GPT-2's `scale_attn_weights` and the same
per-layer flag) is folded into the query weights and biases: (c q).k / sqrt(d_head)
is the checkpoint's q.k / scale for c = sqrt(d_head) / scale.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import torch

from distill.errors import BadInputError
from distill.models import limits
from distill.models.family import LN_EPS, Model, ModelConfig, ModelConfigError
from distill.models.task import Task

# TL's name -> the family's; gelu_fast is tanh-GELU spelled out with sqrt(2/pi) to 10 digits
# (4e-12 relative off, far below float32's rounding): gelu_new.
ACT_FNS = {
    "relu": "relu",
    "gelu": "gelu",
    "gelu_new": "gelu_new",
    "gelu_fast": "gelu_new",
    "gelu_pytorch_tanh": "gelu_new",
}
NORMALIZATIONS = {"LN": "LN", "LNPre": "LN", None: None}
# field -> the value (or values) the family computes; any other value is refused.
REQUIRED_VALUES = {
    "positional_embedding_type": ("standard",),
    "parallel_attn_mlp": (False,),
    "attention_dir": ("causal", "bidirectional"),
    "gated_mlp": (False,),
    "use_local_attn": (False,),
    "final_rms": (False,),
    "use_split_qkv_input": (False,),
    "use_attn_in": (False,),
    "n_key_value_heads": (None,),
    "rotary_dim": (None,),
    "use_normalization_before_and_after": (False,),
    "output_logits_soft_cap": (-1.0, 0, None),
    "attn_scores_soft_cap": (-1.0, 0, None),
    "post_embedding_ln": (False,),
    "num_experts": (None,),
    "experts_per_token": (None,),
    "relative_attention_max_distance": (None,),
    "relative_attention_num_buckets": (None,),
    "load_in_4bit": (False,),
}
# Buffers TransformerLens keeps in its state dict that are not weights (causal masks).
IGNORED_SUFFIXES = (".attn.mask", ".attn.IGNORE")
FLOAT_DTYPES = {
    "F32": torch.float32,
    "F64": torch.float64,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
}


class CheckpointError(BadInputError):
    """A checkpoint (TransformerLens or Hugging Face) that cannot be imported; names the field."""


# --- shared by both importers ---------------------------------------------------------------------


def read_json(path: Path, what: str) -> dict:
    """A JSON object from a small file (the config), within the config size limit."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such {what}") from None
    if not path.is_file():
        raise CheckpointError(f"{path}: expected a {what} file")
    if size > limits.MAX_CONFIG_BYTES:
        raise CheckpointError(
            f"{path}: {size} bytes, over the limit {limits.MAX_CONFIG_BYTES} "
            f"({limits.limit_name('MAX_CONFIG_BYTES')})"
        )
    try:
        fields = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise CheckpointError(
            f"{path}: expected a JSON {what}, got unreadable JSON ({error})"
        ) from None
    if not isinstance(fields, dict):
        raise CheckpointError(f"{path}: expected a JSON object, got {type(fields).__name__}")
    return fields


def read_tensors(path: Path, expected: dict[str, tuple], ignored=lambda name: False) -> dict:
    """The tensors of a safetensors file, each name and shape as `expected` (names `ignored`
    may also be present and are dropped), finite, as float32 (float64 if all are)."""
    from safetensors import SafetensorError, safe_open

    from distill.errors import ModelFileError
    from distill.models.file_format import _check_is_model_file

    count = limits.parameter_count(expected)
    if count > limits.MAX_PARAMETERS:
        raise CheckpointError(
            f"config: {count:,} parameters, over the limit {limits.MAX_PARAMETERS:,} "
            f"({limits.limit_name('MAX_PARAMETERS')})"
        )
    try:
        _check_is_model_file(path)
        with safe_open(str(path), framework="pt") as file:
            names = [name for name in file.keys() if not ignored(name)]
            missing = sorted(set(expected) - set(names))
            extra = sorted(set(names) - set(expected))
            if missing:
                raise CheckpointError(f"tensors: missing {', '.join(missing[:5])}")
            if extra:
                raise CheckpointError(f"tensors: unexpected {', '.join(extra[:5])}")
            for name, shape in expected.items():
                tensor = file.get_slice(name)
                if tuple(tensor.get_shape()) != shape:
                    raise CheckpointError(
                        f"tensor {name}: expected shape {list(shape)}, got {list(tensor.get_shape())}"
                    )
                if tensor.get_dtype() not in FLOAT_DTYPES:
                    raise CheckpointError(
                        f"tensor {name}: expected a float dtype ({', '.join(FLOAT_DTYPES)}), "
                        f"got {tensor.get_dtype()}"
                    )
            tensors = {name: file.get_tensor(name) for name in expected}
    except (ModelFileError, CheckpointError) as error:
        raise CheckpointError(f"{path}: {str(error).removeprefix(f'{path}: ')}") from None
    except (SafetensorError, OSError, RuntimeError, ValueError) as error:
        raise CheckpointError(f"{path}: not a valid safetensors file ({error})") from None
    dtype = (
        torch.float64 if all(t.dtype == torch.float64 for t in tensors.values()) else torch.float32
    )
    for name, tensor in tensors.items():
        if not torch.isfinite(tensor).all():
            raise CheckpointError(
                f"{path}: tensor {name}: expected finite values, found NaN or inf"
            )
    return {name: tensor.to(dtype) for name, tensor in tensors.items()}


def positive_int(fields: dict, name: str, problems: list, default=None):
    value = fields.get(name, default)
    if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        problems.append(f"{name}: expected a positive integer, got {value!r}")
        return 1
    return value


def assemble(
    tl_config: dict, state: dict, task: Task, n_input_ids: int, n_output_ids: int
) -> Model:
    """A family model from TL-layout weights (`tl_config` already checked: d_model, n_heads,
    d_head, d_mlp, n_ctx, act_fn, normalization, causal, eps, query_scales), the query
    scales folded in, token rows and unembedding columns put in the family's order for
    `task`: the output values are the vocab, BOS, then the task's output-only tokens. An
    unembedding equal to the embedding's rows (GPT-2's tied one) is marked tied."""
    vocab, bos = task.family_tokens()
    ids = task.checkpoint_ids(n_input_ids)
    outputs = (*vocab, bos, *task.output_only_tokens())
    over = [name for name in outputs if ids[name] >= n_output_ids]
    if over and over[0] in task.output_only_tokens():
        raise CheckpointError(
            f"readout.subset: {over[0]!r} is no token the model reads, so it is an output-only "
            f"token, at id {ids[over[0]]}; the checkpoint scores ids 0..{n_output_ids - 1} "
            "(name its id in `tokens`, or read out the model's output values)"
        )
    if over:
        raise CheckpointError(
            f"d_vocab_out: expected more than the id {ids[over[0]]} of token {over[0]!r}, "
            f"got {n_output_ids}"
        )
    try:
        config = ModelConfig(
            n_layers=tl_config["n_layers"],
            d_model=tl_config["d_model"],
            n_heads=tl_config["n_heads"],
            d_head=tl_config["d_head"],
            d_mlp=tl_config["d_mlp"],
            n_ctx=tl_config["n_ctx"],
            act_fn=tl_config["act_fn"],
            normalization=tl_config["normalization"],
            causal=tl_config["causal"],
            vocab=vocab,
            bos=bos,
            max_seq_len=tl_config["n_ctx"] - 1,
            output_kind="categorical",
            output_values=outputs,
            ln_eps=tl_config["eps"],
        )
    except ModelConfigError as error:
        raise CheckpointError(f"task and checkpoint: {error}") from None
    task.check_matches(config)
    rows = torch.tensor([ids[name] for name in (*vocab, bos)])
    W_E = state["embed.W_E"]
    pad = (
        W_E[ids[task.special["pad"]]][None] if "pad" in task.special else torch.zeros_like(W_E[:1])
    )
    state = dict(state)
    for layer, factor in enumerate(tl_config["query_scales"]):
        if factor != 1:  # exact as it is for the usual 1/sqrt(d_head)
            for name in ("W_Q", "b_Q"):
                key = f"blocks.{layer}.attn.{name}"
                state[key] = (state[key].double() * factor).to(state[key].dtype)
    state["embed.W_E"] = torch.cat([W_E[rows], pad])
    columns = torch.tensor([ids[name] for name in outputs])
    state["unembed.W_U"] = state["unembed.W_U"][:, columns]
    state["unembed.b_U"] = state["unembed.b_U"][columns]
    tied = len(outputs) < len(state["embed.W_E"]) and torch.equal(
        state["unembed.W_U"], state["embed.W_E"][: len(outputs)].T
    )
    if tied:
        config = _replace(config, tied_unembed=True)
    model = Model(config, dtype=W_E.dtype)
    model.load_state_dict(state)
    model.records["task"] = task.to_record()
    return model


def _replace(config: ModelConfig, **changes) -> ModelConfig:
    import dataclasses

    return dataclasses.replace(config, **changes)


# --- TransformerLens -------------------------------------------------------------------------------


def read_tl_config(fields: dict) -> dict:
    """TL's config fields -> the family's architecture fields; refuse what the family lacks."""
    problems = []
    for name, allowed in REQUIRED_VALUES.items():
        if name in fields and fields[name] not in allowed:
            problems.append(
                f"{name}: expected {' or '.join(map(repr, allowed))} (the family has no other), "
                f"got {fields[name]!r}"
            )
    sizes = {
        name: positive_int(fields, name, problems)
        for name in ("n_layers", "d_model", "n_heads", "d_head", "n_ctx", "d_vocab")
    }
    attn_only = flag(fields, "attn_only", False, problems)
    # An attention-only model gets one MLP unit with zero weights: it adds exactly 0.
    sizes["d_mlp"] = 1 if attn_only else positive_int(fields, "d_mlp", problems)
    d_vocab_out = fields.get("d_vocab_out", -1)
    if d_vocab_out == -1:
        d_vocab_out = sizes["d_vocab"]
    elif not (
        isinstance(d_vocab_out, int) and not isinstance(d_vocab_out, bool) and d_vocab_out >= 1
    ):
        problems.append(f"d_vocab_out: expected a positive integer or -1, got {d_vocab_out!r}")
        d_vocab_out = 1
    act_fn = "relu" if attn_only else fields.get("act_fn")  # unused without an MLP
    if act_fn not in ACT_FNS:
        problems.append(f"act_fn: expected one of {', '.join(map(repr, ACT_FNS))}, got {act_fn!r}")
    normalization = fields.get("normalization_type", "LN")
    if normalization not in NORMALIZATIONS:
        problems.append(
            f"normalization_type: expected 'LN', 'LNPre' or null, got {normalization!r}"
        )
    eps = fields.get("eps", LN_EPS)
    if not (isinstance(eps, float) and math.isfinite(eps) and eps > 0):
        problems.append(f"eps: expected a positive number, got {eps!r}")
    score_scale = 1.0
    if flag(fields, "use_attn_scale", True, problems):
        # TL fills -1 (its default) with sqrt(d_head) when the model is built.
        score_scale = fields.get("attn_scale", -1.0)
        if score_scale in (-1, None):
            score_scale = math.sqrt(sizes["d_head"])
        elif not (_is_number(score_scale) and math.isfinite(score_scale) and score_scale > 0):
            problems.append(f"attn_scale: expected a positive number or -1, got {score_scale!r}")
            score_scale = 1.0
    by_layer = flag(fields, "scale_attn_by_inverse_layer_idx", False, problems)
    problems += limits.architecture_problems(sizes)
    if problems:
        raise CheckpointError("config." + "; config.".join(problems))
    return {
        **sizes,
        "d_vocab_out": d_vocab_out,
        "attn_only": attn_only,
        "act_fn": ACT_FNS[act_fn],
        "normalization": NORMALIZATIONS[normalization],
        "has_ln_weights": normalization == "LN",
        "causal": fields.get("attention_dir", "causal") == "causal",
        "eps": eps,
        "query_scales": query_scales(sizes, score_scale, by_layer),
    }


def flag(fields: dict, name: str, default: bool, problems: list) -> bool:
    """The true-or-false config field `name` (`default` when absent or, reported, not one)."""
    value = fields.get(name, default)
    if not isinstance(value, bool):
        problems.append(f"{name}: expected true or false, got {value!r}")
        return default
    return value


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def query_scales(sizes: dict, score_scale: float, by_layer: bool) -> tuple[float, ...]:
    """Per layer, the factor on W_Q and b_Q that turns the family's scores, q.k / sqrt(d_head),
    into the checkpoint's: q.k / score_scale, further divided by layer + 1 when `by_layer`."""
    return tuple(
        math.sqrt(sizes["d_head"]) / (score_scale * (layer + 1 if by_layer else 1))
        for layer in range(sizes["n_layers"])
    )


def tl_shapes(c: dict) -> dict[str, tuple]:
    """The tensors a TL checkpoint of config `c` (from `read_tl_config`) holds."""
    d, h, k, m = c["d_model"], c["n_heads"], c["d_head"], c["d_mlp"]
    shapes = {
        "embed.W_E": (c["d_vocab"], d),
        "pos_embed.W_pos": (c["n_ctx"], d),
        "unembed.W_U": (d, c["d_vocab_out"]),
        "unembed.b_U": (c["d_vocab_out"],),
    }
    ln_names = ["ln1", "ln2"] if not c["attn_only"] else ["ln1"]
    for layer in range(c["n_layers"]):
        pre = f"blocks.{layer}"
        for name in ("Q", "K", "V"):
            shapes[f"{pre}.attn.W_{name}"] = (h, d, k)
            shapes[f"{pre}.attn.b_{name}"] = (h, k)
        shapes[f"{pre}.attn.W_O"] = (h, k, d)
        shapes[f"{pre}.attn.b_O"] = (d,)
        if not c["attn_only"]:
            shapes.update({
                f"{pre}.mlp.W_in": (d, m), f"{pre}.mlp.b_in": (m,),
                f"{pre}.mlp.W_out": (m, d), f"{pre}.mlp.b_out": (d,),
            })  # fmt: skip
        if c["has_ln_weights"]:
            for ln in ln_names:
                shapes[f"{pre}.{ln}.w"] = shapes[f"{pre}.{ln}.b"] = (d,)
    if c["has_ln_weights"]:
        shapes["ln_final.w"] = shapes["ln_final.b"] = (d,)
    return shapes


def load_tl(state_path, config_path, task: Task) -> Model:
    """A family model from a TransformerLens state dict (safetensors) and its config (JSON)."""
    state_path, config_path = Path(state_path), Path(config_path)
    try:
        c = read_tl_config(read_json(config_path, "TransformerLens config"))
    except CheckpointError as error:
        raise CheckpointError(
            f"{config_path}: {str(error).removeprefix(f'{config_path}: ')}"
        ) from None
    state = read_tensors(state_path, tl_shapes(c), ignored=lambda n: n.endswith(IGNORED_SUFFIXES))
    _fill_defaults(state, c)
    model = assemble(c, state, task, c["d_vocab"], c["d_vocab_out"])
    model.records["source"] = {"kind": "tl", "path": os.fspath(state_path)}
    return model


def _fill_defaults(state: dict, c: dict) -> None:
    """The weights TL leaves out: LayerNorm scales of LNPre (1, 0), an attention-only
    model's MLP (zero: it adds nothing)."""
    d, dtype = c["d_model"], state["embed.W_E"].dtype
    for layer in range(c["n_layers"]):
        pre = f"blocks.{layer}"
        if c["attn_only"]:
            m = c["d_mlp"]
            state[f"{pre}.mlp.W_in"] = torch.zeros(d, m, dtype=dtype)
            state[f"{pre}.mlp.b_in"] = torch.zeros(m, dtype=dtype)
            state[f"{pre}.mlp.W_out"] = torch.zeros(m, d, dtype=dtype)
            state[f"{pre}.mlp.b_out"] = torch.zeros(d, dtype=dtype)
        if c["normalization"] == "LN":
            for ln in ("ln1", "ln2"):
                state.setdefault(f"{pre}.{ln}.w", torch.ones(d, dtype=dtype))
                state.setdefault(f"{pre}.{ln}.b", torch.zeros(d, dtype=dtype))
    if c["normalization"] == "LN":
        state.setdefault("ln_final.w", torch.ones(d, dtype=dtype))
        state.setdefault("ln_final.b", torch.zeros(d, dtype=dtype))


def save_tl(model: Model, directory) -> tuple[Path, Path]:
    """Write `model` as a TransformerLens checkpoint: (state dict, config) in `directory`.

    Token ids are the family's (vocab, BOS, PAD), so `load_tl` with a task whose `tokens`
    is absent reads it back. The model must score tokens: output value j is token j.
    """
    from safetensors.torch import save_file

    from distill.files import replaced_atomically

    config = model.config
    if config.output_values != (*config.vocab, config.bos):
        raise CheckpointError(
            "output_values: expected a language model's (the vocab then BOS: output j is token "
            f"j) to write a TransformerLens checkpoint, got {list(config.output_values)[:8]}"
        )
    directory = Path(directory)
    fields = {
        "n_layers": config.n_layers,
        "d_model": config.d_model,
        "n_heads": config.n_heads,
        "d_head": config.d_head,
        "d_mlp": config.d_mlp,
        "n_ctx": config.n_ctx,
        "d_vocab": config.d_vocab,
        "d_vocab_out": config.d_out,
        "act_fn": config.act_fn,
        "normalization_type": config.normalization,
        "attn_only": False,
        "positional_embedding_type": "standard",
        "attention_dir": "causal" if config.causal else "bidirectional",
        "eps": config.ln_eps,
    }
    state = {name: t.detach().contiguous() for name, t in model.state_dict().items()}
    state_path, config_path = directory / "model.safetensors", directory / "config.json"
    with replaced_atomically(state_path) as temporary:
        save_file(state, str(temporary))
    with replaced_atomically(config_path) as temporary:
        Path(temporary).write_text(json.dumps(fields, indent=2))
    return state_path, config_path


__all__ = ["CheckpointError", "load_tl", "save_tl"]
