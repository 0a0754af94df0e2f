"""Type and value-set inference, checked against tracr's basis inference and the interpreter."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from strategies import batches, programs
from tracr.compiler import basis_inference, lib, nodes, rasp_to_graph
from tracr.rasp import rasp
from tracr_cases import ALL_CASES

import dsl
from dsl import ast
from dsl.errors import Problem
from dsl.interpreter import evaluate_arrays
from dsl.parser import parse
from dsl.tracr_bridge import topological_order
from dsl.types import Kind, infer

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def tracr_value_sets(program: rasp.SOp, vocab, max_seq_len: int) -> dict[str, set]:
    """label -> value set, as tracr's compiler computes them."""
    extracted = rasp_to_graph.extract_rasp_graph(program)
    basis_inference.infer_bases(extracted.graph, extracted.sink, set(vocab), max_seq_len)
    return {
        data[nodes.EXPR].label: data[nodes.VALUE_SET]
        for _, data in extracted.graph.nodes(data=True)
        if nodes.VALUE_SET in data
    }


def tracr_output_value_set(program: rasp.SOp, vocab, max_seq_len: int) -> set:
    return tracr_value_sets(program, vocab, max_seq_len)[program.label]


# tracr's lib programs written by hand in .rasp, node for node, with the tracr labels
# whose value sets each definition must equal.
LIB_PROGRAMS = [
    (
        "length",
        lib.make_length(),
        "abcd",
        5,
        """
        all_true_selector = select(tokens, tokens, true)
        length = selector_width(all_true_selector)
        return length
        """,
        {"length": "length"},
    ),
    (
        "reverse",
        lib.make_reverse(rasp.tokens),
        "abcd",
        5,
        """
        all_true_selector = select(tokens, tokens, true)
        length = selector_width(all_true_selector)
        opp_idx = length - indices
        opp_idx_1 = opp_idx - 1
        reverse_selector = select(indices, opp_idx_1, ==)
        reverse = aggregate(reverse_selector, tokens)
        return reverse
        """,
        {"length": "length", "opp_idx": "opp_idx", "opp_idx-1": "opp_idx_1", "reverse": "reverse"},
    ),
    (
        "hist",
        lib.make_hist(),
        "abcd",
        5,
        """
        same_tok = select(tokens, tokens, ==)
        hist = selector_width(same_tok)
        return hist
        """,
        {"hist": "hist"},
    ),
    (
        "sort_unique",
        lib.make_sort_unique(rasp.tokens, rasp.tokens),
        {1, 2, 3, 4},
        5,
        """
        smaller = select(tokens, tokens, <)
        target_pos = selector_width(smaller)
        sel_new = select(target_pos, indices, ==)
        sort = aggregate(sel_new, tokens)
        return sort
        """,
        {"target_pos": "target_pos", "sort": "sort"},
    ),
    (
        "sort",
        lib.make_sort(rasp.tokens, rasp.tokens, max_seq_len=5, min_key=1),
        {1, 2, 3, 4},
        5,
        """
        keys = sequence_map(lambda x, i: x + 1 * i / 5, tokens, indices)
        smaller = select(keys, keys, <)
        target_pos = selector_width(smaller)
        sel_new = select(target_pos, indices, ==)
        sort = aggregate(sel_new, tokens)
        return sort
        """,
        {"sequence_map": "keys", "target_pos": "target_pos", "sort": "sort"},
    ),
    (
        "frac_prevs",
        lib.make_frac_prevs(rasp.tokens == "l"),
        "helo",
        5,
        """
        bools = numerical tokens == "l"
        prevs = select(indices, indices, <=)
        frac_prevs = numerical aggregate(prevs, bools, default=0)
        return frac_prevs
        """,
        {"frac_prevs": "frac_prevs"},
    ),
    (
        "pair_balance",
        lib.make_pair_balance(rasp.tokens, "(", ")"),
        "()abc",
        10,
        """
        prevs = select(indices, indices, <=)
        bools_open = numerical tokens == "("
        opens = numerical aggregate(prevs, bools_open, default=0)
        bools_close = numerical tokens == ")"
        closes = numerical aggregate(prevs, bools_close, default=0)
        pair_balance = numerical sequence_map(lambda x, y: 1 * x + -1 * y, opens, closes)
        return pair_balance
        """,
        {
            "bools_open": "bools_open",
            "opens": "opens",
            "bools_close": "bools_close",
            "closes": "closes",
            "pair_balance": "pair_balance",
        },
    ),
    (
        "shift_by",
        lib.shift_by(2, rasp.tokens),
        "abcd",
        5,
        """
        shifted = aggregate(select(indices, indices, lambda k, q: q == k + 2), tokens)
        return shifted
        """,
        {"shift_by(2)": "shifted"},
    ),
    (
        "detect_pattern",
        lib.detect_pattern(rasp.tokens, "ab"),
        "ab",
        5,
        """
        last = tokens == "b"
        first = tokens == "a"
        first_before = aggregate(select(indices, indices, lambda k, q: q == k + 1), first)
        detected = sequence_map(lambda x, y: x and y, first_before, last)
        return detected
        """,
        {"shift_by(1)": "first_before", "detect_pattern(ab)": "detected"},
    ),
    (
        "count",
        lib.make_count(rasp.tokens, "a"),
        "abc",
        8,
        """
        count_a = selector_width(select(tokens, tokens, lambda k, q: k == "a"))
        return count_a
        """,
        {"count_a": "count_a"},
    ),
    (
        "count_less_freq",
        lib.make_count_less_freq(2),
        "abcd",
        6,
        """
        hist = selector_width(select(tokens, tokens, ==))
        select_less = select(hist, hist, lambda x, y: x <= 2)
        count_less_freq = selector_width(select_less)
        return count_less_freq
        """,
        {"hist": "hist", "count_less_freq": "count_less_freq"},
    ),
]


def _dedent(text: str) -> str:
    return "\n".join(line.strip() for line in text.strip().splitlines()) + "\n"


@pytest.mark.parametrize(
    "program, vocab, max_seq_len, source, labels",
    [case[1:] for case in LIB_PROGRAMS],
    ids=[case[0] for case in LIB_PROGRAMS],
)
def test_value_sets_equal_tracr_basis_inference(program, vocab, max_seq_len, source, labels):
    theirs = tracr_value_sets(program, vocab, max_seq_len)
    ours = infer(parse(_dedent(source)), vocab, max_seq_len)
    for label, name in labels.items():
        assert ours.definitions[name].value_set == _labelled(theirs, label), label
    assert ours.output.value_set == theirs[program.label]


def _labelled(value_sets: dict, label: str) -> set:
    """The value set of the one node named `label` (tracr appends _N to a reused name)."""
    [match] = [k for k in value_sets if re.fullmatch(re.escape(label) + r"(_\d+)?", k)]
    return value_sets[match]


# tracr programs whose SOps take tuple values (make_nary_sequencemap): outside the .rasp
# value types, so the bridge's tables for them are not single-valued maps.
TUPLE_VALUED = {"make_nary_sequencemap_1", "make_nary_sequencemap_2", "lib_make_nary_sequencemap"}


@pytest.mark.parametrize(
    "case",
    [c for c in ALL_CASES if c.compiles and c.name not in TUPLE_VALUED],
    ids=lambda c: c.name,
)
def test_value_sets_of_bridged_tracr_programs_equal_tracr(case):
    """Every tracr case, through dsl.from_tracr: the output's and each named node's value set."""
    theirs = tracr_value_sets(case.program, case.vocab, case.max_seq_len)
    converted = dsl.from_tracr(case.program, vocab=set(case.vocab), max_seq_len=case.max_seq_len)
    ours = infer(converted, case.vocab, case.max_seq_len)
    assert ours.output.value_set == theirs[case.program.label]
    # from_tracr defines one name per node other than tokens and indices, in this order;
    # tracr's labels carry global ids, so names are matched by node, never by spelling.
    nodes_defined = [
        expr
        for expr in topological_order(case.program)
        if not isinstance(expr, (rasp.TokensType, rasp.IndicesType))
    ]
    assert len(nodes_defined) == len(converted.definitions)
    for expr, definition in zip(nodes_defined, converted.definitions):
        info = ours.definitions[definition.name]
        if info.kind is Kind.SOP:
            assert info.value_set == theirs[expr.label], (definition.name, expr.label)


# ---- hand-computed value sets and encodings ------------------------------------------------


def test_value_sets_of_reverse_by_hand():
    program = parse(
        "length = selector_width(select(tokens, tokens, true))\n"
        "opp = length - indices - 1\n"
        "flip = select(indices, opp, ==)\n"
        "return aggregate(flip, tokens)\n"
    )
    info = infer(program, ["a", "b"], 3)
    assert info.definitions["length"] == dsl.types.NodeInfo(
        Kind.SOP, ast.CATEGORICAL, frozenset({0, 1, 2, 3})
    )
    # length - indices: 0..3 minus 0..2; then minus 1.
    assert info.definitions["opp"].value_set == frozenset(range(-3, 3))
    assert info.definitions["flip"] == dsl.types.NodeInfo(Kind.SELECTOR)
    assert info.output == dsl.types.NodeInfo(Kind.SOP, ast.CATEGORICAL, frozenset({"a", "b"}))
    assert not info.is_numerical


def test_lookup_by_node_resolves_names():
    program = parse(
        "double = numerical indices * 2\nsel = select(tokens, tokens, ==)\nreturn double\n"
    )
    info = infer(program, ["a"], 4)
    double, sel = (d.node for d in program.definitions)
    assert info.value_set(ast.Name("double")) == frozenset({0, 2, 4, 6})
    assert info.value_set(double) == frozenset({0, 2, 4, 6})
    assert info.encoding(ast.Name("double")) is ast.NUMERICAL
    assert info.value_set(double.arg) == frozenset(range(4))
    assert info.encoding(double.arg) is ast.CATEGORICAL
    assert info.kind(sel) is Kind.SELECTOR and info.value_set(sel) is None
    assert info.value_set(sel.keys) == frozenset({"a"})
    assert info.output_encoding is ast.NUMERICAL and info.is_numerical


def test_map_drops_none_results_and_skips_none_inputs():
    # tracr drops None results from a value set; the interpreter never calls a
    # function on None (the result is None), so None inputs are not checked either.
    program = parse(
        "half = map({0: None, 1: 'odd', 2: 'even'}, indices)\n"
        "nothing = aggregate(select(indices, indices, false), half)\n"
        "return map(lambda v: v + '!', nothing)\n"
    )
    info = infer(program, ["a"], 3)
    assert info.definitions["half"].value_set == frozenset({"odd", "even"})
    assert info.output.value_set == frozenset({"odd!", "even!"})


def test_numerical_aggregate_follows_tracr_even_for_means_it_cannot_list():
    # tracr's rule divides each value by each length (so 2/3 is missing): mirrored exactly.
    info = infer(
        parse("return numerical aggregate(select(indices, indices, <=), numerical indices < 1)"),
        ["a"],
        3,
    )
    assert info.output.value_set == frozenset({0.0, 1.0, 0.5, 1 / 3})
    assert info.warnings == ()


def test_full_and_selector_width_value_sets():
    info = infer(
        parse("w = selector_width(select(tokens, tokens, ==))\nreturn w + full(10)\n"), [1, 2], 2
    )
    assert info.definitions["w"].value_set == frozenset({0, 1, 2})
    assert info.output.value_set == frozenset({10, 11, 12})


# ---- warnings ---------------------------------------------------------------------------------


def test_unused_definitions_are_warnings_with_locations():
    text = "a = tokens\nb = indices\nc = a == 'x'\nreturn a\n"
    info = infer(parse(text, filename="w.rasp"), ["x"], 2)
    assert info.warnings == (
        Problem("unused definition 'b'", "w.rasp", 2, 1, "b = indices"),
        Problem("unused definition 'c'", "w.rasp", 3, 1, "c = a == 'x'"),
    )


def test_numerical_aggregate_of_non_binary_values_warns_that_tracr_cannot_compile_it():
    text = "values = numerical indices + 1\nreturn numerical aggregate(select(indices, indices, ==), values)\n"
    info = infer(parse(text, filename="m.rasp"), ["a"], 2)
    assert [w.render() for w in info.warnings] == [
        (
            "m.rasp:2:18: numerical aggregate of values other than 0 and 1 (1, 2):"
            " tracr compiles only means of 0/1 values\n"
            "    return numerical aggregate(select(indices, indices, ==), values)\n"
            "                     ^"
        )
    ]
    assert info.output.value_set == frozenset({1.0, 2.0, 0.5})


def test_examples_have_no_warnings():
    for path in EXAMPLES.glob("*.rasp"):
        vocab = [1, 2, 3] if "sort" in path.name else ["x", "y"]
        assert infer(parse(path.read_text()), vocab, 4).warnings == (), path.name


# ---- soundness against the interpreter ---------------------------------------------------------


def _depends_on_partial_rule(node: ast.Node, lookup: dict, info) -> bool:
    """Whether tracr's rules knowingly leave values out of the node's set.

    A numerical aggregate's set lacks most means. A categorical aggregate's set
    lacks its default (tracr compiles only the default None) and, over numbers,
    the mean of several selected values (tracr assumes one is selected).
    """
    if isinstance(node, ast.Name):
        return _depends_on_partial_rule(lookup[node.id], lookup, info)
    if isinstance(node, ast.Aggregate) and (
        node.encoding is ast.NUMERICAL
        or node.default is not None
        or any(isinstance(v, (int, float)) for v in info.value_set(node.sop))
    ):
        return True
    return any(_depends_on_partial_rule(child, lookup, info) for child in node.children)


VOCAB = ("a", "b", 1, 2)


@settings(max_examples=40, deadline=None)
@given(programs(vocab=VOCAB, max_seq_len=4), batches(VOCAB, 4))
def test_value_sets_contain_every_value_the_interpreter_computes(program, inputs):
    """Where tracr's rules are not knowingly partial, value sets hold every computed value."""
    info = infer(program, VOCAB, 4)
    evaluation = evaluate_arrays(program, inputs)
    lookup = program.lookup()
    checked = 0
    for name, array in evaluation.definitions.items():
        if info.definitions[name].kind is Kind.SELECTOR or _depends_on_partial_rule(
            lookup[name], lookup, info
        ):
            continue
        values = array.values()
        for b in range(len(inputs)):
            if b in array.failures:
                continue
            observed = {v for v in values[b][evaluation.mask[b]] if v is not None}
            assert observed <= info.definitions[name].value_set, name
        checked += 1
    assert checked >= 1  # the first definition never depends on an aggregate


def test_interpreter_arrays_are_what_the_soundness_test_reads():
    # Guards the test above against reading padding: one input of length 2 in a batch of 3.
    program = parse("return tokens\n")
    evaluation = evaluate_arrays(program, [["a", "b"], ["b"], ["a", "a", "a"]])
    assert evaluation.mask.tolist() == [
        [True, True, False],
        [True, False, False],
        [True, True, True],
    ]
    assert isinstance(evaluation.output.values(), np.ndarray)
