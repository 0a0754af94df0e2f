"""Merging map chains, dropping identity maps and dead definitions: hand-built programs."""

from __future__ import annotations

import dsl
from dsl import ast
from dsl.domain import enumerate_inputs
from synth.graph import flatten, inline_single_uses, remove_dead
from synth.merge import merge_map_chains
from synth.metrics import operation_count
from synth.simplify import drop_identity_maps

VOCAB = ["a", "b", "c"]
MAX_LEN = 3
TOKENS, INDICES = ast.Tokens(), ast.Indices()


def table(mapping: dict) -> ast.Table:
    return ast.Table(tuple(mapping.items()))


def program(*definitions: tuple[str, ast.Node], output: str) -> ast.Program:
    return ast.Program(tuple(ast.Definition(n, node) for n, node in definitions), ast.Name(output))


def all_inputs() -> list[list]:
    return [x for batch in enumerate_inputs(VOCAB, MAX_LEN) for x in batch]


def assert_same_function(before: ast.Program, after: ast.Program) -> None:
    inputs = all_inputs()
    assert dsl.evaluate(after, inputs, undefined="mark") == dsl.evaluate(
        before, inputs, undefined="mark"
    )


def test_a_chain_of_two_table_maps_becomes_one_composed_table():
    code = table({"a": 0, "b": 1, "c": 2})
    double = table({0: 0, 1: 2, 2: 4})
    source = program(
        ("code", ast.Map(code, TOKENS)), ("doubled", ast.Map(double, ast.Name("code"))),
        output="doubled",
    )  # fmt: skip
    merged = merge_map_chains(source)
    assert [d.name for d in merged.definitions] == ["doubled"]
    assert merged.definitions[0].node == ast.Map(table({"a": 0, "b": 2, "c": 4}), TOKENS)
    assert_same_function(source, merged)


def test_a_map_also_read_by_a_select_is_not_merged():
    code = table({"a": 0, "b": 1, "c": 2})
    source = program(
        ("code", ast.Map(code, TOKENS)),
        ("plus", ast.Map(table({0: 1, 1: 2, 2: 3}), ast.Name("code"))),
        ("sel", ast.Select(ast.Name("code"), INDICES, ast.Comparison("=="))),
        ("moved", ast.Aggregate(ast.Name("sel"), ast.Name("plus"))),
        output="moved",
    )
    merged = merge_map_chains(source)
    assert merged == source  # code is read twice; plus feeds an aggregate, not a map


def test_merges_repeat_until_none_applies():
    # plus merges into both, which then reads code twice: a map of code, which
    # is then single-use and merges too.
    code = table({"a": 0, "b": 1, "c": 2})
    source = program(
        ("code", ast.Map(code, TOKENS)),
        ("plus", ast.Map(table({0: 1, 1: 2, 2: 3}), ast.Name("code"))),
        ("both", ast.SequenceMap(table({(x, y): x + y for x in range(3) for y in range(1, 4)}), ast.Name("code"), ast.Name("plus"))),
        output="both",
    )  # fmt: skip
    merged = merge_map_chains(source)
    assert merged == program(
        ("both", ast.Map(table({"a": 1, "b": 3, "c": 5}), TOKENS)), output="both"
    )
    assert_same_function(source, merged)


def test_a_sequence_map_reading_a_single_use_map_absorbs_it():
    source = program(
        ("is_a", ast.Map(table({"a": True, "b": False, "c": False}), TOKENS)),
        ("pair", ast.SequenceMap(table({(b, i): (i if b else -i) for b in (True, False) for i in range(3)}), ast.Name("is_a"), INDICES)),
        output="pair",
    )  # fmt: skip
    merged = merge_map_chains(source)
    node = merged.lookup()["pair"]
    assert isinstance(node, ast.SequenceMap) and node.left == TOKENS and node.right == INDICES
    assert operation_count(merged) == 1
    assert_same_function(source, merged)


def test_a_map_reading_a_single_use_sequence_map_absorbs_it():
    source = program(
        ("diff", ast.SequenceMap(table({(t, i): f"{t}{i}" for t in VOCAB for i in range(3)}), TOKENS, INDICES)),
        ("flag", ast.Map(table({f"{t}{i}": t == "a" and i > 0 for t in VOCAB for i in range(3)}), ast.Name("diff"))),
        output="flag",
    )  # fmt: skip
    merged = merge_map_chains(source)
    assert list(merged.lookup()) == ["flag"]
    assert isinstance(merged.lookup()["flag"], ast.SequenceMap)
    assert_same_function(source, merged)


def test_a_sequence_map_of_one_sop_with_itself_becomes_a_map():
    source = program(
        ("pair", ast.SequenceMap(table({(x, y): x + y for x in VOCAB for y in VOCAB}), TOKENS, TOKENS)),
        output="pair",
    )  # fmt: skip
    merged = merge_map_chains(source)
    assert merged.lookup()["pair"] == ast.Map(table({t: t + t for t in VOCAB}), TOKENS)
    assert_same_function(source, merged)


def test_a_sequence_map_ignoring_an_argument_becomes_a_map():
    source = program(
        ("first", ast.SequenceMap(table({(t, i): t == "b" for t in VOCAB for i in range(3)}), TOKENS, INDICES)),
        output="first",
    )  # fmt: skip
    merged = merge_map_chains(source)
    assert merged.lookup()["first"] == ast.Map(table({t: t == "b" for t in VOCAB}), TOKENS)
    assert_same_function(source, merged)


def test_an_identity_map_is_dropped_and_its_readers_read_its_argument():
    identity = ast.Lambda(("x",), ast.Var("x"))
    select = ast.Select(ast.Name("same"), ast.Name("same"), ast.Comparison("=="))
    source = program(
        ("same", ast.Map(identity, TOKENS)),
        ("sel", select),
        ("count", ast.SelectorWidth(ast.Name("sel"))),
        output="count",
    )
    dropped, names = drop_identity_maps(source)
    assert names == ["same"]
    assert dropped.lookup()["sel"] == ast.Select(TOKENS, TOKENS, ast.Comparison("=="))
    assert_same_function(source, dropped)


def test_an_identity_map_changing_the_encoding_is_kept():
    # tracr's `numerical(Map(lambda x: x, bools))` feeds a numerical aggregate.
    identity = ast.Lambda(("x",), ast.Var("x"))
    source = program(
        ("flag", ast.Map(table({"a": 1, "b": 0, "c": 0}), TOKENS)),
        ("number", ast.Map(identity, ast.Name("flag"), ast.NUMERICAL)),
        ("prevs", ast.Select(INDICES, INDICES, ast.Comparison("<="))),
        ("frac", ast.Aggregate(ast.Name("prevs"), ast.Name("number"), 0, ast.NUMERICAL)),
        output="frac",
    )  # fmt: skip
    kept, names = drop_identity_maps(source)
    assert names == [] and kept == source


def test_dead_definitions_are_removed_and_flattening_round_trips():
    nested = ast.Aggregate(ast.Select(INDICES, INDICES, ast.Comparison("==")), TOKENS)
    source = program(("unused", ast.Map(table({"a": 1}), TOKENS)), ("copy", nested), output="copy")
    flat = flatten(source)
    assert all(
        isinstance(c, (ast.Name, ast.Indices, ast.Tokens))
        for d in flat.definitions
        for c in d.node.children
    )
    assert inline_single_uses(remove_dead(flat)) == program(("copy", nested), output="copy")
