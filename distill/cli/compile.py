"""`distill compile`: compile a `.rasp` program or a tracr SOp into a model file with tracr."""

from __future__ import annotations

import os
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
    """The program named by SRC.

    An existing file is data, always: a `.rasp` file is parsed (never run), and any other
    existing path is refused. Only `path/to/file.py:NAME`, where NAME is a Python identifier
    and SRC itself is no existing file, runs Python: the file is executed and NAME (a tracr
    SOp, or a function of no arguments returning one) is taken from it.
    """
    import dsl

    if os.path.lexists(source):
        path = Path(source)
        if path.suffix == ".py":
            raise BadInputError(f"{source}: name the SOp as {source}:NAME")
        if path.suffix != ".rasp":
            raise BadInputError(f"{source}: expected a .rasp file or path/to/file.py:NAME")
        if path.is_dir():
            raise BadInputError(f"{source}: is a directory, expected a .rasp file")
        program = read_program(path)
        for warning in dsl.infer(program, vocab, max_len).warnings:
            print(f"warning: {warning.render()}", file=sys.stderr)
        return program
    path_text, colon, name = source.rpartition(":")
    if colon and path_text.endswith(".py") and name.isidentifier():
        return _python_sop(Path(path_text), name)
    raise BadInputError(
        f"{source}: no such file (SRC is a .rasp file or path/to/file.py:NAME, "
        "NAME a Python identifier)"
    )


def _one_line(text: object, limit: int = 200) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _python_sop(path: Path, name: str):
    import inspect

    from tracr.rasp import rasp

    if not path.is_file():
        raise BadInputError(f"{path}: no such file")
    try:
        namespace = runpy.run_path(str(path), run_name=f"distill_compile_{path.stem}")
    except SystemExit as stop:
        raise BadInputError(
            f"{path}: the file called sys.exit({stop.code!r}) while it ran; nothing compiled"
        ) from None
    except SyntaxError as error:
        raise BadInputError(
            f"{path}:{error.lineno}:{error.offset}: syntax error: {_one_line(error.msg)}"
        ) from None
    except Exception as error:
        raise BadInputError(
            f"{path}: running it raised {type(error).__name__}: {_one_line(error)}"
        ) from None
    if name not in namespace:
        raise BadInputError(f"{path}: defines no name {name!r}")
    value = namespace[name]
    if callable(value) and not isinstance(value, rasp.RASPExpr):
        try:
            signature = inspect.signature(value)
        except (TypeError, ValueError):
            signature = None
        required = [
            parameter.name
            for parameter in (signature.parameters.values() if signature else ())
            if parameter.default is inspect.Parameter.empty
            and parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
        ]
        if required:
            raise BadInputError(
                f"{path}:{name}: expected a function of no arguments, it needs "
                f"{', '.join(required)}"
            )
        try:
            value = value()
        except SystemExit as stop:
            raise BadInputError(
                f"{path}:{name}: called sys.exit({stop.code!r}); nothing compiled"
            ) from None
        except Exception as error:
            raise BadInputError(
                f"{path}:{name}: calling it raised {type(error).__name__}: {_one_line(error)}"
            ) from None
    if not isinstance(value, rasp.SOp):
        raise BadInputError(
            f"{path}:{name}: expected a tracr SOp or a function returning one, "
            f"got {type(value).__name__}"
        )
    return value


def check_compile_size(vocab: list, max_len: int) -> None:
    from distill.models import limits

    if max_len > limits.MAX_COMPILE_SEQ_LEN:
        raise BadInputError(
            f"--max-len: {max_len} is over the limit {limits.MAX_COMPILE_SEQ_LEN} "
            f"({limits.limit_name('MAX_COMPILE_SEQ_LEN')})"
        )
    if len(vocab) > limits.MAX_COMPILE_VOCAB:
        raise BadInputError(
            f"--vocab: {len(vocab)} values, over the limit {limits.MAX_COMPILE_VOCAB} "
            f"({limits.limit_name('MAX_COMPILE_VOCAB')})"
        )


def choose_bos(vocab: list) -> str:
    """A name for tracr's BOS token that is not in the vocab."""
    for candidate in BOS_CANDIDATES:
        if candidate not in vocab:
            return candidate
    number = 1
    while f"BOS_{number}" in vocab:
        number += 1
    return f"BOS_{number}"


def compile_sop(sop, vocab: list, max_len: int, causal: bool):
    """tracr's compiled model of `sop`; a program tracr cannot compile is bad input.

    A `.rasp` program is first lowered to what tracr compiles (see distill.recompile).
    """
    from tracr.compiler import compiling
    from tracr.rasp import rasp

    import dsl
    from distill.emit.recompile import compile_program

    bos = choose_bos(vocab)
    traced = dsl.to_tracr(sop) if isinstance(sop, dsl.Program) else sop
    if isinstance(traced, rasp.TokensType | rasp.IndicesType):
        raise BadInputError(
            f"tracr cannot compile a program that returns {traced.label} itself: it has no "
            f"operation to build a layer from (e.g. return map(lambda x: x, {traced.label}))"
        )
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
            help="A .rasp file (data: parsed, never run), or path/to/file.py:NAME naming a "
            "tracr SOp or a function of no arguments returning one. The .py:NAME form RUNS that "
            "Python file: use it only on files you trust. An existing file is always data: "
            "only a SRC that is no existing file and ends in .py:NAME (NAME a Python "
            "identifier) runs Python.",
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
    compress: Annotated[
        int | None,
        typer.Option(
            "--compress",
            metavar="D",
            help="Learn a projection of the residual stream into D < d_model dimensions that "
            "agrees with the compiled model on its whole domain; when D does not, the smallest "
            "larger D that does is used (exit 1 if none below d_model does).",
        ),
    ] = None,
) -> None:
    """Compile SRC with tracr into a model file (safetensors; no residual labels kept).

    Note: SRC given as file.py:NAME is executed as Python code.
    """
    from distill.files import check_output_file
    from distill.models.tracr_import import from_tracr

    vocabulary = parse_vocab(vocab)
    check_max_len(max_len)
    check_compile_size(vocabulary, max_len)
    check_output_file(output)
    sop = load_program(source, vocabulary, max_len)
    try:
        assembled = compile_sop(sop, vocabulary, max_len, causal)
    except BadInputError as error:
        raise BadInputError(f"{source}: {error}") from None
    model = from_tracr(assembled, rotate=rotate)
    source = {"kind": "tracr", "program": source, "vocab": vocabulary, "max_len": max_len,
              "causal": causal, "rotate": rotate}  # fmt: skip
    if compress is not None:
        model = _compressed(model, compress, source)
    model.save(output)
    config = model.config
    print(
        f"wrote {output}: {config.n_layers} layers, d_model {config.d_model}, "
        f"{config.n_heads} heads, {config.output_kind} output"
    )


def _compressed(model, d: int, source: dict):
    """`model` compressed to the smallest D >= d that agrees on the domain (exit 1 if none)."""
    from distill.models.compress import domain_inputs, smallest_agreeing

    d_model = model.config.d_model
    if not 1 <= d < d_model:
        raise BadInputError(f"--compress {d}: expected 1 <= D < d_model = {d_model}")
    inputs, whole = domain_inputs(model)
    scope = f"all {len(inputs):,} inputs" if whole else f"{len(inputs):,} sampled inputs"

    def report(attempt) -> None:
        verdict = "agrees" if attempt.agreed else f"{attempt.disagreements:,} disagreements"
        print(f"D = {attempt.d}: {verdict} on {scope} after {attempt.steps} steps")

    compressed, attempts = smallest_agreeing(model, d, inputs, report=report)
    if compressed is None:
        print(
            f"error: no D from {d} to {d_model - 1} agrees with the compiled model on {scope}",
            file=sys.stderr,
        )
        raise typer.Exit(1)
    found = compressed.config.d_model
    if found != d:
        print(f"D = {d} did not agree; the smallest D that did is {found}")
    compressed.records["source"] = {
        "kind": "compressed",
        "from": source,
        "d": found,
        "d_model": d_model,
        "checked": "exhaustive" if whole else "sampled",
        "inputs": len(inputs),
        "attempts": [vars(attempt) for attempt in attempts],
    }
    return compressed


def register(app: typer.Typer) -> None:
    app.command("compile")(compile_command)
