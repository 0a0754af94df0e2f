"""Malformed and ill-typed programs: the exact message of each, and `distill eval` exiting 2.

Each expected message is the whole error text: file:line:column, the message, the
offending line and a caret under the column. Type errors are all reported together.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from distill.cli import main
from dsl.errors import ParseError, TypeCheckError
from dsl.parser import parse
from dsl.types import infer

VOCAB = ["a", "b"]
MAX_LEN = 4

SYNTAX_ERRORS = [
    pytest.param(
        "x = map(lambda v: v + 1, tokens\nreturn x\n",
        (
            "bad.rasp:1:32: unexpected end of line; expected ')' or ','\n"
            "    x = map(lambda v: v + 1, tokens\n"
            "                                   ^"
        ),
        id="missing_paren",
    ),
    pytest.param(
        "sel = select(tokens, tokens, =>)\nreturn selector_width(sel)\n",
        (
            "bad.rasp:1:30: unknown comparison '=>'\n"
            "    sel = select(tokens, tokens, =>)\n"
            "                                 ^"
        ),
        id="unknown_comparison",
    ),
    pytest.param(
        'cls = map({"a": 0, "b": 1, "a": 2}, tokens)\nreturn cls\n',
        (
            "bad.rasp:1:28: duplicate key 'a' in table\n"
            '    cls = map({"a": 0, "b": 1, "a": 2}, tokens)\n'
            "                               ^"
        ),
        id="duplicate_key",
    ),
    pytest.param(
        'is_x = tokens == "x\nreturn is_x\n',
        ('bad.rasp:1:18: unterminated string\n    is_x = tokens == "x\n                     ^'),
        id="unterminated_string",
    ),
    pytest.param(
        "x = tokens\n",
        (
            "bad.rasp:1:11: unexpected end of input; expected 'return' or a definition\n"
            "    x = tokens\n"
            "              ^"
        ),
        id="missing_return",
    ),
    pytest.param(
        "# nothing here\n",
        (
            "bad.rasp:1:15: unexpected end of input; expected 'return' or a definition\n"
            "    # nothing here\n"
            "                  ^"
        ),
        id="empty",
    ),
    pytest.param(
        "x = tokens @ 2\nreturn x\n",
        ("bad.rasp:1:12: unexpected character '@'\n    x = tokens @ 2\n               ^"),
        id="bad_character",
    ),
    pytest.param(
        "x = reverse(tokens)\nreturn x\n",
        (
            "bad.rasp:1:5: unknown function 'reverse'; expected one of aggregate, full, map, select, selector_width, sequence_map\n"
            "    x = reverse(tokens)\n"
            "        ^"
        ),
        id="unknown_function",
    ),
    pytest.param(
        "x = map(tokens)\nreturn x\n",
        (
            "bad.rasp:1:5: map(function, sop) takes 2 positional arguments, got 1\n"
            "    x = map(tokens)\n"
            "        ^"
        ),
        id="map_arity",
    ),
    pytest.param(
        "x = 1\nreturn x\n",
        (
            "bad.rasp:1:5: the value of 'x' must be an SOp, got the literal 1 (write full(1))\n"
            "    x = 1\n"
            "        ^"
        ),
        id="literal_definition",
    ),
    pytest.param(
        "return 1 + 2\n",
        (
            "bad.rasp:1:10: '+' needs an SOp on at least one side, got two literals\n"
            "    return 1 + 2\n"
            "             ^"
        ),
        id="two_literals",
    ),
    pytest.param(
        "map = tokens\nreturn map\n",
        ("bad.rasp:1:1: cannot define 'map': it is a builtin name\n    map = tokens\n    ^"),
        id="builtin_name",
    ),
    pytest.param(
        "x = tokens\nreturn numerical x\n",
        (
            "bad.rasp:2:8: cannot annotate the name 'x': annotate its definition instead\n"
            "    return numerical x\n"
            "           ^"
        ),
        id="annotated_name",
    ),
    pytest.param(
        "x = sequence_map(lambda a, a: a, tokens, tokens)\nreturn x\n",
        (
            "bad.rasp:1:28: duplicate parameter 'a' in lambda\n"
            "    x = sequence_map(lambda a, a: a, tokens, tokens)\n"
            "                               ^"
        ),
        id="duplicate_parameter",
    ),
    pytest.param(
        "x = aggregate(select(tokens, tokens, ==), tokens, default=tokens)\nreturn x\n",
        (
            "bad.rasp:1:51: default must be a literal value, got an SOp\n"
            "    x = aggregate(select(tokens, tokens, ==), tokens, default=tokens)\n"
            "                                                      ^"
        ),
        id="default_not_literal",
    ),
    pytest.param(
        "x = aggregate(select(tokens, tokens, ==), tokens, fill=0)\nreturn x\n",
        (
            "bad.rasp:1:51: aggregate has no keyword argument 'fill'\n"
            "    x = aggregate(select(tokens, tokens, ==), tokens, fill=0)\n"
            "                                                      ^"
        ),
        id="unknown_keyword",
    ),
    pytest.param(
        "x = indices < indices < 3\nreturn x\n",
        (
            "bad.rasp:1:23: comparisons cannot be chained; add parentheses\n"
            "    x = indices < indices < 3\n"
            "                          ^"
        ),
        id="chained_comparison",
    ),
    pytest.param(
        "x = map(==, tokens)\nreturn x\n",
        (
            "bad.rasp:1:9: a comparison like '==' is only allowed in select\n"
            "    x = map(==, tokens)\n"
            "            ^"
        ),
        id="comparison_outside_select",
    ),
    pytest.param(
        "return tokens\nx = indices\n",
        ("bad.rasp:2:1: unexpected 'x'; expected end of input\n    x = indices\n    ^"),
        id="after_return",
    ),
    pytest.param(
        "x = tokens == 'a\\q'\nreturn x\n",
        (
            "bad.rasp:1:15: unknown escape '\\q' in string\n"
            "    x = tokens == 'a\\q'\n"
            "                  ^"
        ),
        id="unknown_escape",
    ),
    pytest.param(
        "x = map(lambda: 1, tokens)\nreturn x\n",
        (
            "bad.rasp:1:15: unexpected ':'; expected a name\n"
            "    x = map(lambda: 1, tokens)\n"
            "                  ^"
        ),
        id="lambda_without_parameters",
    ),
    pytest.param(
        "x = select(tokens, tokens, ==) & True\nreturn selector_width(x)\n",
        (
            "bad.rasp:1:34: '&' combines selectors, got the literal True\n"
            "    x = select(tokens, tokens, ==) & True\n"
            "                                     ^"
        ),
        id="selector_and_literal",
    ),
    pytest.param(
        "x = numerical select(tokens, tokens, ==)\nreturn selector_width(x)\n",
        (
            "bad.rasp:1:5: 'numerical' annotates an SOp, not a selector\n"
            "    x = numerical select(tokens, tokens, ==)\n"
            "        ^"
        ),
        id="numerical_selector",
    ),
    pytest.param(
        "x = map(lambda t: 'it''s', tokens)\nreturn x\n",
        (
            "bad.rasp:1:23: unexpected string 's'; expected ')' or ','\n"
            "    x = map(lambda t: 'it''s', tokens)\n"
            "                          ^"
        ),
        id="adjacent_strings",
    ),
    pytest.param(
        "x = select(tokens, tokens)\nreturn selector_width(x)\n",
        (
            "bad.rasp:1:5: select(keys, queries, comparison) takes 3 positional arguments, got 2\n"
            "    x = select(tokens, tokens)\n"
            "        ^"
        ),
        id="select_two_arguments",
    ),
    pytest.param(
        "x = aggregate(select(tokens, tokens, ==), tokens, 0)\nreturn x\n",
        (
            "bad.rasp:1:5: aggregate(selector, sop, default=value) takes 2 positional arguments, got 3\n"
            "    x = aggregate(select(tokens, tokens, ==), tokens, 0)\n"
            "        ^"
        ),
        id="positional_default",
    ),
    pytest.param(
        "x = tokens +\nreturn x\n",
        (
            "bad.rasp:1:13: unexpected end of line; expected an expression\n"
            "    x = tokens +\n"
            "                ^"
        ),
        id="missing_operand",
    ),
    pytest.param(
        "x = map({1: 2, 3}, indices)\nreturn x\n",
        (
            "bad.rasp:1:17: unexpected '}'; expected ':'\n"
            "    x = map({1: 2, 3}, indices)\n"
            "                    ^"
        ),
        id="table_entry_without_value",
    ),
    pytest.param(
        "True = tokens\nreturn True\n",
        ("bad.rasp:1:1: cannot define 'True': it is a keyword\n    True = tokens\n    ^"),
        id="keyword_definition",
    ),
    pytest.param(
        "x = map(lambda None: 1, tokens)\nreturn x\n",
        (
            "bad.rasp:1:16: cannot use the keyword 'None' as a parameter\n"
            "    x = map(lambda None: 1, tokens)\n"
            "                   ^"
        ),
        id="keyword_parameter",
    ),
]

TYPE_ERRORS = [
    pytest.param(
        "x = tokens\nreturn y\n",
        ("bad.rasp:2:8: undefined name 'y'\n    return y\n           ^"),
        id="undefined_name",
    ),
    pytest.param(
        "a = b + 1\nb = indices\nreturn a\n",
        ("bad.rasp:1:5: 'b' is used before its definition (line 2)\n    a = b + 1\n        ^"),
        id="used_before_definition",
    ),
    pytest.param(
        "a = tokens\na = indices\nreturn a\n",
        ("bad.rasp:2:1: redefinition of 'a' (first defined on line 1)\n    a = indices\n    ^"),
        id="redefinition",
    ),
    pytest.param(
        "ones = numerical map(lambda t: 1, tokens)\nreturn aggregate(select(tokens, tokens, ==), ones)\n",
        (
            "bad.rasp:2:8: categorical aggregate of a numerical SOp (write numerical aggregate(...))\n"
            "    return aggregate(select(tokens, tokens, ==), ones)\n"
            "           ^"
        ),
        id="categorical_aggregate_of_numerical",
    ),
    pytest.param(
        "prevs = select(indices, indices, <=)\nreturn numerical aggregate(prevs, tokens, default=0)\n",
        (
            "bad.rasp:2:18: numerical aggregate of non-numbers: 'a', 'b'\n"
            "    return numerical aggregate(prevs, tokens, default=0)\n"
            "                     ^"
        ),
        id="numerical_aggregate_of_non_numbers",
    ),
    pytest.param(
        "n = numerical indices + 1\nreturn selector_width(select(n, indices, <))\n",
        (
            "bad.rasp:2:30: the keys of select must be categorical, got a numerical SOp\n"
            "    return selector_width(select(n, indices, <))\n"
            "                                 ^"
        ),
        id="select_on_numerical",
    ),
    pytest.param(
        "shout = map(lambda t: t + 1, tokens)\nreturn shout\n",
        (
            "bad.rasp:1:9: lambda t: t + 1 fails on 'a': can only concatenate str (not \"int\") to str\n"
            "    shout = map(lambda t: t + 1, tokens)\n"
            "            ^"
        ),
        id="lambda_fails",
    ),
    pytest.param(
        "inverse = map(lambda i: 1 / i, indices)\nreturn inverse\n",
        (
            "bad.rasp:1:11: lambda i: 1 / i fails on 0: division by zero\n"
            "    inverse = map(lambda i: 1 / i, indices)\n"
            "              ^"
        ),
        id="division_by_zero",
    ),
    pytest.param(
        'cls = map({"a": 0}, tokens)\nreturn cls\n',
        (
            "bad.rasp:1:7: table has no entry for 'b'\n"
            '    cls = map({"a": 0}, tokens)\n'
            "          ^"
        ),
        id="table_missing_key",
    ),
    pytest.param(
        "x = map(lambda a, b: a, tokens)\nreturn x\n",
        (
            "bad.rasp:1:5: map needs a function of 1 argument, got lambda a, b: a\n"
            "    x = map(lambda a, b: a, tokens)\n"
            "        ^"
        ),
        id="map_with_two_parameters",
    ),
    pytest.param(
        "x = sequence_map({1: 2}, indices, indices)\nreturn x\n",
        (
            "bad.rasp:1:5: sequence_map needs a table keyed by tuples of 2 values, got key 1\n"
            "    x = sequence_map({1: 2}, indices, indices)\n"
            "        ^"
        ),
        id="sequence_map_table_not_pairs",
    ),
    pytest.param(
        "sel = select(tokens, tokens, ==)\nreturn sel + 1\n",
        (
            "bad.rasp:2:8: the left operand of '+' must be an SOp, got a selector\n"
            "    return sel + 1\n"
            "           ^"
        ),
        id="selector_as_sop",
    ),
    pytest.param(
        "return aggregate(tokens, tokens)\n",
        (
            "bad.rasp:1:18: argument 1 of aggregate must be a selector, got an SOp\n"
            "    return aggregate(tokens, tokens)\n"
            "                     ^"
        ),
        id="sop_as_selector",
    ),
    pytest.param(
        "x = map(lambda t: t == other, tokens)\nreturn x\n",
        (
            "bad.rasp:1:5: unknown variable 'other' in lambda (parameters: t)\n"
            "    x = map(lambda t: t == other, tokens)\n"
            "        ^"
        ),
        id="unknown_variable",
    ),
    pytest.param(
        "x = map(lambda i: round(i), indices)\nreturn x\n",
        (
            "bad.rasp:1:5: unknown function 'round' in lambda (expected one of min, max, abs)\n"
            "    x = map(lambda i: round(i), indices)\n"
            "        ^"
        ),
        id="unknown_builtin",
    ),
    pytest.param(
        "x = map(lambda i: max(i), indices)\nreturn x\n",
        (
            "bad.rasp:1:5: max takes at least 2 arguments, got 1 in lambda\n"
            "    x = map(lambda i: max(i), indices)\n"
            "        ^"
        ),
        id="builtin_arity",
    ),
    pytest.param(
        "return select(tokens, tokens, ==)\n",
        (
            "bad.rasp:1:8: the returned value must be an SOp, got a selector\n"
            "    return select(tokens, tokens, ==)\n"
            "           ^"
        ),
        id="returns_selector",
    ),
    pytest.param(
        "return selector_width(select(tokens, indices, <))\n",
        (
            "bad.rasp:1:23: comparison '<' fails on key 'a', query 0: '<' not supported between instances of 'str' and 'int'\n"
            "    return selector_width(select(tokens, indices, <))\n"
            "                          ^"
        ),
        id="comparison_types",
    ),
    pytest.param(
        "return selector_width(select(tokens, tokens, lambda k, q: k + 1 == q))\n",
        (
            "bad.rasp:1:23: lambda k, q: k + 1 == q fails on 'a', 'a': can only concatenate str (not \"int\") to str\n"
            "    return selector_width(select(tokens, tokens, lambda k, q: k + 1 == q))\n"
            "                          ^"
        ),
        id="predicate_fails",
    ),
    pytest.param(
        "a = undefined + 1\nb = select(tokens, indices, ==)\nc = aggregate(b, numerical indices + 1)\nc = map(lambda t: t * z, tokens)\nreturn b\n",
        (
            "bad.rasp:1:5: undefined name 'undefined'\n"
            "    a = undefined + 1\n"
            "        ^\n"
            "bad.rasp:3:5: categorical aggregate of a numerical SOp (write numerical aggregate(...))\n"
            "    c = aggregate(b, numerical indices + 1)\n"
            "        ^\n"
            "bad.rasp:4:1: redefinition of 'c' (first defined on line 3)\n"
            "    c = map(lambda t: t * z, tokens)\n"
            "    ^\n"
            "bad.rasp:4:5: unknown variable 'z' in lambda (parameters: t)\n"
            "    c = map(lambda t: t * z, tokens)\n"
            "        ^\n"
            "bad.rasp:5:8: the returned value must be an SOp, got a selector\n"
            "    return b\n"
            "           ^"
        ),
        id="many",
    ),
    pytest.param(
        "return aggregate(select(tokens, nothing, ==), map({'a': 1}, tokens) + indices) + missing\n",
        (
            "bad.rasp:1:33: undefined name 'nothing'\n"
            "    return aggregate(select(tokens, nothing, ==), map({'a': 1}, tokens) + indices) + missing\n"
            "                                    ^\n"
            "bad.rasp:1:47: table has no entry for 'b'\n"
            "    return aggregate(select(tokens, nothing, ==), map({'a': 1}, tokens) + indices) + missing\n"
            "                                                  ^\n"
            "bad.rasp:1:82: undefined name 'missing'\n"
            "    return aggregate(select(tokens, nothing, ==), map({'a': 1}, tokens) + indices) + missing\n"
            "                                                                                     ^"
        ),
        id="many_in_one_line",
    ),
    pytest.param(
        "sel = select(tokens, tokens, ==)\nw = selector_width(tokens)\nbad = numerical aggregate(sel, tokens)\nreturn sel & w\n",
        (
            "bad.rasp:2:20: the argument of selector_width must be a selector, got an SOp\n"
            "    w = selector_width(tokens)\n"
            "                       ^\n"
            "bad.rasp:3:17: numerical aggregate of non-numbers: 'a', 'b'\n"
            "    bad = numerical aggregate(sel, tokens)\n"
            "                    ^\n"
            "bad.rasp:4:8: the returned value must be an SOp, got a selector\n"
            "    return sel & w\n"
            "           ^\n"
            "bad.rasp:4:14: the right operand of '&' must be a selector, got an SOp\n"
            "    return sel & w\n"
            "                 ^"
        ),
        id="many_kinds",
    ),
    pytest.param(
        "sel = select(tokens, tokens, ==)\nreturn 1 - sel\n",
        (
            "bad.rasp:2:12: the right operand of '-' must be an SOp, got a selector\n"
            "    return 1 - sel\n"
            "               ^"
        ),
        id="selector_right_operand",
    ),
    pytest.param(
        "sel = select(tokens, tokens, ==)\nreturn indices - -sel\n",
        (
            "bad.rasp:2:19: the operand of '-' must be an SOp, got a selector\n"
            "    return indices - -sel\n"
            "                      ^"
        ),
        id="selector_negated",
    ),
]


@pytest.mark.parametrize("source, message", SYNTAX_ERRORS)
def test_syntax_error_message(source, message):
    with pytest.raises(ParseError) as caught:
        parse(source, filename="bad.rasp")
    assert str(caught.value) == message
    assert caught.value.problem.filename == "bad.rasp"


@pytest.mark.parametrize("source, message", TYPE_ERRORS)
def test_type_error_message(source, message):
    program = parse(source, filename="bad.rasp")
    with pytest.raises(TypeCheckError) as caught:
        infer(program, VOCAB, MAX_LEN)
    assert str(caught.value) == message
    assert len(caught.value.problems) == message.count("\nbad.rasp:") + 1


def test_several_type_errors_are_reported_together():
    several = [p for p in TYPE_ERRORS if p.values[1].count("\nbad.rasp:") >= 2]
    assert len(several) >= 3


def test_error_without_origin_names_no_file():
    program = parse("return y\n")
    bare = type(program)(program.definitions, program.output)  # built by code: no origin
    with pytest.raises(TypeCheckError) as caught:
        infer(bare, VOCAB, MAX_LEN)
    assert str(caught.value) == "<string>:1:8: undefined name 'y'"


# ---- any text: a program, or one located error -------------------------------------------

EXAMPLE_TEXTS = [
    path.read_text() for path in sorted((Path(__file__).parent.parent / "examples").glob("*.rasp"))
]
_PIECES = list("()[]{},:=<>!~&|+-*/%.#'\"\\\n 0129abTN") + [
    "lambda ",
    "return ",
    "numerical ",
    "select(",
    "==",
    "**",
    "True",
    " if ",
]


@st.composite
def _mutated_examples(draw):
    """An example program with a few characters inserted, deleted or copied elsewhere."""
    text = draw(st.sampled_from(EXAMPLE_TEXTS))
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(text)))
        kind = draw(st.sampled_from(["insert", "delete", "copy"]))
        if kind == "insert":
            text = text[:at] + draw(st.sampled_from(_PIECES)) + text[at:]
        elif kind == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 5)) :]
        else:
            start = draw(st.integers(0, len(text)))
            text = text[:at] + text[start : start + 10] + text[at:]
    return text


@settings(max_examples=150, deadline=None)
@given(_mutated_examples())
def test_any_text_parses_or_fails_with_one_located_error(text):
    try:
        program = parse(text, filename="bad.rasp")
    except ParseError as error:
        problem = error.problem
        assert problem.filename == "bad.rasp"
        assert 1 <= problem.line <= max(1, len(text.splitlines())) and problem.column >= 1
        return
    try:
        infer(program, VOCAB + [1, 2], MAX_LEN)
    except TypeCheckError as error:
        assert all(p.filename == "bad.rasp" and p.line is not None for p in error.problems)


# ---- the command line -------------------------------------------------------------------


def _eval(tmp_path, monkeypatch, source: str, *tokens: str, vocab="a,b", max_len=MAX_LEN) -> int:
    (tmp_path / "bad.rasp").write_text(source)
    monkeypatch.chdir(tmp_path)
    return main(["eval", "bad.rasp", "--vocab", vocab, "--max-len", str(max_len), *tokens])


@pytest.mark.parametrize("source, message", SYNTAX_ERRORS + TYPE_ERRORS)
def test_eval_command_exits_2_with_the_message(tmp_path, monkeypatch, capsys, source, message):
    assert _eval(tmp_path, monkeypatch, source, "a", "b") == 2
    captured = capsys.readouterr()
    assert captured.err == f"error: {message}\n"
    assert captured.out == ""


def test_eval_command_prints_the_output(tmp_path, monkeypatch, capsys):
    source = "opp = selector_width(select(tokens, tokens, true)) - indices - 1\nreturn aggregate(select(indices, opp, ==), tokens)\n"
    assert _eval(tmp_path, monkeypatch, source, "a", "b", "b") == 0
    assert capsys.readouterr().out == "b b a\n"


def test_eval_command_prints_none_and_numbers(tmp_path, monkeypatch, capsys):
    source = (
        "prev = aggregate(select(indices, indices, lambda k, q: q == k + 1), tokens)\nreturn prev\n"
    )
    assert _eval(tmp_path, monkeypatch, source, "1", "2", vocab="1,2") == 0
    assert capsys.readouterr().out == "None 1\n"


def test_eval_command_warns_about_unused_definitions(tmp_path, monkeypatch, capsys):
    assert _eval(tmp_path, monkeypatch, "unused = indices\nreturn tokens\n", "a") == 0
    captured = capsys.readouterr()
    assert captured.out == "a\n"
    assert (
        captured.err
        == "warning: bad.rasp:1:1: unused definition 'unused'\n    unused = indices\n    ^\n"
    )


@pytest.mark.parametrize(
    "tokens, vocab, max_len, message",
    [
        (["a", "c"], "a,b", 4, "token 'c' at position 1 is not in the vocabulary (a, b)"),
        (["1", "x"], "1,2", 4, "token 'x' at position 1 is not in the vocabulary (1, 2)"),
        (["a", "a", "a"], "a,b", 2, "the input has 3 tokens, more than --max-len 2"),
        ([], "a,b", 2, "no input tokens given (write them after the options: a b c)"),
        (["a"], "a,,b", 2, "--vocab: expected comma-separated values like a,b,c, got 'a,,b'"),
        (["a"], "a,b", 0, "--max-len: expected a positive integer, got 0"),
    ],
)
def test_eval_command_rejects_bad_input_tokens(
    tmp_path, monkeypatch, capsys, tokens, vocab, max_len, message
):
    assert (
        _eval(tmp_path, monkeypatch, "return tokens\n", *tokens, vocab=vocab, max_len=max_len) == 2
    )
    assert capsys.readouterr().err == f"error: {message}\n"


def test_eval_command_rejects_a_missing_file(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["eval", "missing.rasp", "--vocab", "a", "--max-len", "2", "a"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot read missing.rasp: ") and "Traceback" not in err


def test_eval_command_has_help(capsys):
    assert main(["eval", "--help"]) == 0
    assert "--vocab" in capsys.readouterr().out
