"""Hugging Face GPT-2 directories in: `config.json` + `model.safetensors`, never pickle.

GPT-2 is the family with LayerNorm before attention, MLP and unembedding, causal
attention, learned positions and biases, so a checkpoint maps onto it weight for
weight: Conv1D weights are stored `[in, out]` (our `x @ W` orientation), `c_attn`
holds Q, K and V side by side (each `[d_model, n_heads * d_head]`, head-major),
and the unembedding is the token embedding when `tie_word_embeddings` is true or
absent (then `lm_head.weight` is not stored). The weights are renamed into
TransformerLens' layout and assembled by `tl_import.assemble`, which puts the
task's tokens in the family's order; embedding rows and unembedding columns of
ids the task does not name are dropped (the read-out is over the task's tokens).
Score scales other than 1/sqrt(d_head) (`scale_attn_weights` false,
`scale_attn_by_inverse_layer_idx`) fold into the query weights (`tl_import.query_scales`).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import torch

from distill.models import limits
from distill.models.family import LN_EPS, Model
from distill.models.task import Task
from distill.models.tl_import import (
    CheckpointError,
    assemble,
    flag,
    positive_int,
    query_scales,
    read_json,
    read_tensors,
)

# transformers' name -> the family's. gelu_fast, gelu_accurate and gelu_python_tanh spell out
# tanh-GELU (gelu_new), gelu_python the erf one (gelu): the same functions, other roundings
# (gelu_fast's sqrt(2/pi) is 0.7978845608, 4e-12 relative off: far below float32's 6e-8).
ACT_FNS = {
    "gelu_new": "gelu_new",
    "gelu_pytorch_tanh": "gelu_new",
    "gelu_fast": "gelu_new",
    "gelu_accurate": "gelu_new",
    "gelu_python_tanh": "gelu_new",
    "gelu": "gelu",
    "gelu_python": "gelu",
    "relu": "relu",
}
# Config fields (of GPT-2 or of the architectures people mistake for it) whose values the
# family cannot compute: field -> the values it can.
SUPPORTED_VALUES = {
    "add_cross_attention": (False,),
    "use_parallel_residual": (False,),
    "parallel_attn": (False,),
    "rotary_dim": (None,),
    "rotary_pct": (0, 0.0),
    "rope_theta": (None,),
    "rope_scaling": (None,),
    "position_embedding_type": ("absolute",),
    "apply_residual_connection_post_layernorm": (False,),
    "do_layer_norm_before": (True,),
    "normalize_before": (True,),
    "is_encoder_decoder": (False,),
}
PICKLE_FILES = ("pytorch_model.bin", "tf_model.h5", "flax_model.msgpack", "model.ckpt.index")
# Buffers older GPT-2 checkpoints store beside the weights (the causal mask).
BUFFER_SUFFIXES = (".attn.bias", ".attn.masked_bias")


def load_hf_gpt2(directory, task: Task) -> Model:
    """A family model from a Hugging Face GPT-2 directory, its tokens named by `task`."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: expected a Hugging Face model directory")
    weights = directory / "model.safetensors"
    if not weights.exists():
        raise CheckpointError(_no_safetensors(directory))
    config_path = directory / "config.json"
    try:
        c = read_gpt2_config(read_json(config_path, "Hugging Face config"))
    except CheckpointError as error:
        raise CheckpointError(
            f"{config_path}: {str(error).removeprefix(f'{config_path}: ')}"
        ) from None
    names = set(_tensor_names(weights))
    prefix = "transformer." if "transformer.wte.weight" in names else ""
    if not c["tied"] and "lm_head.weight" not in names:
        raise CheckpointError(
            f"{weights}: tensors: missing lm_head.weight (config.tie_word_embeddings is false)"
        )
    shapes = gpt2_shapes(c, prefix, with_head="lm_head.weight" in names)
    hf = read_tensors(weights, shapes, ignored=lambda n: n.endswith(BUFFER_SUFFIXES))
    state = to_tl_layout(hf, c, prefix)
    model = assemble(c, state, task, c["d_vocab"], c["d_vocab"])
    model.records["source"] = {"kind": "hf", "path": os.fspath(directory)}
    return model


def _no_safetensors(directory: Path) -> str:
    pickled = [name for name in PICKLE_FILES if (directory / name).exists()]
    if pickled:
        return (
            f"{directory}: has {pickled[0]} but no model.safetensors: {pickled[0]} is a pickle "
            "(loading it can run any code), which distill never loads; convert it where you "
            "trust it (model.save_pretrained(dir, safe_serialization=True))"
        )
    if (directory / "model.safetensors.index.json").exists():
        return f"{directory}: sharded checkpoints are not supported; expected one model.safetensors"
    return f"{directory}: expected model.safetensors (and config.json) in it"


def _tensor_names(path: Path) -> list[str]:
    from safetensors import SafetensorError, safe_open

    from distill.errors import ModelFileError
    from distill.models.file_format import _check_is_model_file

    try:
        _check_is_model_file(path)
        with safe_open(str(path), framework="pt") as file:
            names = list(file.keys())
    except ModelFileError as error:
        raise CheckpointError(str(error)) from None
    except (SafetensorError, OSError, RuntimeError, ValueError) as error:
        raise CheckpointError(f"{path}: not a valid safetensors file ({error})") from None
    if len(names) > limits.MAX_TENSORS:
        raise CheckpointError(
            f"{path}: tensors: {len(names)}, over the limit {limits.MAX_TENSORS} "
            f"({limits.limit_name('MAX_TENSORS')})"
        )
    return names


def read_gpt2_config(fields: dict) -> dict:
    """GPT-2's config fields -> the architecture fields `tl_import.assemble` takes."""
    problems = []
    model_type = fields.get("model_type")
    if model_type != "gpt2":
        problems.append(f"model_type: expected 'gpt2', got {model_type!r}")
    for name, allowed in SUPPORTED_VALUES.items():
        if name in fields and fields[name] not in allowed:
            problems.append(
                f"{name}: expected {' or '.join(map(repr, allowed))} (the family computes no "
                f"other), got {fields[name]!r}"
            )
    d_model = positive_int(fields, "n_embd", problems)
    n_heads = positive_int(fields, "n_head", problems)
    sizes = {
        "n_layers": positive_int(fields, "n_layer", problems),
        "d_model": d_model,
        "n_heads": n_heads,
        "d_head": max(d_model // n_heads, 1),
        "n_ctx": positive_int(fields, "n_positions", problems),
        "d_vocab": positive_int(fields, "vocab_size", problems),
    }
    if d_model % n_heads:
        problems.append(f"n_head: expected a divisor of n_embd {d_model}, got {n_heads}")
    n_inner = fields.get("n_inner")
    sizes["d_mlp"] = 4 * d_model if n_inner is None else positive_int(fields, "n_inner", problems)
    act_fn = fields.get("activation_function", "gelu_new")
    if act_fn not in ACT_FNS:
        problems.append(
            f"activation_function: expected one of {', '.join(map(repr, ACT_FNS))}, got {act_fn!r}"
        )
    eps = fields.get("layer_norm_epsilon", LN_EPS)
    if not (isinstance(eps, float) and eps > 0 and eps != float("inf")):
        problems.append(f"layer_norm_epsilon: expected a positive number, got {eps!r}")
    tied = flag(fields, "tie_word_embeddings", True, problems)
    # Scores are q.k / sqrt(d_head) unless scale_attn_weights is false, then further divided
    # by layer + 1 when scale_attn_by_inverse_layer_idx; both fold into W_Q (tl_import).
    score_scale = (
        math.sqrt(sizes["d_head"]) if flag(fields, "scale_attn_weights", True, problems) else 1.0
    )
    by_layer = flag(fields, "scale_attn_by_inverse_layer_idx", False, problems)
    # Reordering and upcasting changes where the scale is applied and the precision, not the
    # function computed.
    flag(fields, "reorder_and_upcast_attn", False, problems)
    problems += limits.architecture_problems(sizes)
    if problems:
        raise CheckpointError("config." + "; config.".join(problems))
    return {
        **sizes,
        "act_fn": ACT_FNS[act_fn],
        "normalization": "LN",
        "causal": True,
        "eps": eps,
        "tied": tied,
        "query_scales": query_scales(sizes, score_scale, by_layer),
    }


def gpt2_shapes(c: dict, prefix: str, with_head: bool) -> dict[str, tuple]:
    d, m = c["d_model"], c["d_mlp"]
    shapes = {"wte.weight": (c["d_vocab"], d), "wpe.weight": (c["n_ctx"], d)}
    for layer in range(c["n_layers"]):
        h = f"h.{layer}"
        shapes.update({
            f"{h}.ln_1.weight": (d,), f"{h}.ln_1.bias": (d,),
            f"{h}.attn.c_attn.weight": (d, 3 * d), f"{h}.attn.c_attn.bias": (3 * d,),
            f"{h}.attn.c_proj.weight": (d, d), f"{h}.attn.c_proj.bias": (d,),
            f"{h}.ln_2.weight": (d,), f"{h}.ln_2.bias": (d,),
            f"{h}.mlp.c_fc.weight": (d, m), f"{h}.mlp.c_fc.bias": (m,),
            f"{h}.mlp.c_proj.weight": (m, d), f"{h}.mlp.c_proj.bias": (d,),
        })  # fmt: skip
    shapes["ln_f.weight"] = shapes["ln_f.bias"] = (d,)
    shapes = {prefix + name: shape for name, shape in shapes.items()}
    if with_head:
        shapes["lm_head.weight"] = (c["d_vocab"], d)
    return shapes


def to_tl_layout(hf: dict, c: dict, prefix: str) -> dict:
    """GPT-2's weights under TransformerLens' names and shapes."""
    d, h, k = c["d_model"], c["n_heads"], c["d_head"]
    w = {name.removeprefix(prefix): t for name, t in hf.items()}
    W_E = w["wte.weight"]
    W_U = (W_E if c["tied"] else w["lm_head.weight"]).T  # a tied model uses wte, stored or not
    state = {
        "embed.W_E": W_E,
        "pos_embed.W_pos": w["wpe.weight"],
        "ln_final.w": w["ln_f.weight"],
        "ln_final.b": w["ln_f.bias"],
        "unembed.W_U": W_U,
        "unembed.b_U": torch.zeros(W_U.shape[1], dtype=W_E.dtype),  # GPT-2's lm_head has no bias
    }
    for layer in range(c["n_layers"]):
        g, t = f"h.{layer}", f"blocks.{layer}"
        qkv = w[f"{g}.attn.c_attn.weight"].split(d, dim=1)  # 3 x [d_model, n_heads * d_head]
        qkv_bias = w[f"{g}.attn.c_attn.bias"].split(d)
        for name, weight, bias in zip("QKV", qkv, qkv_bias):
            state[f"{t}.attn.W_{name}"] = weight.reshape(d, h, k).permute(1, 0, 2).contiguous()
            state[f"{t}.attn.b_{name}"] = bias.reshape(h, k)
        state[f"{t}.attn.W_O"] = w[f"{g}.attn.c_proj.weight"].reshape(h, k, d)
        state[f"{t}.attn.b_O"] = w[f"{g}.attn.c_proj.bias"]
        state[f"{t}.mlp.W_in"] = w[f"{g}.mlp.c_fc.weight"]
        state[f"{t}.mlp.b_in"] = w[f"{g}.mlp.c_fc.bias"]
        state[f"{t}.mlp.W_out"] = w[f"{g}.mlp.c_proj.weight"]
        state[f"{t}.mlp.b_out"] = w[f"{g}.mlp.c_proj.bias"]
        for ln, hf_ln in (("ln1", "ln_1"), ("ln2", "ln_2")):
            state[f"{t}.{ln}.w"] = w[f"{g}.{hf_ln}.weight"]
            state[f"{t}.{ln}.b"] = w[f"{g}.{hf_ln}.bias"]
    return state


# --- export ---------------------------------------------------------------------------------------

HF_ACT_FNS = {"relu": "relu", "gelu": "gelu", "gelu_new": "gelu_new"}


def gpt2_problems(model: Model) -> list[str]:
    """Why GPT-2's architecture cannot compute `model` (empty: it can), field by field."""
    config = model.config
    problems = []
    if config.normalization != "LN":
        problems.append(
            "normalization: GPT-2 has LayerNorm before attention, MLP and unembedding; "
            "this model has none"
        )
    if not config.causal:
        problems.append("causal: GPT-2's attention is causal; this model's is bidirectional")
    if config.n_heads * config.d_head != config.d_model:
        problems.append(
            f"d_head: GPT-2's is d_model / n_heads = {config.d_model / config.n_heads:g}, "
            f"this model's is {config.d_head}"
        )
    if config.output_kind != "categorical":
        problems.append("output_kind: GPT-2 scores tokens; this model's output is numerical")
        return problems
    named = [v for v in config.output_values if not _is_token_name(v)]
    if named:
        problems.append(
            f"output_values: GPT-2 scores tokens, and {named[0]!r} cannot name one "
            "(a token is a non-empty string or an integer)"
        )
    if bool(model.unembed.b_U.detach().any()):
        rank = int(torch.linalg.matrix_rank(model.unembed.W_U.detach().double()))
        if rank < config.d_out:
            problems.append(
                f"unembed.b_U: GPT-2's lm_head has no bias, and this one cannot move into "
                f"ln_f's bias (W_U has rank {rank}, below its {config.d_out} outputs)"
            )
    return problems


def _is_token_name(value) -> bool:
    return (isinstance(value, str) and value != "") or (
        isinstance(value, int) and not isinstance(value, bool)
    )


def save_hf_gpt2(model: Model, directory) -> Path:
    """Write `model` as a Hugging Face GPT-2 directory; return the task file written beside.

    The directory holds config.json, model.safetensors (Conv1D weights `[in, out]`;
    no lm_head.weight when the model's unembedding is tied) and task.toml, the task
    file that `distill import hf DIR --task DIR/task.toml` reads it back with. Token
    ids are the family's: the vocab, then BOS, then the output values that are no
    token (a classifier's labels) as output-only tokens; their embedding rows are
    zero (never read), and the task reads out the argmax over the output values.
    GPT-2's lm_head has no bias: the unembedding bias b_U moves into ln_f's bias,
    b_f + delta with W_U^T delta = b_U (solved in float64; it needs W_U of full
    column rank), so the logits are the model's up to rounding: their argmax, and for a
    multi-label read-out their signs (a zero lm_head row scores an output-only or BOS id
    exactly 0: never in the set). Only models GPT-2
    computes are written (`gpt2_problems`); others are refused with the reason.
    """
    from safetensors.torch import save_file

    from distill.files import replaced_directory

    problems = gpt2_problems(model)
    if problems:
        raise CheckpointError("cannot write a GPT-2 checkpoint: " + "; ".join(problems))
    config = model.config
    task = _export_task(model)
    state = {name: t.detach() for name, t in model.state_dict().items()}
    tokens = (*config.vocab, config.bos)
    extra = task.output_only_tokens()
    n_ids = len(tokens) + len(extra)
    d = config.d_model
    wte = torch.cat(
        [state["embed.W_E"][: len(tokens)], state["embed.W_E"].new_zeros(len(extra), d)]
    )
    ids = {value: i for i, value in enumerate((*tokens, *extra))}
    scored = [j for j, value in enumerate(config.output_values) if value in ids]  # read out
    W_U, b_U = state["unembed.W_U"], state["unembed.b_U"]
    delta = torch.linalg.lstsq(W_U.double().T, b_U.double()[:, None]).solution[:, 0]
    hf = {
        "transformer.wte.weight": wte,
        "transformer.wpe.weight": state["pos_embed.W_pos"],
        "transformer.ln_f.weight": state["ln_final.w"],
        "transformer.ln_f.bias": (state["ln_final.b"].double() + delta).to(wte.dtype),
    }
    for layer in range(config.n_layers):
        t, g = f"blocks.{layer}", f"transformer.h.{layer}"
        qkv = [state[f"{t}.attn.W_{n}"].permute(1, 0, 2).reshape(d, d) for n in "QKV"]
        hf.update({
            f"{g}.ln_1.weight": state[f"{t}.ln1.w"], f"{g}.ln_1.bias": state[f"{t}.ln1.b"],
            f"{g}.attn.c_attn.weight": torch.cat(qkv, dim=1),
            f"{g}.attn.c_attn.bias": torch.cat([state[f"{t}.attn.b_{n}"].reshape(d) for n in "QKV"]),
            f"{g}.attn.c_proj.weight": state[f"{t}.attn.W_O"].reshape(d, d),
            f"{g}.attn.c_proj.bias": state[f"{t}.attn.b_O"],
            f"{g}.ln_2.weight": state[f"{t}.ln2.w"], f"{g}.ln_2.bias": state[f"{t}.ln2.b"],
            f"{g}.mlp.c_fc.weight": state[f"{t}.mlp.W_in"], f"{g}.mlp.c_fc.bias": state[f"{t}.mlp.b_in"],
            f"{g}.mlp.c_proj.weight": state[f"{t}.mlp.W_out"],
            f"{g}.mlp.c_proj.bias": state[f"{t}.mlp.b_out"],
        })  # fmt: skip
    if not config.tied_unembed:
        head = W_U.new_zeros(n_ids, d)
        head[[ids[config.output_values[j]] for j in scored]] = W_U.T[scored]
        hf["lm_head.weight"] = head
    fields = {
        "model_type": "gpt2",
        "architectures": ["GPT2LMHeadModel"],
        "vocab_size": n_ids,
        "n_positions": config.n_ctx,
        "n_embd": d,
        "n_layer": config.n_layers,
        "n_head": config.n_heads,
        "n_inner": config.d_mlp,
        "activation_function": HF_ACT_FNS[config.act_fn],
        "layer_norm_epsilon": config.ln_eps,
        "tie_word_embeddings": config.tied_unembed,
        "resid_pdrop": 0.0,
        "embd_pdrop": 0.0,
        "attn_pdrop": 0.0,
        "bos_token_id": ids[config.bos],
    }
    directory = Path(directory)
    with replaced_directory(directory) as folder:
        save_file(
            {name: t.contiguous() for name, t in hf.items()},
            str(folder / "model.safetensors"),
            metadata={"format": "pt"},
        )
        (folder / "config.json").write_text(json.dumps(fields, indent=2) + "\n")
        (folder / "task.toml").write_text(task.to_toml(), encoding="utf-8")
    return directory / "task.toml"


def _export_task(model: Model):
    """The task of an exported model: its own (or every string up to max_seq_len, read at
    every position), with ids in the family's order and the argmax over its output values."""
    from distill.models.task import Task

    config = model.config
    record = dict(model.records.get("task") or {
        "alphabet": list(config.vocab),
        "domain": {"kind": "strings", "min_len": 1, "max_len": config.max_seq_len},
    })  # fmt: skip
    record.pop("tokens", None)  # ids are renumbered: the family's order
    record["special"] = {**record.get("special", {}), "bos": config.bos}
    record["special"].pop("pad", None)  # PAD gets no id: GPT-2 masks padding itself
    readout = dict(record.get("readout", {}))
    if readout.get("kind", "argmax") == "argmax":
        readout["kind"] = "subset_argmax"
        readout["subset"] = list(config.output_values)
    record["readout"] = readout
    task = Task.from_record(record)
    if task.family_tokens() != (config.vocab, config.bos):
        raise CheckpointError(
            f"task: its tokens {list(task.family_tokens()[0])} (the alphabet, then SEP and EOS) "
            f"are not the model's vocab {list(config.vocab)}: the exported ids would not match"
        )
    return task


__all__ = ["gpt2_problems", "load_hf_gpt2", "save_hf_gpt2"]
