"""Importers checked against `transformers`' own GPT-2 forward, and the TransformerLens round trip.

Random checkpoints are built here (`GPT2LMHeadModel`, `save_pretrained(safe_serialization=True)`):
no network. The tolerance is derived, not tuned. `distill.models.numerics.output_error_bound`
bounds |computed - exact| for every output number of our model on the given inputs, for
any summation order and kernel (Higham's gamma_n per matmul with u = 2^-24 in float32,
2^-53 in float64; LayerNorm, softmax and GELU as in that module's docstring; gelu_new is
tanh-GELU, whose slope is at most 1.1290 < numerics.GELU_SLOPE). `transformers` computes
the same real function with the same kinds of operations (matmuls in another order, the
score scale as a division, tanh-GELU spelled out), so its output is within the same bound
of the exact one, and the two computations are within twice the bound of each other.

That bound is carried forward layer by layer and compounds through softmax and LayerNorm:
in float32 it is vacuous past one layer on these random weights (1e4 to 1e18 against
measured differences of 1e-6 to 2e-5, printed with -s). The comparison with power is the
float64 one, where the same derivation gives 5e-12 to 1e-2, under 1% of the largest logit
on every shape (asserted, so a weakened check fails rather than passing silently).
transformers' gelu_fast writes sqrt(2/pi) as 0.7978845608 (4e-12 relative off): a difference
in the function of about 1e-12 on these logits (measured 1.3e-12), inside the 3e-7 bound.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
import re
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers")

from safetensors import safe_open  # noqa: E402

from distill.cli import main  # noqa: E402
from distill.models.file_format import load_model  # noqa: E402
from distill.models.hf_import import load_hf_gpt2, save_hf_gpt2  # noqa: E402
from distill.models.numerics import output_error_bound  # noqa: E402
from distill.models.task import Task  # noqa: E402
from distill.models.tl_import import CheckpointError, load_tl, save_tl  # noqa: E402

ALPHABET = ["a", "b", "c"]
SCALE = 0.5  # weights ~ SCALE / sqrt(fan-in): logits of order 1 to 30

# layers, heads, d_model, d_mlp (None: GPT-2's 4 d_model), activation, tied, extra unused ids,
# other config fields (score scales folded into W_Q: 3 layers by layer make a factor of 1/3)
SHAPES = {
    "1L1H-d16-relu-tied": (1, 1, 16, None, "relu", True, 0, {}),
    "2L2H-d32-gelu_new-untied": (2, 2, 32, None, "gelu_new", False, 0, {}),
    "4L4H-d64-gelu_new-tied": (4, 4, 64, 32, "gelu_new", True, 3, {}),
    "3L2H-d128-relu-untied": (3, 2, 128, 64, "relu", False, 0, {}),
    "2L4H-d256-gelu_new-tied": (2, 4, 256, 128, "gelu_new", True, 0, {}),
    "1L4H-d48-gelu-untied": (1, 4, 48, None, "gelu", False, 5, {}),
    "2L2H-d24-gelu_fast-unscaled": (2, 2, 24, None, "gelu_fast", True, 0,
                                    {"scale_attn_weights": False}),
    "3L2H-d32-gelu_accurate-by-layer": (3, 2, 32, None, "gelu_accurate", False, 0,
                                        {"scale_attn_by_inverse_layer_idx": True,
                                         "reorder_and_upcast_attn": True}),
    "3L1H-d20-gelu_python-unscaled-by-layer": (3, 1, 20, None, "gelu_python", True, 0,
                                               {"scale_attn_weights": False,
                                                "scale_attn_by_inverse_layer_idx": True}),
    "1L2H-d16-gelu_python_tanh-untied": (1, 2, 16, None, "gelu_python_tanh", False, 0, {}),
}  # fmt: skip


def task_record(token_ids=None) -> dict:
    record = {
        "alphabet": ALPHABET,
        "special": {"bos": "BOS", "sep": "SEP"},
        "domain": {"kind": "strings", "min_len": 1, "max_len": 6},
    }
    if token_ids is not None:
        record["tokens"] = token_ids
    return record


def random_gpt2(directory, shape: str, seed: int = 0):
    """A random GPT-2 checkpoint saved in `directory`, and the task naming its tokens.

    Weights are drawn at a scale that makes attention and LayerNorm do real work (GPT-2's own
    initialisation, std 0.02, leaves every pattern almost uniform). With extra ids, the
    task's tokens sit at shuffled ids among unused ones (dropped by the import)."""
    layers, heads, d, d_mlp, act, tied, extra, fields = SHAPES[shape]
    n_ids = len(ALPHABET) + 2 + extra  # the alphabet, SEP, BOS and unused ids
    config = transformers.GPT2Config(
        vocab_size=n_ids, n_positions=8, n_embd=d, n_layer=layers, n_head=heads, n_inner=d_mlp,
        activation_function=act, tie_word_embeddings=tied, bos_token_id=None, eos_token_id=None,
        **fields,
    )  # fmt: skip
    if fields.get("reorder_and_upcast_attn"):
        config._attn_implementation = "eager"  # the only attention that reorders and upcasts
    torch.manual_seed(seed)
    hf = transformers.GPT2LMHeadModel(config).eval()
    with torch.no_grad():
        for name, parameter in hf.named_parameters():
            if "ln" in name and name.endswith("weight"):
                parameter.copy_(1 + 0.2 * torch.randn_like(parameter))
            else:
                parameter.copy_(SCALE * torch.randn_like(parameter) / parameter.shape[0] ** 0.5)
    hf.save_pretrained(directory, safe_serialization=True)
    token_ids = None
    if extra:
        ids = random.Random(seed).sample(range(n_ids), len(ALPHABET) + 2)
        token_ids = dict(zip([*ALPHABET, "SEP", "BOS"], ids))
    return hf, Task.from_record(task_record(token_ids))


def sample_inputs(seed: int = 0) -> list[list]:
    """Every input of lengths 1-3, and 24 random inputs of each length 4..7 (7 = max_seq_len)."""
    rng = random.Random(seed)
    tokens = [*ALPHABET, "SEP"]
    inputs = [list(x) for n in (1, 2, 3) for x in itertools.product(tokens, repeat=n)]
    inputs += [[rng.choice(tokens) for _ in range(n)] for n in range(4, 8) for _ in range(24)]
    return inputs


def hf_logits(hf, model, task, inputs) -> list[torch.Tensor]:
    """transformers' logits at positions 1..n of each input, columns in our output order."""
    config = model.config
    ids = task.checkpoint_ids(hf.config.vocab_size)
    columns = torch.tensor([ids[value] for value in config.output_values])
    outs = []
    with torch.no_grad():
        for x in inputs:
            row = torch.tensor([[ids[config.bos], *(ids[t] for t in x)]])
            outs.append(hf(row).logits[0, 1:, columns])
    return outs


def ours(model, inputs) -> list[torch.Tensor]:
    ids, mask = model.encode(inputs)
    with torch.no_grad():
        out = model(ids, mask)
    return [out[i, 1 : len(x) + 1] for i, x in enumerate(inputs)]


def max_difference(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    return max(float((x - y).abs().max()) for x, y in zip(a, b))


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_import_matches_transformers_logits(shape, tmp_path):
    hf, task = random_gpt2(tmp_path, shape)
    model = load_hf_gpt2(tmp_path, task)
    assert model.config.tied_unembed == SHAPES[shape][5]
    assert model.records["source"]["kind"] == "hf"
    inputs = sample_inputs()
    theirs = hf_logits(hf, model, task, inputs)
    bound = 2 * output_error_bound(model, inputs)
    difference = max_difference(ours(model, inputs), theirs)
    print(f"{shape}: float32 max |ours - transformers| {difference:.3g}, bound {bound:.3g}")
    assert difference <= bound
    # In float64 the same comparison is 2^29 times finer: a wrong weight can't hide in it. The
    # float64 checkpoint is imported itself, so that a score scale folded into W_Q is rounded
    # once in float64 (one more term of the query product's gamma_n), not once in float32.
    hf64 = hf.double()
    for module in hf64.modules():  # transformers reorders and upcasts to float32 only
        if getattr(module, "reorder_and_upcast_attn", False):
            module.reorder_and_upcast_attn = False
    hf64.save_pretrained(tmp_path / "float64", safe_serialization=True)
    model64 = load_hf_gpt2(tmp_path / "float64", task)
    assert model64.blocks[0].attn.W_Q.dtype == torch.float64
    bound64 = 2 * output_error_bound(model64, inputs)
    difference64 = max_difference(ours(model64, inputs), hf_logits(hf64, model64, task, inputs))
    scale = max(float(t.abs().max()) for t in theirs)
    print(f"{shape}: float64 max |ours - transformers| {difference64:.3g}, bound {bound64:.3g}")
    print(f"{shape}: largest logit {scale:.3g}")
    assert difference64 <= bound64
    # The check has power: it would see any error over 1% of the largest logit.
    assert bound64 < 0.01 * scale


def test_cli_import_then_predict_gives_transformers_argmax(tmp_path, capsys):
    hf, task = random_gpt2(tmp_path / "ckpt", "2L2H-d32-gelu_new-untied")
    (tmp_path / "task.toml").write_text(
        'alphabet = ["a", "b", "c"]\n[special]\nbos = "BOS"\nsep = "SEP"\n'
        '[domain]\nkind = "strings"\nmax_len = 6\n[readout]\npositions = "all"\nkind = "argmax"\n'
    )
    out = tmp_path / "m.safetensors"
    args = ["import", "hf", tmp_path / "ckpt", "--task", tmp_path / "task.toml", "-o", out]
    status = main([str(arg) for arg in args])
    assert status == 0, capsys.readouterr().err
    capsys.readouterr()
    model = load_model(out)
    for x in (["a"], ["c", "b", "SEP", "a"], ["b", "b", "b", "a", "c", "SEP"]):
        assert main(["predict", str(out), *x]) == 0
        printed = capsys.readouterr().out.split()
        [theirs] = hf_logits(hf, model, task, [x])
        assert printed == [model.config.output_values[i] for i in theirs.argmax(-1).tolist()]


def test_transformer_lens_round_trip(tmp_path):
    """our model -> TL files -> load_tl: the same weights, config and outputs, bit for bit."""
    hf, task = random_gpt2(tmp_path / "ckpt", "4L4H-d64-gelu_new-tied")
    model = load_hf_gpt2(tmp_path / "ckpt", task)
    state_path, config_path = save_tl(model, tmp_path)
    back = load_tl(state_path, config_path, Task.from_record(task_record()))
    assert back.config == model.config
    assert back.records["source"]["kind"] == "tl"
    ours_state, back_state = model.state_dict(), back.state_dict()
    assert ours_state.keys() == back_state.keys()
    for name in ours_state:
        assert torch.equal(ours_state[name], back_state[name]), name
    inputs = sample_inputs()
    assert max_difference(ours(model, inputs), ours(back, inputs)) == 0


def _with_tl_fields(tmp_path, name, state_path, config_path, change_state, **fields):
    """A copy of a TL checkpoint with `fields` added to its config and its state changed."""
    import json

    from safetensors.torch import load_file, save_file

    folder = tmp_path / name
    folder.mkdir()
    state = load_file(str(state_path))
    change_state(state)
    save_file(state, str(folder / "model.safetensors"))
    config = {**json.loads(config_path.read_text()), **fields}
    (folder / "config.json").write_text(json.dumps(config))
    return folder / "model.safetensors", folder / "config.json"


def test_tl_score_scales_fold_into_the_queries(tmp_path):
    """TL divides scores by attn_scale (1 without use_attn_scale), and by layer + 1 with
    scale_attn_by_inverse_layer_idx. A checkpoint whose queries are scaled by hand to cancel
    that computes the original model: imported, it must predict the same (in float64)."""
    hf, task = random_gpt2(tmp_path / "ckpt", "3L2H-d128-relu-untied")
    hf.double().save_pretrained(tmp_path / "ckpt64", safe_serialization=True)
    model = load_hf_gpt2(tmp_path / "ckpt64", task)
    state_path, config_path = save_tl(model, tmp_path)
    d_head, layers = model.config.d_head, model.config.n_layers

    def queries_times(factor_of_layer):
        def change(state):
            for layer in range(layers):
                for name in ("W_Q", "b_Q"):
                    state[f"blocks.{layer}.attn.{name}"] *= factor_of_layer(layer)

        return change

    variants = {
        "unscaled": (queries_times(lambda _: d_head**-0.5), {"use_attn_scale": False}),
        "attn_scale": (queries_times(lambda _: 2.5 / d_head**0.5), {"attn_scale": 2.5}),
        "by_layer": (
            queries_times(lambda layer: layer + 1),
            {"scale_attn_by_inverse_layer_idx": True, "attn_scale": -1.0},
        ),
    }
    inputs = sample_inputs()
    expected = ours(model, inputs)
    bound = 2 * output_error_bound(model, inputs)
    generic = Task.from_record(task_record())
    for name, (change, fields) in variants.items():
        paths = _with_tl_fields(tmp_path, name, state_path, config_path, change, **fields)
        difference = max_difference(ours(load_tl(*paths, generic), inputs), expected)
        print(f"{name}: max |scaled - original| {difference:.3g}, bound {bound:.3g}")
        assert difference <= bound, name
    # Without the fold the same files compute something else: the check has power.
    paths = _with_tl_fields(
        tmp_path, "ignored", state_path, config_path, queries_times(lambda layer: layer + 1)
    )
    assert max_difference(ours(load_tl(*paths, generic), inputs), expected) > 1e3 * bound


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"post_embedding_ln": True}, "post_embedding_ln: expected False"),
        ({"num_experts": 4, "experts_per_token": 2}, "num_experts: expected None"),
        ({"attn_scale": -3.0}, "attn_scale: expected a positive number or -1"),
        ({"use_attn_scale": "yes"}, "use_attn_scale: expected true or false"),
        ({"scale_attn_by_inverse_layer_idx": 1}, "scale_attn_by_inverse_layer_idx: expected true"),
        ({"act_fn": "silu"}, "act_fn: expected one of"),
    ],
)
def test_tl_config_fields_the_family_cannot_compute_are_refused_by_name(tmp_path, fields, message):
    hf, task = random_gpt2(tmp_path / "ckpt", "1L1H-d16-relu-tied")
    state_path, config_path = save_tl(load_hf_gpt2(tmp_path / "ckpt", task), tmp_path)
    paths = _with_tl_fields(tmp_path, "bad", state_path, config_path, lambda state: None, **fields)
    with pytest.raises(CheckpointError, match=re.escape(message)):
        load_tl(*paths, Task.from_record(task_record()))


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"scale_attn_weights": "false"}, "scale_attn_weights: expected true or false"),
        ({"rotary_dim": 8}, "rotary_dim: expected None"),
        ({"activation_function": "quick_gelu"}, "activation_function: expected one of"),
    ],
)
def test_gpt2_config_fields_the_family_cannot_compute_are_refused_by_name(
    tmp_path, fields, message
):
    import json

    random_gpt2(tmp_path, "1L1H-d16-relu-tied")
    config = {**json.loads((tmp_path / "config.json").read_text()), **fields}
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=re.escape(message)):
        load_hf_gpt2(tmp_path, Task.from_record(task_record()))


def test_tl_ln_pre_and_attention_only(tmp_path):
    """LNPre (no LayerNorm weights: 1 and 0) and attn_only (no MLP: it adds 0) are filled in;
    on a hand-built TL checkpoint of one head."""
    import json

    from safetensors.torch import save_file

    d, n_ctx, d_vocab = 4, 8, 5  # a, b, c, BOS, PAD
    state = {
        "embed.W_E": torch.eye(d_vocab, d),
        "pos_embed.W_pos": torch.zeros(n_ctx, d),
        "blocks.0.attn.W_Q": torch.zeros(1, d, 2), "blocks.0.attn.W_K": torch.zeros(1, d, 2),
        "blocks.0.attn.W_V": torch.eye(d, 2)[None], "blocks.0.attn.W_O": torch.eye(2, d)[None],
        "blocks.0.attn.b_Q": torch.zeros(1, 2), "blocks.0.attn.b_K": torch.zeros(1, 2),
        "blocks.0.attn.b_V": torch.zeros(1, 2), "blocks.0.attn.b_O": torch.zeros(d),
        "blocks.0.attn.mask": torch.ones(n_ctx, n_ctx), "blocks.0.attn.IGNORE": torch.zeros(()),
        "unembed.W_U": torch.eye(d, d_vocab - 1), "unembed.b_U": torch.zeros(d_vocab - 1),
    }  # fmt: skip
    save_file(state, str(tmp_path / "tl.safetensors"))
    fields = dict(
        n_layers=1, d_model=d, n_heads=1, d_head=2, d_mlp=None, n_ctx=n_ctx, d_vocab=d_vocab,
        d_vocab_out=d_vocab - 1, act_fn=None, normalization_type="LNPre", attn_only=True,
    )  # fmt: skip
    (tmp_path / "cfg.json").write_text(json.dumps(fields))
    task = Task.from_record({**task_record(), "special": {"bos": "BOS"}})
    model = load_tl(tmp_path / "tl.safetensors", tmp_path / "cfg.json", task)
    assert model.config.d_mlp == 1 and model.config.normalization == "LN"
    assert torch.equal(model.blocks[0].ln1.w, torch.ones(d))
    assert not model.blocks[0].mlp.W_in.any()


# --- export to GPT-2, checked against transformers' loads of the exported directory -------------

ZOO = Path(__file__).resolve().parent / "data" / "zoo"


def transformers_read_out(directory, task: Task, inputs: list[list]) -> list[list]:
    """transformers' argmax over the task's read-out subset at its read-out positions."""
    hf = transformers.GPT2LMHeadModel.from_pretrained(directory).eval()
    ids = task.checkpoint_ids(hf.config.vocab_size)
    subset = task.readout["subset"]
    columns = torch.tensor([ids[value] for value in subset])
    results = {}
    with torch.no_grad():
        for n in sorted({len(x) for x in inputs}):  # one batch per length: no padding
            rows = [i for i, x in enumerate(inputs) if len(x) == n]
            batch = torch.tensor([[ids[task.special["bos"]], *(ids[t] for t in inputs[i])]
                                  for i in rows])  # fmt: skip
            best = hf(batch).logits[..., columns].argmax(-1).tolist()
            for i, row in zip(rows, best):
                results[i] = [subset[row[p]] for p in task.positions_of(inputs[i])]
    return [results[i] for i in range(len(inputs))]


def every_input(alphabet, longest: int) -> list[list]:
    return [list(x) for n in range(1, longest + 1) for x in itertools.product(alphabet, repeat=n)]


def test_zoo_model_exported_to_gpt2_imports_and_predicts_as_transformers(tmp_path, capsys):
    """tests/data/zoo/tomita1 -> GPT-2 directory -> `distill import hf` + `distill predict`:
    the read-out equals transformers' argmax on every input up to length 8, and the original's."""
    original = load_model(ZOO / "tomita1.safetensors")
    task_path = save_hf_gpt2(original, tmp_path / "hf")
    assert sorted(p.name for p in (tmp_path / "hf").iterdir()) == [
        "config.json", "model.safetensors", "task.toml"]  # fmt: skip
    out = tmp_path / "m.safetensors"
    args = ["import", "hf", str(tmp_path / "hf"), "--task", str(task_path), "-o", str(out)]
    assert main(args) == 0, capsys.readouterr().err
    capsys.readouterr()
    task = Task.from_toml(task_path)
    inputs = every_input([0, 1], 8)
    theirs = transformers_read_out(tmp_path / "hf", task, inputs)
    for x in (inputs[0], inputs[100], inputs[-1]):
        assert main(["predict", str(out), *map(str, x)]) == 0
        assert capsys.readouterr().out.split() == [str(v) for v in theirs[inputs.index(x)]]
    imported = load_model(out)
    assert task.read_out(imported, inputs) == theirs
    assert Task.from_record(original.records["task"]).read_out(original, inputs) == theirs


def test_gpt2_export_of_a_classifier_scores_its_labels_as_output_only_tokens(tmp_path):
    """A Dyck-style classifier (labels that are no input token), and a tied language model
    (imported from transformers, exported again): transformers agrees on every input."""
    from distill.models.family import Model, ModelConfig
    from distill.models.training import initialise

    config = ModelConfig(
        n_layers=2, d_model=8, n_heads=2, d_head=4, d_mlp=16, n_ctx=7, act_fn="gelu_new",
        normalization="LN", causal=True, vocab=("(", ")"), bos="BOS", max_seq_len=6,
        output_kind="categorical", output_values=("invalid", "open", "balanced"),
    )  # fmt: skip
    model = Model(config)
    initialise(model, seed=1)
    with torch.no_grad():  # weights large enough that outputs vary with the input
        for parameter in model.parameters():
            parameter.mul_(40.0 if parameter.dim() > 1 else 1.0).add_(0.3 * (parameter.dim() == 1))
    model.records["task"] = {"alphabet": ["(", ")"], "special": {"bos": "BOS"},
                             "domain": {"kind": "strings", "min_len": 1, "max_len": 6}}  # fmt: skip
    task = Task.from_toml(save_hf_gpt2(model, tmp_path / "dyck"))
    assert task.output_only_tokens() == ("invalid", "open", "balanced")
    inputs = every_input(["(", ")"], 6)
    ours = task.read_out(load_hf_gpt2(tmp_path / "dyck", task), inputs)
    assert ours == transformers_read_out(tmp_path / "dyck", task, inputs)
    assert ours == model.predict(inputs)
    assert len({v for row in ours for v in row}) > 1

    random_gpt2(tmp_path / "ckpt", "1L1H-d16-relu-tied")
    lm = load_hf_gpt2(tmp_path / "ckpt", Task.from_record(task_record()))
    assert lm.config.tied_unembed
    task = Task.from_toml(save_hf_gpt2(lm, tmp_path / "lm"))
    names = set(safe_open(str(tmp_path / "lm" / "model.safetensors"), "pt").keys())
    assert "lm_head.weight" not in names
    inputs = sample_inputs()[:200]
    ours = task.read_out(load_hf_gpt2(tmp_path / "lm", task), inputs)
    assert ours == transformers_read_out(tmp_path / "lm", task, inputs)
    assert ours == lm.predict(inputs)


def test_trained_copy_exports_to_gpt2_and_predicts_as_transformers(tmp_path):
    """tests/data/zoo/copy-ab (causal, `bos x sep y`): exported as a GPT-2 directory and
    imported back, its read-out equals transformers' argmax and the copy, on every input."""
    model = load_model(ZOO / "copy-ab.safetensors")
    assert model.config.causal
    task = Task.from_toml(save_hf_gpt2(model, tmp_path / "hf"))
    inputs = [x for n in range(1, 5) for x in task.inputs(n)]
    imported = task.read_out(load_hf_gpt2(tmp_path / "hf", task), inputs)
    copies = [x[: (len(x) - 1) // 2] for x in inputs]
    assert imported == transformers_read_out(tmp_path / "hf", task, inputs) == copies


def test_multilabel_model_exports_to_gpt2_with_the_same_sets(tmp_path):
    """tests/data/zoo/dyck1-d2 (multi-label): its unembedding bias moves into ln_f's bias, so
    transformers' logits have the signs of ours: the same sets (logit > 0) on every input."""
    model = load_model(ZOO / "dyck1-d2.safetensors")
    assert model.unembed.b_U.detach().any()  # the bias is there to move
    task = Task.from_toml(save_hf_gpt2(model, tmp_path / "hf"))
    assert task.readout["kind"] == "multilabel"
    inputs = every_input(["(", ")"], 8)
    hf = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "hf").eval()
    ids = task.checkpoint_ids(hf.config.vocab_size)
    names = {i: name for name, i in ids.items()}
    theirs = []
    with torch.no_grad():
        for x in inputs:
            logits = hf(torch.tensor([[ids["BOS"], *(ids[t] for t in x)]])).logits[0]
            theirs.append([tuple(names[i] for i in torch.nonzero(row > 0)[:, 0].tolist())
                           for row in logits[1:]])  # fmt: skip
    imported = task.read_out(load_hf_gpt2(tmp_path / "hf", task), inputs)
    original = Task.from_record(model.records["task"]).read_out(model, inputs)
    assert imported == theirs == original
    assert len({s for row in theirs for s in row}) > 2  # the sets vary with the input


def test_a_multilabel_read_out_leaves_out_the_bos_score_nobody_trained(tmp_path):
    """A GPT-2 checkpoint scores every id, BOS included, but a multi-label model is trained
    on its labels only. Here dyck1-d2's export gets a BOS score equal to "("'s: its sets are
    still the original model's, in the read-out and in the codes the check compares. A
    subset that names BOS puts it back, in every set that holds "(", and nowhere else."""
    from safetensors.torch import load_file, save_file

    from distill.trained.check import ModelAnswers
    from distill.trained.program import label_of

    model = load_model(ZOO / "dyck1-d2.safetensors")
    task = Task.from_toml(save_hf_gpt2(model, tmp_path / "hf"))
    weights = load_file(tmp_path / "hf" / "model.safetensors")
    ids = task.checkpoint_ids(len(weights["lm_head.weight"]))
    weights["lm_head.weight"][ids["BOS"]] = weights["lm_head.weight"][ids["("]]
    save_file(weights, tmp_path / "hf" / "model.safetensors", metadata={"format": "pt"})
    inputs = every_input(["(", ")"], 8)
    original = Task.from_record(model.records["task"]).read_out(model, inputs)
    imported = load_hf_gpt2(tmp_path / "hf", task)
    assert "BOS" in imported.config.output_values
    assert task.read_out(imported, inputs) == original
    codes, label_of_code = ModelAnswers(imported, task).codes(inputs)
    assert [[label_of_code[c] for c in row[1 : len(x) + 1]] for row, x in zip(codes, inputs)] == [
        [label_of(s) for s in row] for row in original
    ]
    record = task.to_record()
    record["readout"]["subset"] = ["(", ")", "BOS"]
    with_bos = Task.from_record(record).read_out(load_hf_gpt2(tmp_path / "hf", task), inputs)
    assert with_bos != original
    assert all(("BOS" in s) == ("(" in s) and "EOS" not in s for row in with_bos for s in row)


def test_gpt2_export_refuses_what_gpt2_cannot_compute(tmp_path):
    compressed = load_model(ZOO / "hist-compressed.safetensors")  # tracr: no LayerNorm
    with pytest.raises(CheckpointError, match="normalization: GPT-2 has LayerNorm"):
        save_hf_gpt2(compressed, tmp_path / "a")
    bidirectional = load_model(ZOO / "tomita1.safetensors")
    bidirectional.config = dataclasses.replace(bidirectional.config, causal=False)
    with pytest.raises(CheckpointError, match="causal: GPT-2's attention is causal"):
        save_hf_gpt2(bidirectional, tmp_path / "b")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
