"""Train a model with Hugging Face's code, not ours: a stand-in for models trained elsewhere.

    python benchmarks/train_with_transformers.py TASK DIR --vocab a,b,c --max-len 7 \\
        --layers 2 --heads 2 --d-model 32 --steps 4000 --seed 22
    distill import hf DIR --task DIR/task.toml -o model.safetensors

`transformers.GPT2LMHeadModel` with its own initialisation, gelu_new, tied embeddings,
dropout 0.1, AdamW (weight decay 0.01) with a warm-up and a cosine schedule, and a
cross-entropy over the whole vocabulary (BOS included) at the read-out positions, or a
BCE on the label columns for a multi-label task. TASK is a named task or a `.rasp`
program (`distill train`'s); the labels are ours, nothing else is. DIR gets
`save_pretrained`'s files (safetensors) and task.toml; the last line printed is the
accuracy per length (exhaustive up to 2 M inputs a length, sampled past it).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from distill.models import training
from distill.models.formal_tasks import named_task, program_task
from distill.models.task import Task as TaskFile

EXHAUSTIVE_MOST = 2_000_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("task")
    parser.add_argument("out", type=Path)
    parser.add_argument("--vocab", default=None)
    parser.add_argument("--max-len", type=int, required=True)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--d-model", type=int, default=32)
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    alphabet = tuple(args.vocab.split(",")) if args.vocab else None
    if args.task.endswith(".rasp"):
        task = program_task(Path(args.task), alphabet, args.max_len)
    else:
        task = named_task(args.task, alphabet, context=args.max_len)
    record = task.record(1, args.max_len)
    if record["readout"]["kind"] == "argmax":  # BOS is scored too: read the labels only
        record["readout"] = {**record["readout"], "kind": "subset_argmax",
                             "subset": list(task.output_values)}  # fmt: skip
    task_file = TaskFile.from_record(record)
    ids = task_file.checkpoint_ids(10**6)
    bos = ids["BOS"]
    token_ids = np.array([ids[a] for a in task.alphabet])
    label_ids = np.array([ids[v] for v in task.output_values])

    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    config = GPT2Config(vocab_size=len(ids), n_positions=args.max_len + 1, n_embd=args.d_model,
                        n_layer=args.layers, n_head=args.heads, activation_function="gelu_new",
                        bos_token_id=bos, eos_token_id=bos)  # fmt: skip
    model = GPT2LMHeadModel(config)
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser,
        lambda s: min(1, s / 200) * 0.5 * (1 + math.cos(math.pi * s / args.steps)),
    )

    def batch(tokens, lengths):
        read, lengths, targets = training.label_batch(task, tokens, lengths)
        x = np.full((read.shape[0], read.shape[1] + 1), bos)
        x[:, 1:] = token_ids[read]
        attention = np.arange(x.shape[1])[None] <= lengths[:, None]
        if task.multilabel:
            y = np.full(x.shape + (len(label_ids),), -100)
            y[:, 1:] = targets
        else:
            y = np.full(x.shape, -100)
            labelled = targets != training.IGNORED
            y[:, 1:][labelled] = label_ids[targets[labelled]]
        return torch.tensor(x), torch.tensor(attention.astype(np.int64)), torch.tensor(y)

    def loss_of(logits, y):
        if task.multilabel:
            scores, labelled = logits[..., torch.tensor(label_ids)], y != -100
            return torch.nn.functional.binary_cross_entropy_with_logits(
                scores[labelled], y[labelled].float()
            )
        return torch.nn.functional.cross_entropy(logits.reshape(-1, len(ids)), y.reshape(-1))

    start = time.time()
    for step in range(args.steps):
        model.train()
        n = len(task.alphabet)
        x, attention, y = batch(*training.sample_tokens(rng, n, 1, args.max_len, 256))
        loss = loss_of(model(input_ids=x, attention_mask=attention).logits, y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        if step % 500 == 0:
            print(f"step {step}: loss {loss.item():.4f}", flush=True)

    model.eval()
    accuracy = []
    for length in range(1, args.max_len + 1):
        n = len(task.alphabet)
        if n**length <= EXHAUSTIVE_MOST:
            tokens = training.all_strings(n, length, 0, n**length)
        else:
            tokens = rng.integers(0, n, (20_000, length))
        x, _, y = batch(tokens, np.full(len(tokens), length))
        with torch.no_grad():
            logits = torch.cat([model(input_ids=x[i : i + 4096]).logits
                                for i in range(0, len(x), 4096)])  # fmt: skip
        scores = logits[..., torch.tensor(label_ids)]
        if task.multilabel:
            right = ((scores > 0).long() == y) | (y == -100)
        else:
            right = (torch.tensor(label_ids)[scores.argmax(-1)] == y) | (y == -100)
        accuracy.append(
            [length, len(tokens), right.reshape(len(y), -1).all(1).float().mean().item()]
        )
    model.save_pretrained(args.out, safe_serialization=True)
    (args.out / "task.toml").write_text(task_file.to_toml())
    print(f"trained in {time.time() - start:.1f} s")
    print(json.dumps(accuracy))


if __name__ == "__main__":
    main()
