"""`distill train`: train a family model from scratch on a named task or a `.rasp` program."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from distill.errors import BadInputError

# Strings scored one by one in the final check: every binary string up to length 20.
CHECK_BUDGET = 2**21


def train_command(
    task: Annotated[
        str,
        typer.Argument(
            metavar="TASK",
            help="A .rasp program (its outputs at every position are the labels) or a named "
            "task: tomita1..tomita7, dyck1..dyck4 (depth bound: dyck2-d3), binary-majority, "
            "parity, majority, sort, reverse, copy, histogram, count. Dyck trains a "
            "next-symbol-set model (multi-label: the tokens whose logit is > 0); copy reads "
            "`x SEP y` and predicts y.",
        ),
    ],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="The model file to write (.safetensors).")
    ],
    vocab: Annotated[
        str | None,
        typer.Option(
            "--vocab",
            help="Input alphabet, comma-separated (a .rasp task, or a free-alphabet one).",
        ),
    ] = None,
    layers: Annotated[int, typer.Option(help="Blocks.")] = 2,
    heads: Annotated[int, typer.Option(help="Attention heads per block.")] = 2,
    d_model: Annotated[int, typer.Option("--d-model", help="Residual width.")] = 32,
    d_mlp: Annotated[int, typer.Option("--d-mlp", help="MLP width (0: 4 * d_model).")] = 0,
    activation: Annotated[
        str, typer.Option(help="MLP activation (the family's act_fn: relu, gelu).")
    ] = "relu",
    ln: Annotated[bool, typer.Option("--ln/--no-ln", help="Pre-LayerNorm.")] = True,
    causal: Annotated[
        bool | None,
        typer.Option("--causal/--no-causal", help="Causal attention (default: the task's)."),
    ] = None,
    min_len: Annotated[int, typer.Option("--min-len", help="Shortest training input.")] = 1,
    max_len: Annotated[
        int | None, typer.Option("--max-len", help="Longest training input (default: task's).")
    ] = None,
    context: Annotated[
        int | None,
        typer.Option(help="Longest input the model accepts (default: 2 * --max-len)."),
    ] = None,
    steps: Annotated[int, typer.Option(help="Most optimiser steps.")] = 3000,
    seed: Annotated[int, typer.Option(help="Seeds initialisation, data and dropout.")] = 0,
    lr: Annotated[float, typer.Option(help="Learning rate (AdamW).")] = 1e-3,
    dropout: Annotated[float, typer.Option(help="Dropout while training.")] = 0.0,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Strings per step.")] = 128,
    threads: Annotated[
        int | None, typer.Option(help="CPU threads (1 for runs reproducible across machines).")
    ] = None,
    check: Annotated[
        bool,
        typer.Option(
            "--check/--no-check",
            help=f"After training, score every input up to --max-len (at most {CHECK_BUDGET:,}).",
        ),
    ] = True,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Train a model on TASK and write it with its recipe, task and training log."""
    import torch

    from distill.cli.options import check_max_len, parse_vocab
    from distill.files import check_output_file
    from distill.models.formal_tasks import named_task, program_task
    from distill.models.training import (
        Recipe,
        accuracy_by_length,
        correct_up_to,
        recipe_problems,
        train,
    )

    if threads is not None:
        if threads < 1:
            raise BadInputError(f"--threads: expected a positive integer, got {threads}")
        torch.set_num_threads(threads)
    alphabet = tuple(parse_vocab(vocab)) if vocab is not None else None
    if max_len is not None:
        check_max_len(max_len)
    if context is not None:
        check_max_len(context)
    check_output_file(output)
    length = max_len if max_len is not None else 8
    window = context if context is not None else 2 * length
    if task.endswith(".rasp"):
        if alphabet is None:
            raise BadInputError("--vocab: a .rasp task needs its input alphabet (--vocab a,b,c)")
        chosen = program_task(Path(task), alphabet, window)
    else:
        chosen = named_task(task, alphabet, window)
        if max_len is None:
            length = chosen.max_len
            window = context if context is not None else 2 * length
            chosen = named_task(task, alphabet, window)
    recipe = Recipe(
        layers=layers, heads=heads, d_model=d_model, d_mlp=d_mlp, activation=activation,
        ln=ln, causal=chosen.causal if causal is None else causal, min_len=min_len,
        max_len=length, context=window, steps=steps, seed=seed, lr=lr, dropout=dropout,
        batch_size=batch_size,
    )  # fmt: skip
    problems = recipe_problems(recipe)
    if problems:
        raise BadInputError("; ".join(problems))

    with TrainingProgress(steps, quiet) as progress:
        result = train(chosen, recipe, progress)
    print(
        f"trained {chosen.name}: {result.steps} steps in {result.seconds:.1f} s, loss "
        f"{result.loss:.4f}, held-out accuracy {result.held_out_accuracy:.2%}"
    )
    if check:
        rows = accuracy_by_length(
            result.model, chosen, range(recipe.min_len, recipe.max_len + 1), CHECK_BUDGET
        )
        result.model.records["training"]["check"] = rows
        exhaustive = [row for row in rows if row["exhaustive"]]
        right = sum(row["right"] for row in exhaustive)
        total = sum(row["inputs"] for row in exhaustive)
        if exhaustive:
            longest = exhaustive[-1]["length"]
            print(
                f"every input of length {recipe.min_len}..{longest}: {right:,} of {total:,} "
                f"right; correct on every input up to length {correct_up_to(rows)}"
            )
    result.model.save(output)
    print(f"wrote {output}")


class TrainingProgress:
    """A rich progress bar with loss and held-out accuracy; nothing when quiet or piped."""

    def __init__(self, steps: int, quiet: bool):
        self.steps, self.quiet = steps, quiet
        self.bar = None

    def __enter__(self):
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        console = Console(file=sys.stderr)
        if self.quiet or not console.is_terminal:
            return None
        self.bar = Progress(
            TextColumn("training"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} steps  loss {task.fields[loss]}"),
            TextColumn("held-out {task.fields[accuracy]}"),
            TimeElapsedColumn(),
            console=console,
        )
        self.bar.start()
        self.task = self.bar.add_task("train", total=self.steps, loss="-", accuracy="-")
        return self.update

    def update(self, step: int, loss: float, accuracy: float | None) -> None:
        fields = {"loss": f"{loss:.4f}"}
        if accuracy is not None:
            fields["accuracy"] = f"{accuracy:.2%}"
        self.bar.update(self.task, completed=step, **fields)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.stop()
        return False


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)
