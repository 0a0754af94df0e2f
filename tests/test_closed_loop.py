"""Model -> program -> model: a distilled program recompiled with tracr computes what the original did."""

from __future__ import annotations

import dataclasses

import pytest
from tracr.rasp import rasp

import dsl
from distill.cli import main
from distill.emit.recompile import disagreements, recompile
from distill.errors import BadInputError
from distill.groundtruth.tracr_suite import ALL_CASES, compiled
from distill.models.file_format import load_model
from distill.models.numerics import RESOLUTION
from distill.models.tracr_import import from_tracr
from dsl import ast
from dsl.domain import count_inputs, enumerate_inputs


@pytest.mark.parametrize("name", ["sort_unique_1", "shift_by_one", "frac_prevs_1"])
def test_distill_run_then_compile_program_rasp_gives_the_same_model(name, tmp_path):
    case = next(c for c in ALL_CASES if c.name == name)
    original = from_tracr(compiled(case), rotate=2)
    original.save(tmp_path / "original.safetensors")
    assert (
        main(
            [
                "run",
                str(tmp_path / "original.safetensors"),
                "-o",
                str(tmp_path / "out"),
                "-q",
                "--no-prove",
            ]
        )
        == 0
    )
    vocab = ",".join(str(v) for v in original.config.vocab)
    status = main(
        [
            "compile",
            str(tmp_path / "out" / "program.rasp"),
            "--vocab",
            vocab,
            "--max-len",
            str(case.max_seq_len),
            "-o",
            str(tmp_path / "again.safetensors"),
        ]
    )
    assert status == 0
    again = load_model(tmp_path / "again.safetensors")
    inputs = [
        x
        for batch in enumerate_inputs(list(original.config.vocab), case.max_seq_len)
        for x in batch
    ]
    if name == "sort_unique_1":  # the source is defined on distinct tokens only
        inputs = [x for x in inputs if len(set(x)) == len(x)]
    for x, a, b in zip(inputs, original.predict(inputs), again.predict(inputs)):
        assert a == pytest.approx(b, abs=RESOLUTION), x


# --------------------------------------------------------------------------
# Each lowering rule, checked on every input of a small domain against an
# independent truth: tracr's RASP evaluator on the program as written, or the
# tracr model a causal program was read from.
# --------------------------------------------------------------------------

VOCAB = ["a", "b", "c"]
MAX_LEN = 4

# Running fractions of "a" and "b": means such as 2/3 and 3/4, which tracr's
# basis inference leaves out of a numerical aggregate's value set.
FRACTIONS = """
is_a = numerical map(lambda t: 1 if t == "a" else 0, tokens)
is_b = numerical map(lambda t: 1 if t == "b" else 0, tokens)
prevs = select(indices, indices, <=)
frac_a = numerical aggregate(prevs, is_a, default=0)
frac_b = numerical aggregate(prevs, is_b, default=0)
"""


def reachable_table(fn) -> ast.Table:
    """fn on the (frac_a, frac_b) pairs that occur, as a distilled table has it (no others)."""
    pairs = {
        (a / m, b / m)
        for m in range(1, MAX_LEN + 1)
        for a in range(m + 1)
        for b in range(m + 1 - a)
    }
    return ast.Table(tuple((pair, fn(*pair)) for pair in pairs))


def with_table(text: str, name: str, table: ast.Table) -> ast.Program:
    """The program of `text` with the function of definition `name` replaced by `table`."""
    program = dsl.parse(text)
    definitions = tuple(
        ast.Definition(d.name, dataclasses.replace(d.node, fn=table) if d.name == name else d.node)
        for d in program.definitions
    )
    return ast.Program(definitions, program.output)


def every_input(vocab, max_len) -> list[list]:
    return [x for batch in enumerate_inputs(vocab, max_len) for x in batch]


NUMERICAL_TABLE = with_table(
    FRACTIONS + "out = numerical sequence_map(lambda x, y: 0, frac_a, frac_b)\nreturn out",
    "out",
    reachable_table(lambda x, y: x * x - y),
)
# A categorical table on numbers, then a select whose queries are numerical.
CATEGORICAL_ON_NUMBERS = with_table(
    FRACTIONS
    + """
ahead = sequence_map(lambda x, y: 0, frac_a, frac_b)
position = numerical map(lambda i: i, indices)
same = select(indices, position, ==)
out = aggregate(same, ahead)
return out""",
    "ahead",
    reachable_table(lambda x, y: x > y),
)


@pytest.mark.parametrize(
    "program", [NUMERICAL_TABLE, CATEGORICAL_ON_NUMBERS], ids=["numerical", "categorical"]
)
def test_a_sequence_map_on_numbers_recompiles_to_what_tracr_evaluates(program):
    model = recompile(program, vocab=VOCAB, max_seq_len=MAX_LEN)
    inputs = every_input(VOCAB, MAX_LEN)
    sop = dsl.to_tracr(program)  # the program as written: tracr evaluates what it cannot compile
    for x, got in zip(inputs, model.predict(inputs)):
        assert got == pytest.approx(rasp.evaluate(sop, x), abs=RESOLUTION), x


# The shape of a program read off a causal model: the mask and-ed into the select.
CAUSAL_WIDTH = """
causal = select(indices, indices, <=)
select_all = causal & select(tokens, tokens, true)
width = selector_width(select_all)
return width
"""


def test_a_causal_program_recompiles_causally_to_its_model_and_refuses_otherwise(tmp_path):
    case = next(c for c in ALL_CASES if c.name == "selector_width" and c.causal)
    original = from_tracr(compiled(case), rotate=0)
    path = tmp_path / "width.rasp"
    path.write_text(CAUSAL_WIDTH)
    vocab = ",".join(original.config.vocab)
    common = ["compile", str(path), "--vocab", vocab, "--max-len", str(case.max_seq_len)]
    assert main([*common, "--causal", "-o", str(tmp_path / "causal.safetensors")]) == 0
    again = load_model(tmp_path / "causal.safetensors")
    assert disagreements(original, again) == (count_inputs(original.config.vocab, 5), 0, [])

    with pytest.raises(BadInputError, match="--causal"):
        recompile(dsl.parse(CAUSAL_WIDTH), vocab=original.config.vocab, max_seq_len=5)
    assert main([*common, "-o", str(tmp_path / "not_causal.safetensors")]) == 2


def test_disagreements_counts_every_input_that_differs():
    causal = next(c for c in ALL_CASES if c.name == "selector_width" and c.causal)
    original = from_tracr(compiled(causal), rotate=0)
    not_causal = recompile(
        dsl.parse("return selector_width(select(tokens, tokens, true))"),
        vocab=original.config.vocab,
        max_seq_len=causal.max_seq_len,
    )
    compared, differ, examples = disagreements(original, not_causal)
    # Causal and full widths differ exactly where an input has more than one token.
    assert (compared, differ) == (1364, 1364 - 4)
    assert [len(x) for x, _, _ in examples] == [2, 2, 2]
    for x, expected, got in examples:
        assert expected == list(range(1, len(x) + 1)) and got == [len(x)] * len(x)
