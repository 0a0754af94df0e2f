"""Train a family model from scratch on a task (`distill train`).

Inputs are drawn fresh for every step from a seeded generator: a length uniform
in the training range, then, for half the batch, tokens uniform over the
alphabet, and for the other half tokens drawn with a per-string random bias
(Dirichlet(1) token frequencies), so that strings a uniform draw almost never
makes (all 1s, long runs, lopsided counts: where the labels of Tomita,
majority and the like change) are seen too. A fixed held-out set, drawn the
same way from another seed, is scored every `eval_every` steps; training stops
early when every held-out string is right at every read-out position.

Dropout is no part of the family's forward: while training, forward hooks
apply it to each block's attention pattern, attention output and MLP output,
and are removed afterwards, so the saved model is a plain family model.

The model's context is longer than the training lengths (`context`, twice the
longest training length by default) so that length generalisation can be
measured on the same model: positions past the training lengths keep their
random initial embeddings. Lengths and the context count x's tokens: a
`bos x sep y` task's model reads 2 * context + 1.

The loss is cross-entropy over the output values at each read-out position, or,
for a multi-label task, a binary cross-entropy per output value (its logit > 0
says "in the set"). A string is right when every read-out position is: the
argmax is the label, or the whole set is the label's set.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from distill.errors import BadInputError
from distill.models.family import Model, ModelConfig
from distill.models.formal_tasks import BOS_NAME, UNLABELLED, Task

IGNORED = -100  # cross_entropy's ignore_index: positions that are no read-out
INIT_STD = 0.02  # GPT-2's initialisation
WARMUP_FRACTION = 0.05
EVAL_BATCH = 16_384


@dataclass(frozen=True)
class Recipe:
    """How a model is trained; stored in the model file's `training` record."""

    layers: int = 2
    """Blocks (attention then MLP)."""
    heads: int = 2
    """Attention heads per block; d_head = d_model / heads."""
    d_model: int = 32
    """Width of the residual stream."""
    d_mlp: int = 0
    """Hidden units per MLP; 0 means 4 * d_model."""
    activation: str = "relu"
    """MLP activation, passed to the family as its act_fn."""
    ln: bool = True
    """Pre-LayerNorm before attention, MLP and unembedding."""
    causal: bool = True
    """Causal attention."""
    min_len: int = 1
    """Shortest training input."""
    max_len: int = 8
    """Longest training input."""
    context: int = 16
    """Longest input (x) the model accepts (evaluation of length generalisation goes up to it)."""
    steps: int = 3000
    """Most optimiser steps (fewer when the held-out set is all right first)."""
    seed: int = 0
    """Seeds initialisation, data and dropout."""
    lr: float = 1e-3
    """AdamW learning rate after a linear warm-up."""
    dropout: float = 0.0
    """Dropout on attention patterns, attention outputs and MLP outputs while training."""
    batch_size: int = 128
    """Strings per step."""
    eval_every: int = 50
    """Steps between held-out evaluations."""
    held_out: int = 2048
    """Strings in the held-out set."""
    weight_decay: float = 0.01
    """AdamW weight decay."""

    @property
    def hidden(self) -> int:
        return self.d_mlp or 4 * self.d_model


def recipe_problems(recipe: Recipe) -> list[str]:
    """Every bad option of `recipe`, named as the command line names it."""
    problems = []
    for name in ("layers", "heads", "d_model", "steps", "batch_size", "min_len", "max_len"):
        if getattr(recipe, name) < 1:
            problems.append(f"--{name.replace('_', '-')}: expected a positive integer")
    if recipe.d_mlp < 0:
        problems.append("--d-mlp: expected a positive integer (or 0 for 4 * d_model)")
    if recipe.heads >= 1 and recipe.d_model % recipe.heads:
        problems.append(f"--d-model {recipe.d_model} is not a multiple of --heads {recipe.heads}")
    if recipe.min_len > recipe.max_len:
        problems.append(f"--min-len {recipe.min_len} is more than --max-len {recipe.max_len}")
    if recipe.context < recipe.max_len:
        problems.append(f"--context {recipe.context} is less than --max-len {recipe.max_len}")
    if not 0.0 <= recipe.dropout < 1.0:
        problems.append(f"--dropout: expected a probability in [0, 1), got {recipe.dropout}")
    if not recipe.lr > 0.0:
        problems.append(f"--lr: expected a positive learning rate, got {recipe.lr}")
    return problems


@dataclass
class TrainingResult:
    model: Model
    steps: int
    loss: float
    held_out_accuracy: float
    log: list[dict]
    seconds: float


Progress = Callable[[int, float, float | None], None]


def initialise(model: Model, seed: int) -> None:
    """GPT-2-style: matrices normal(0, 0.02), biases 0, LayerNorm weights 1."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            leaf = name.rsplit(".", 1)[1]
            if leaf.startswith("b") or leaf == "b":
                parameter.zero_()
            elif leaf == "w":  # LayerNorm
                parameter.fill_(1.0)
            else:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * INIT_STD)


def build_model(task: Task, recipe: Recipe) -> Model:
    config = ModelConfig(
        n_layers=recipe.layers,
        d_model=recipe.d_model,
        n_heads=recipe.heads,
        d_head=recipe.d_model // recipe.heads,
        d_mlp=recipe.hidden,
        n_ctx=task.sequence_length(recipe.context) + 1,
        act_fn=recipe.activation,
        normalization="LN" if recipe.ln else None,
        causal=recipe.causal,
        vocab=task.vocab,
        bos=BOS_NAME,
        max_seq_len=task.sequence_length(recipe.context),
        output_kind="categorical",
        output_values=task.output_values,
    )
    model = Model(config)
    initialise(model, recipe.seed)
    return model


# ------------------------------------------------------------------------------ data


def sample_tokens(
    rng: np.random.Generator, n_tokens: int, min_len: int, max_len: int, count: int
) -> tuple[np.ndarray, np.ndarray]:
    """(tokens [count, max_len] padded with 0, lengths [count]); see the module docstring."""
    lengths = rng.integers(min_len, max_len + 1, size=count)
    uniform = rng.integers(0, n_tokens, size=(count, max_len))
    biases = rng.dirichlet(np.ones(n_tokens), size=count)  # [count, n_tokens]
    cumulative = biases.cumsum(axis=1)
    draws = rng.random((count, max_len))
    biased = (draws[:, :, None] > cumulative[:, None, :]).sum(axis=2).clip(0, n_tokens - 1)
    tokens = np.where(np.arange(count)[:, None] % 2 == 0, uniform, biased)
    tokens[np.arange(max_len)[None, :] >= lengths[:, None]] = 0
    return tokens, lengths


def label_batch(
    task: Task, tokens: np.ndarray, lengths: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What the model reads for the strings x (`tokens` [count, max_len], `lengths`), and
    what it should output: (tokens [count, T], their lengths [count], targets [count, T],
    or [count, T, output values] for a multi-label task), T = max_len, or 2 * max_len + 1
    for `x sep y` (x, SEP, then y). Targets are IGNORED at positions that are no read-out."""
    count, longest = tokens.shape
    if task.sep:
        read = np.zeros((count, task.sequence_length(longest)), dtype=np.int64)
        targets = np.full(read.shape, IGNORED, dtype=np.int64)
        sep = task.vocab.index(task.special["sep"])
        for length in np.unique(lengths):
            rows = np.flatnonzero(lengths == length)
            y = task.label(tokens[rows, :length])
            read[rows, :length] = tokens[rows, :length]
            read[rows, length] = sep
            read[rows, length + 1 : 2 * length + 1] = y
            targets[rows, length : 2 * length] = y  # SEP predicts y's first token, and so on
        return read, 2 * lengths + 1, targets
    extra = (len(task.output_values),) if task.multilabel else ()
    targets = np.full(tokens.shape + extra, IGNORED, dtype=np.int64)
    for length in np.unique(lengths):
        rows = np.flatnonzero(lengths == length)
        labels = task.label(tokens[rows, :length])
        if task.readout == "last":
            targets[rows, length - 1] = labels[:, -1]
        else:
            targets[rows, :length] = labels
    return tokens, lengths, targets


def encode(tokens: np.ndarray, lengths: np.ndarray, config: ModelConfig) -> torch.Tensor:
    """Model ids [count, max_len + 1]: BOS, the tokens, PAD after each string's length."""
    ids = np.full((tokens.shape[0], tokens.shape[1] + 1), config.pad_id, dtype=np.int64)
    ids[:, 0] = config.bos_id
    inside = np.arange(tokens.shape[1])[None, :] < lengths[:, None]
    ids[:, 1:][inside] = tokens[inside]
    return torch.from_numpy(ids)


def predicted_indices(model: Model, ids: torch.Tensor, multilabel: bool = False) -> np.ndarray:
    """Decoded output indices [count, positions] after BOS (the family's argmax rule), or,
    multi-label, [count, positions, output values]: 1 where the logit is > 0."""
    rows = []
    with torch.no_grad():
        for start in range(0, ids.shape[0], EVAL_BATCH):
            chunk = ids[start : start + EVAL_BATCH]
            out = model(chunk, chunk != model.config.pad_id)[:, 1:]
            rows.append((out > 0).long().numpy() if multilabel else
                        model.output_indices(out).numpy())  # fmt: skip
    return np.concatenate(rows)


def right_strings(predicted: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Per string, whether it is right at every read-out position (the whole set, for a
    multi-label one; UNLABELLED is never right)."""
    right = (predicted == targets) | (targets == IGNORED)
    return right.reshape(right.shape[0], -1).all(axis=1)


def string_accuracy(model: Model, ids: torch.Tensor, targets: np.ndarray) -> float:
    """The fraction of strings right at every read-out position (`right_strings`)."""
    predicted = predicted_indices(model, ids, multilabel=targets.ndim == 3)
    return float(right_strings(predicted, targets).mean())


# -------------------------------------------------------------------------- training


def _dropout_hooks(model: Model, p: float) -> list:
    def drop(module, args, output):
        return F.dropout(output, p, training=model.training)

    points = []
    for block in model.blocks:
        points += [block.attn.hook_pattern, block.hook_attn_out, block.hook_mlp_out]
    return [point.register_forward_hook(drop) for point in points]


def train(task: Task, recipe: Recipe, progress: Progress | None = None) -> TrainingResult:
    """A model of `recipe`'s shape trained on `task`; the records say how."""
    problems = recipe_problems(recipe)
    if problems:
        raise BadInputError("; ".join(problems))
    started = time.perf_counter()
    torch.manual_seed(recipe.seed)
    model = build_model(task, recipe)
    config = model.config
    n_tokens = len(task.alphabet)
    data = np.random.default_rng([recipe.seed, 0])
    held_rng = np.random.default_rng([recipe.seed, 1])
    held_tokens, held_lengths, held_targets = label_batch(
        task, *sample_tokens(held_rng, n_tokens, recipe.min_len, recipe.max_len, recipe.held_out)
    )
    held_ids = encode(held_tokens, held_lengths, config)

    optimiser = torch.optim.AdamW(
        model.parameters(), lr=recipe.lr, betas=(0.9, 0.98), weight_decay=recipe.weight_decay
    )
    warmup = max(1, int(recipe.steps * WARMUP_FRACTION))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: min(1.0, (step + 1) / warmup)
    )
    hooks = _dropout_hooks(model, recipe.dropout) if recipe.dropout else []
    log: list[dict] = []
    loss_value, accuracy, step = float("nan"), 0.0, 0
    try:
        for step in range(1, recipe.steps + 1):
            model.train()
            tokens, lengths, targets = label_batch(
                task,
                *sample_tokens(data, n_tokens, recipe.min_len, recipe.max_len, recipe.batch_size),
            )
            ids = encode(tokens, lengths, config)
            out = model(ids, ids != config.pad_id)[:, 1:]
            loss = _loss(out, targets, task.multilabel)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            loss_value = loss.item()
            evaluate = step % recipe.eval_every == 0 or step == recipe.steps
            if evaluate:
                model.eval()
                accuracy = string_accuracy(model, held_ids, held_targets)
                log.append({"step": step, "loss": loss_value, "held_out_accuracy": accuracy})
            if progress is not None:
                progress(step, loss_value, accuracy if evaluate else None)
            if evaluate and accuracy == 1.0:
                break
    finally:
        for hook in hooks:
            hook.remove()
        model.eval()
    seconds = time.perf_counter() - started
    model.records["training"] = {
        "recipe": task.name,
        **({"program": task.program} if task.program is not None else {}),
        **asdict(recipe),
        "steps_run": step,
        "final_loss": loss_value,
        "held_out_accuracy": accuracy,
        "seconds": round(seconds, 2),
        "torch_version": torch.__version__,
        "log": log,
    }
    model.records["source"] = {"kind": "trained", "task": task.name}
    model.records["task"] = task.record(recipe.min_len, recipe.max_len)
    return TrainingResult(model, step, loss_value, accuracy, log, seconds)


def _loss(out: torch.Tensor, targets: np.ndarray, multilabel: bool) -> torch.Tensor:
    """Cross-entropy over the output values, or one binary cross-entropy per value."""
    labels = torch.from_numpy(targets)
    if multilabel:
        scored = labels != IGNORED
        return F.binary_cross_entropy_with_logits(out[scored], labels[scored].to(out.dtype))
    labels = labels.masked_fill(labels == UNLABELLED, IGNORED)
    return F.cross_entropy(out.reshape(-1, out.shape[-1]), labels.reshape(-1), ignore_index=IGNORED)


# ------------------------------------------------------------------------ evaluation


def all_strings(n_tokens: int, length: int, start: int, stop: int) -> np.ndarray:
    """Strings number start..stop-1 of the given length, in lexicographic order [count, length]."""
    numbers = np.arange(start, stop, dtype=np.int64)
    powers = n_tokens ** np.arange(length - 1, -1, -1, dtype=np.int64)
    return (numbers[:, None] // powers[None, :]) % n_tokens


def accuracy_by_length(
    model: Model,
    task: Task,
    lengths: range,
    budget: int = 2**21,
    samples: int = 2000,
    seed: int = 0,
) -> list[dict]:
    """Per length: inputs scored, how many were right, exhaustive or sampled.

    A length is exhaustive while the inputs of every length so far fit `budget`
    together; past that, `samples` seeded uniform strings are scored.
    """
    n_tokens = len(task.alphabet)
    rows, spent = [], 0
    rng = np.random.default_rng([seed, 2])
    for length in lengths:
        total = n_tokens**length
        exhaustive = spent + total <= budget
        right = scored = 0
        if exhaustive:
            spent += total
            for start in range(0, total, EVAL_BATCH * 4):
                tokens = all_strings(n_tokens, length, start, min(total, start + EVAL_BATCH * 4))
                right += _right(model, task, tokens)
                scored += tokens.shape[0]
        else:
            tokens = rng.integers(0, n_tokens, size=(samples, length))
            right, scored = _right(model, task, tokens), samples
        rows.append(
            {
                "length": length,
                "inputs": scored,
                "right": right,
                "accuracy": right / scored,
                "exhaustive": exhaustive,
            }
        )
    return rows


def _right(model: Model, task: Task, tokens: np.ndarray) -> int:
    read, lengths, targets = label_batch(task, tokens, np.full(tokens.shape[0], tokens.shape[1]))
    predicted = predicted_indices(model, encode(read, lengths, model.config), task.multilabel)
    return int(right_strings(predicted, targets).sum())


def correct_up_to(rows: list[dict]) -> int:
    """The longest length up to which every input was scored exhaustively and right (0: none)."""
    longest = 0
    for row in rows:
        if not (row["exhaustive"] and row["right"] == row["inputs"]):
            break
        longest = row["length"]
    return longest


__all__ = [
    "Recipe",
    "TrainingResult",
    "accuracy_by_length",
    "correct_up_to",
    "recipe_problems",
    "train",
]
