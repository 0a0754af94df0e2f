"""`distill import hf|tl`: a trained checkpoint and its task file into a model file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

import_app = typer.Typer(
    help="Import a trained checkpoint (files only, never pickle) with its task file.",
    no_args_is_help=True,
)

TaskOption = Annotated[
    Path,
    typer.Option(
        "--task", help="The task file (TOML, data: alphabet, special tokens, domain, read-out)."
    ),
]
OutputOption = Annotated[
    Path, typer.Option("-o", "--output", help="The model file to write (.safetensors).")
]


def _write(model, output: Path) -> None:
    model.save(output)
    config = model.config
    print(
        f"wrote {output}: {config.n_layers} layers, d_model {config.d_model}, "
        f"{config.n_heads} heads, {len(config.vocab)} tokens"
    )


@import_app.command("hf")
def import_hf(
    directory: Annotated[
        Path,
        typer.Argument(
            metavar="DIR", help="A Hugging Face GPT-2 directory: config.json + model.safetensors."
        ),
    ],
    task_path: TaskOption,
    output: OutputOption,
) -> None:
    """Import a Hugging Face GPT-2 checkpoint; the task file names its tokens."""
    from distill.files import check_output_file
    from distill.models.hf_import import load_hf_gpt2
    from distill.models.task import Task

    check_output_file(output)
    task = Task.from_toml(task_path)
    _write(load_hf_gpt2(directory, task), output)


@import_app.command("tl")
def import_tl(
    state: Annotated[
        Path,
        typer.Argument(metavar="STATE", help="A TransformerLens state dict saved as .safetensors."),
    ],
    config_path: Annotated[
        Path, typer.Option("--config", help="Its HookedTransformerConfig fields as JSON.")
    ],
    task_path: TaskOption,
    output: OutputOption,
) -> None:
    """Import a TransformerLens checkpoint; the task file names its tokens."""
    from distill.files import check_output_file
    from distill.models.task import Task
    from distill.models.tl_import import load_tl

    check_output_file(output)
    task = Task.from_toml(task_path)
    _write(load_tl(state, config_path, task), output)


def register(app: typer.Typer) -> None:
    app.add_typer(import_app, name="import")
