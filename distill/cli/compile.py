"""`distill compile`: compile a `.rasp` program or a tracr SOp into a model file with tracr."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path
from typing import Annotated

import typer

from distill.cli.options import check_max_len, parse_vocab, read_program
from distill.errors import BadInputError

# tracr adds a BOS token to the vocab; the first of these not in the vocab is used.
BOS_CANDIDATES = ("BOS", "compiler_bos")


def load_program(source: str, vocab: list, max_len: int):
    """The program named by SRC: a `.rasp` file, or `file.py:NAME` (runs the file; a tracr SOp)."""
    import dsl

    path_text, _, name = source.rpartition(":")
    if path_text.endswith(".py") and name:
        return _python_sop(Path(path_text), name)
    if source.endswith(".py"):
        raise BadInputError(f"{source}: name the SOp as {source}:NAME")
    path = Path(source)
    if path.suffix != ".rasp":
        raise BadInputError(f"{source}: expected a .rasp file or path/to/file.py:NAME")
    program = read_program(path)
    for warning in dsl.infer(program, vocab, max_len).warnings:
        print(f"warning: {warning.render()}", file=sys.stderr)
    return program


def _python_sop(path: Path, name: str):
    from tracr.rasp import rasp

    if not path.is_file():
        raise BadInputError(f"{path}: no such file")
    namespace = runpy.run_path(str(path), run_name=f"distill_compile_{path.stem}")
    if name not in namespace:
        raise BadInputError(f"{path}: defines no name {name!r}")
    value = namespace[name]
    if callable(value) and not isinstance(value, rasp.RASPExpr):
        value = value()
    if not isinstance(value, rasp.SOp):
        raise BadInputError(
            f"{path}:{name}: expected a tracr SOp or a function returning one, "
            f"got {type(value).__name__}"
        )
    return value


def compile_sop(sop, vocab: list, max_len: int, causal: bool):
    """tracr's compiled model of `sop`; a program tracr cannot compile is bad input.

    A `.rasp` program is first lowered to what tracr compiles (see distill.recompile).
    """
    from tracr.compiler import compiling

    import dsl
    from distill.emit.recompile import compile_program

    bos = next(candidate for candidate in BOS_CANDIDATES if candidate not in vocab)
    try:
        if isinstance(sop, dsl.Program):
            return compile_program(
                sop, vocab=vocab, max_seq_len=max_len, causal=causal, compiler_bos=bos
            )
        return compiling.compile_rasp_to_model(
            sop, vocab=set(vocab), max_seq_len=max_len, causal=causal, compiler_bos=bos
        )
    except (NotImplementedError, ValueError, KeyError) as error:
        raise BadInputError(f"tracr cannot compile this program: {error}") from None


def compile_command(
    source: Annotated[
        str,
        typer.Argument(
            metavar="SRC",
            help="A .rasp file, or path/to/file.py:NAME naming a tracr SOp or a function "
            "returning one. The .py form RUNS that Python file: use it only on files you trust.",
        ),
    ],
    vocab: Annotated[
        str, typer.Option("--vocab", help="The input vocabulary, comma-separated: a,b,c.")
    ],
    max_len: Annotated[int, typer.Option("--max-len", help="The longest input the model accepts.")],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="The model file to write (.safetensors).")
    ],
    causal: Annotated[
        bool, typer.Option("--causal", help="Compile with causal attention.")
    ] = False,
    rotate: Annotated[
        int | None,
        typer.Option(help="Hide tracr's residual basis behind a random rotation with this seed."),
    ] = None,
) -> None:
    """Compile SRC with tracr into a model file (safetensors; no residual labels kept).

    Note: SRC given as file.py:NAME is executed as Python code.
    """
    from distill.models.tracr_import import from_tracr

    vocabulary = parse_vocab(vocab)
    check_max_len(max_len)
    sop = load_program(source, vocabulary, max_len)
    model = from_tracr(compile_sop(sop, vocabulary, max_len, causal), rotate=rotate)
    model.save(output)
    config = model.config
    print(
        f"wrote {output}: {config.n_layers} layers, d_model {config.d_model}, "
        f"{config.n_heads} heads, {config.output_kind} output"
    )


def register(app: typer.Typer) -> None:
    app.command("compile")(compile_command)
