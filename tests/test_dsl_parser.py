"""The `.rasp` parser and printer: exact ASTs, canonical text, and round trips."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import programs

from dsl import ast
from dsl.errors import DSLError
from dsl.parser import parse
from dsl.printer import literal, to_source

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# ---- shorthand for expected trees ----------------------------------------------------

x, y = ast.Var("x"), ast.Var("y")
tokens, indices = ast.Tokens(), ast.Indices()
NUM = ast.NUMERICAL


def N(name):
    return ast.Name(name)


def C(value):
    return ast.Const(value)


def lam(params, body):
    return ast.Lambda(tuple(params.split(",")) if params else (), body)


def infix(op, left, right):
    """What `left op right` parses to (literals given as Const)."""
    kind = ast.Compare if op in ast.COMPARE_OPERATORS else ast.BinOp
    if isinstance(right, ast.Const):
        return ast.Map(lam("x", kind(op, x, right)), left)
    if isinstance(left, ast.Const):
        return ast.Map(lam("x", kind(op, left, x)), right)
    return ast.SequenceMap(lam("x,y", kind(op, x, y)), left, right)


def program(*definitions, output):
    return ast.Program(tuple(ast.Definition(n, v) for n, v in definitions), output)


# ---- the examples ---------------------------------------------------------------------

EXPECTED_EXAMPLES = {
    "reverse.rasp": program(
        ("length", ast.SelectorWidth(ast.Select(tokens, tokens, ast.Comparison("true")))),
        ("opp", infix("-", infix("-", N("length"), indices), C(1))),
        ("flip", ast.Select(indices, N("opp"), ast.Comparison("=="))),
        ("reverse", ast.Aggregate(N("flip"), tokens)),
        output=N("reverse"),
    ),
    "frac_prevs.rasp": program(
        (
            "is_x",
            ast.Map(
                lam("t", ast.IfExp(ast.Compare("==", ast.Var("t"), C("x")), C(1), C(0))),
                tokens,
                encoding=NUM,
            ),
        ),
        ("prevs", ast.Select(indices, indices, ast.Comparison("<="))),
        output=ast.Aggregate(N("prevs"), N("is_x"), default=0, encoding=NUM),
    ),
    "sort_unique.rasp": program(
        ("smaller", ast.Select(tokens, tokens, ast.Comparison("<"))),
        ("target_pos", ast.SelectorWidth(N("smaller"))),
        ("sel_new", ast.Select(N("target_pos"), indices, ast.Comparison("=="))),
        output=ast.Aggregate(N("sel_new"), tokens),
    ),
    "hist.rasp": program(
        ("same_tok", ast.Select(tokens, tokens, ast.Comparison("=="))),
        output=ast.SelectorWidth(N("same_tok")),
    ),
    "length.rasp": program(
        ("all_true", ast.Select(tokens, tokens, ast.Comparison("true"))),
        output=ast.SelectorWidth(N("all_true")),
    ),
    "shift_by.rasp": program(
        (
            "previous",
            ast.Select(
                indices,
                indices,
                lam("k,q", ast.Compare("==", ast.Var("q"), ast.BinOp("+", ast.Var("k"), C(1)))),
            ),
        ),
        output=ast.Aggregate(N("previous"), tokens),
    ),
}


def test_every_example_has_an_expected_tree():
    assert sorted(p.name for p in EXAMPLES.glob("*.rasp")) == sorted(EXPECTED_EXAMPLES)


@pytest.mark.parametrize("name", sorted(EXPECTED_EXAMPLES))
def test_example_parses_to_the_expected_tree(name):
    path = EXAMPLES / name
    parsed = parse(path.read_text(), filename=str(path))
    assert parsed == EXPECTED_EXAMPLES[name]
    assert parsed.origin == ast.Origin(str(path), path.read_text())


@pytest.mark.parametrize("name", sorted(EXPECTED_EXAMPLES))
def test_example_round_trips_through_canonical_text(name):
    parsed = parse((EXAMPLES / name).read_text())
    text = to_source(parsed)
    assert parse(text) == parsed
    assert to_source(parse(text)) == text


def test_canonical_text_of_reverse():
    parsed = parse((EXAMPLES / "reverse.rasp").read_text())
    assert to_source(parsed) == (
        "length = selector_width(select(tokens, tokens, true))\n"
        "opp = length - indices - 1\n"
        "flip = select(indices, opp, ==)\n"
        "reverse = aggregate(flip, tokens)\n"
        "return reverse\n"
    )


# ---- hand-written programs: (source, expected output expression, canonical text) --------

a, b, c = N("a"), N("b"), N("c")
PRELUDE = "a = tokens\nb = indices\nc = tokens\n"
PRELUDE_DEFINITIONS = (("a", tokens), ("b", indices), ("c", tokens))

EXPRESSIONS = [
    # Python precedence and associativity of infix sugar.
    ("a + b * c", infix("+", a, infix("*", b, c)), "a + b * c"),
    ("(a + b) * c", infix("*", infix("+", a, b), c), "(a + b) * c"),
    ("a - b - c", infix("-", infix("-", a, b), c), "a - b - c"),
    ("a - (b - c)", infix("-", a, infix("-", b, c)), "a - (b - c)"),
    ("a ** b ** c", infix("**", a, infix("**", b, c)), "a ** b ** c"),
    ("(a ** b) ** c", infix("**", infix("**", a, b), c), "(a ** b) ** c"),
    ("a // 2 % 3", infix("%", infix("//", a, C(2)), C(3)), "a // 2 % 3"),
    ("1 - a", infix("-", C(1), a), "1 - a"),
    ("a == 'x'", infix("==", a, C("x")), 'a == "x"'),
    ("a != None", infix("!=", a, C(None)), "a != None"),
    ("(a < b) == True", infix("==", infix("<", a, b), C(True)), "(a < b) == True"),
    ("a + b < c", infix("<", infix("+", a, b), c), "a + b < c"),
    ("a * -2", infix("*", a, C(-2)), "a * -2"),
    ("a * -(2)", infix("*", a, C(-2)), "a * -2"),
    ("a ** -1.5", infix("**", a, C(-1.5)), "a ** -1.5"),
    # A minus before an SOp is a map; `**` binds tighter than it (as in Python).
    ("-a", ast.Map(lam("x", ast.UnaryOp("-", x)), a), "-a"),
    (
        "--a",
        ast.Map(lam("x", ast.UnaryOp("-", x)), ast.Map(lam("x", ast.UnaryOp("-", x)), a)),
        "--a",
    ),
    ("-2 ** a", ast.Map(lam("x", ast.UnaryOp("-", x)), infix("**", C(2), a)), "-2 ** a"),
    ("(-2) ** a", infix("**", C(-2), a), "(-2) ** a"),
    ("-a ** 2", ast.Map(lam("x", ast.UnaryOp("-", x)), infix("**", a, C(2))), "-a ** 2"),
    ("(-a) ** 2", infix("**", ast.Map(lam("x", ast.UnaryOp("-", x)), a), C(2)), "(-a) ** 2"),
    # Annotations apply to the node the whole expression builds.
    (
        "numerical a + 1",
        ast.Map(lam("x", ast.BinOp("+", x, C(1))), a, encoding=NUM),
        "numerical a + 1",
    ),
    (
        "(numerical tokens) + 1",
        infix("+", ast.Tokens(encoding=NUM), C(1)),
        "(numerical tokens) + 1",
    ),
    ("categorical tokens", tokens, "tokens"),
    # Selectors.
    (
        "aggregate(~select(a, b, ==) & select(a, a, >) | select(b, b, !=), c, default='z')",
        ast.Aggregate(
            ast.SelectOr(
                ast.SelectAnd(
                    ast.SelectNot(ast.Select(a, b, ast.Comparison("=="))),
                    ast.Select(a, a, ast.Comparison(">")),
                ),
                ast.Select(b, b, ast.Comparison("!=")),
            ),
            c,
            default="z",
        ),
        'aggregate(~select(a, b, ==) & select(a, a, >) | select(b, b, !=), c, default="z")',
    ),
    (
        "selector_width(select(a, b, >=) & (select(a, b, <) | select(a, b, false)))",
        ast.SelectorWidth(
            ast.SelectAnd(
                ast.Select(a, b, ast.Comparison(">=")),
                ast.SelectOr(
                    ast.Select(a, b, ast.Comparison("<")), ast.Select(a, b, ast.Comparison("false"))
                ),
            )
        ),
        "selector_width(select(a, b, >=) & (select(a, b, <) | select(a, b, false)))",
    ),
    # Function-call forms, tables, full and defaults.
    ("full(-3)", ast.Full(-3), "full(-3)"),
    ("numerical full(0.5)", ast.Full(0.5, encoding=NUM), "numerical full(0.5)"),
    (
        "map({'b': 2, 'a': 1}, a)",
        ast.Map(ast.Table((("a", 1), ("b", 2))), a),
        'map({"a": 1, "b": 2}, a)',
    ),
    (
        "sequence_map({(1, 'x'): True, (0, 'y'): None}, b, a)",
        ast.SequenceMap(ast.Table((((0, "y"), None), ((1, "x"), True))), b, a),
        'sequence_map({(0, "y"): None, (1, "x"): True}, b, a)',
    ),
    (
        "sequence_map(lambda p, q: p if q else -p, a, b)",
        ast.SequenceMap(
            lam("p,q", ast.IfExp(ast.Var("q"), ast.Var("p"), ast.UnaryOp("-", ast.Var("p")))), a, b
        ),
        "sequence_map(lambda p, q: p if q else -p, a, b)",
    ),
    # A lambda named like the sugar but not of its shape stays a call.
    (
        "map(lambda y: y + 1, a)",
        ast.Map(lam("y", ast.BinOp("+", y, C(1))), a),
        "map(lambda y: y + 1, a)",
    ),
    (
        "map(lambda x: x + x, a)",
        ast.Map(lam("x", ast.BinOp("+", x, x)), a),
        "map(lambda x: x + x, a)",
    ),
    (
        "map(lambda x: 1 + 2, a)",
        ast.Map(lam("x", ast.BinOp("+", C(1), C(2))), a),
        "map(lambda x: 1 + 2, a)",
    ),
    (
        "sequence_map(lambda x, y: y - x, a, b)",
        ast.SequenceMap(lam("x,y", ast.BinOp("-", y, x)), a, b),
        "sequence_map(lambda x, y: y - x, a, b)",
    ),
    (
        "aggregate(select(a, b, ==), numerical a + b, default=0)",
        ast.Aggregate(
            ast.Select(a, b, ast.Comparison("==")),
            ast.SequenceMap(lam("x,y", ast.BinOp("+", x, y)), a, b, encoding=NUM),
            default=0,
        ),
        "aggregate(select(a, b, ==), numerical a + b, default=0)",
    ),
]


@pytest.mark.parametrize(
    "source, expected, canonical", EXPRESSIONS, ids=[e[0] for e in EXPRESSIONS]
)
def test_expression_parses_to_its_tree_and_prints_canonically(source, expected, canonical):
    parsed = parse(PRELUDE + f"return {source}\n")
    assert parsed == ast.Program(
        tuple(ast.Definition(n, v) for n, v in PRELUDE_DEFINITIONS), expected
    )
    assert to_source(parsed) == PRELUDE + f"return {canonical}\n"
    assert parse(to_source(parsed)) == parsed


# ---- lambda bodies ------------------------------------------------------------------------

BODIES = [
    ("x + 1 * 2", ast.BinOp("+", x, ast.BinOp("*", C(1), C(2))), "x + 1 * 2"),
    ("(x + 1) * 2", ast.BinOp("*", ast.BinOp("+", x, C(1)), C(2)), "(x + 1) * 2"),
    # As in Python, `-2 ** 2` is -(2 ** 2); a minus right before a number is a negative literal.
    ("-2 ** 2", ast.UnaryOp("-", ast.BinOp("**", C(2), C(2))), "-2 ** 2"),
    ("(-2) ** 2", ast.BinOp("**", C(-2), C(2)), "(-2) ** 2"),
    ("- 2", C(-2), "-2"),
    ("-(2)", ast.UnaryOp("-", C(2)), "-(2)"),
    ("-(-2)", ast.UnaryOp("-", C(-2)), "-(-2)"),
    ("--x", ast.UnaryOp("-", ast.UnaryOp("-", x)), "--x"),
    ("x - -1", ast.BinOp("-", x, C(-1)), "x - -1"),
    ("x ** -1", ast.BinOp("**", x, C(-1)), "x ** -1"),
    ("-x ** 2", ast.UnaryOp("-", ast.BinOp("**", x, C(2))), "-x ** 2"),
    (
        "x / 2 // 3 % 4",
        ast.BinOp("%", ast.BinOp("//", ast.BinOp("/", x, C(2)), C(3)), C(4)),
        "x / 2 // 3 % 4",
    ),
    ("x - (1 - 2)", ast.BinOp("-", x, ast.BinOp("-", C(1), C(2))), "x - (1 - 2)"),
    (
        "(x < 1) == (x > 2)",
        ast.Compare("==", ast.Compare("<", x, C(1)), ast.Compare(">", x, C(2))),
        "(x < 1) == (x > 2)",
    ),
    (
        "not x or x and not x == 1",
        ast.BoolOp(
            "or",
            ast.UnaryOp("not", x),
            ast.BoolOp("and", x, ast.UnaryOp("not", ast.Compare("==", x, C(1)))),
        ),
        "not x or x and not x == 1",
    ),
    ("(x or x) and x", ast.BoolOp("and", ast.BoolOp("or", x, x), x), "(x or x) and x"),
    ("not (x and x)", ast.UnaryOp("not", ast.BoolOp("and", x, x)), "not (x and x)"),
    ("-(not x)", ast.UnaryOp("-", ast.UnaryOp("not", x)), "-(not x)"),
    (
        "1 if x else 2 if x > 1 else 3",
        ast.IfExp(x, C(1), ast.IfExp(ast.Compare(">", x, C(1)), C(2), C(3))),
        "1 if x else 2 if x > 1 else 3",
    ),
    (
        "(1 if x else 2) if x else 3",
        ast.IfExp(x, ast.IfExp(x, C(1), C(2)), C(3)),
        "(1 if x else 2) if x else 3",
    ),
    (
        "min(x, abs(x - 3), max(1, 2.5))",
        ast.Call(
            "min", (x, ast.Call("abs", (ast.BinOp("-", x, C(3)),)), ast.Call("max", (C(1), C(2.5))))
        ),
        "min(x, abs(x - 3), max(1, 2.5))",
    ),
    ("'a\\n\\t\\\\\\'\"'", C("a\n\t\\'\""), '"a\\n\\t\\\\\'\\""'),
    ("'\\x00\\u00e9\\U0001F600'", C("\x00\u00e9\U0001f600"), '"\\x00é😀"'),
    ("1e3 + .5 + 2. + 1E-7", None, "1000.0 + 0.5 + 2.0 + 1e-07"),
    (
        "True == (False != None)",
        ast.Compare("==", C(True), ast.Compare("!=", C(False), C(None))),
        "True == (False != None)",
    ),
]


@pytest.mark.parametrize("body, expected, canonical", BODIES, ids=[b[0] for b in BODIES])
def test_lambda_body_parses_with_python_precedence(body, expected, canonical):
    # Parameters (x, z) never match the shape of infix sugar, so the lambda prints as written.
    parsed = parse(f"return sequence_map(lambda x, z: {body}, tokens, tokens)\n")
    fn = parsed.output.fn
    if expected is not None:
        assert fn.body == expected
    assert to_source(parsed) == f"return sequence_map(lambda x, z: {canonical}, tokens, tokens)\n"
    assert parse(to_source(parsed)) == parsed


# ---- layout, comments and positions --------------------------------------------------------


def test_comments_blank_lines_and_multiline_tables():
    text = (
        "# a comment before anything\n"
        "\n"
        "cls = map({   # tables may span lines\n"
        '    "a": 0,\n'
        "\n"
        '    "b": 1,  # a trailing comma is fine\n'
        "}, tokens)\n"
        "   \n"
        "return cls   # the end"
    )
    assert parse(text) == program(
        ("cls", ast.Map(ast.Table((("a", 0), ("b", 1))), tokens)), output=N("cls")
    )


def test_spans_record_line_and_column_of_each_node():
    parsed = parse("first = tokens\n  second = map(lambda x: x, first) + 1\nreturn second\n")
    first, second = parsed.definitions
    assert first.span == ast.Span(1, 1, 1, 6)
    assert first.node.span == ast.Span(1, 9, 1, 15)
    assert second.span.line == 2 and second.span.column == 3
    assert (second.node.span.line, second.node.span.column) == (2, 12)  # the whole infix
    inner = second.node.arg
    assert (inner.span.line, inner.span.column) == (2, 12)
    assert inner.arg.span == ast.Span(2, 29, 2, 34)
    assert (parsed.output.span.line, parsed.output.span.column) == (3, 8)


def test_spans_do_not_take_part_in_equality():
    assert parse("return tokens") == parse("\n\n   return    tokens  ")
    assert parse("return tokens") != parse("return indices")


def test_origin_records_filename_and_text():
    parsed = parse("return tokens\n", filename="t.rasp")
    assert parsed.origin == ast.Origin("t.rasp", "return tokens\n")


# ---- literals --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, text",
    [
        (0, "0"),
        (-7, "-7"),
        (10**30, str(10**30)),
        (1.5, "1.5"),
        (-0.25, "-0.25"),
        (1e-07, "1e-07"),
        (1e300, "1e+300"),
        (True, "True"),
        (None, "None"),
        ("x", '"x"'),
        ('say "hi"\\', '"say \\"hi\\"\\\\"'),
    ],
)
def test_literal_text(value, text):
    assert literal(value) == text
    assert parse(f"return full({text})").output.value == value


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_non_finite_numbers_have_no_literal(value):
    # 1e999 would read back as infinity, which no check can prove anything about.
    with pytest.raises(DSLError, match="no literal"):
        literal(value)


# ---- round trips on random programs -----------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(programs(vocab=("a", "b", 1, 2), max_seq_len=4))
def test_random_well_typed_programs_round_trip(generated):
    text = to_source(generated)
    assert parse(text) == generated
    assert to_source(parse(text)) == text


# Any tree the AST allows, well-typed or not: the parser does not check types, so every
# one must survive printing and parsing. Literals stress the lexer (signs, exponents,
# escapes, unicode).
_IDENTIFIERS = st.sampled_from(["x", "y", "k", "q", "val", "_t2", "tokens_", "Map"])
_FLOATS = st.floats(allow_nan=False, allow_infinity=False)
_STRINGS = st.text(max_size=6)
_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-(10**20), 10**20), _FLOATS, _STRINGS)
_CONSTS = _VALUES.map(ast.Const)


def _expressions():
    return st.recursive(
        st.one_of(_CONSTS, _IDENTIFIERS.map(ast.Var)),
        lambda inner: st.one_of(
            st.builds(ast.BinOp, st.sampled_from(ast.BINARY_OPERATORS), inner, inner),
            st.builds(ast.Compare, st.sampled_from(ast.COMPARE_OPERATORS), inner, inner),
            st.builds(ast.BoolOp, st.sampled_from(ast.BOOL_OPERATORS), inner, inner),
            st.builds(ast.UnaryOp, st.sampled_from(ast.UNARY_OPERATORS), inner),
            st.builds(ast.IfExp, inner, inner, inner),
            st.builds(
                ast.Call,
                st.sampled_from(["min", "max", "abs", "frobnicate"]),
                st.lists(inner, min_size=1, max_size=3).map(tuple),
            ),
        ),
        max_leaves=12,
    )


_EXPRESSIONS = _expressions()


def _lambdas(arity):
    return st.builds(
        ast.Lambda,
        st.lists(_IDENTIFIERS, min_size=arity, max_size=arity, unique=True).map(tuple),
        _EXPRESSIONS,
    )


def _tables(arity):
    scalar = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), _STRINGS, _FLOATS)
    key = scalar if arity == 1 else st.tuples(scalar, scalar)
    entries = st.dictionaries(key, _VALUES, max_size=4).map(lambda d: tuple(d.items()))
    return entries.map(ast.Table)


def _unary_sugar(inner):
    """Maps of exactly the shapes infix sugar builds, so the printer's infix paths are drawn."""
    ops = st.sampled_from(ast.BINARY_OPERATORS + ast.COMPARE_OPERATORS)

    def build(op, const, node, const_on_left):
        kind = ast.Compare if op in ast.COMPARE_OPERATORS else ast.BinOp
        body = kind(op, const, x) if const_on_left else kind(op, x, const)
        return ast.Map(ast.Lambda(("x",), body), node)

    return st.builds(build, ops, _CONSTS, inner, st.booleans())


def _binary_sugar(inner):
    def build(op, left, right):
        kind = ast.Compare if op in ast.COMPARE_OPERATORS else ast.BinOp
        return ast.SequenceMap(ast.Lambda(("x", "y"), kind(op, x, y)), left, right)

    return st.builds(
        build, st.sampled_from(ast.BINARY_OPERATORS + ast.COMPARE_OPERATORS), inner, inner
    )


def _with_encoding(nodes):
    return st.builds(
        lambda node, encoding: (
            dataclasses.replace(node, encoding=encoding) if hasattr(node, "encoding") else node
        ),
        nodes,
        st.sampled_from([ast.CATEGORICAL, ast.NUMERICAL]),
    )


def _nodes():
    leaves = st.one_of(
        st.builds(ast.Tokens, st.sampled_from([ast.CATEGORICAL, ast.NUMERICAL])),
        st.builds(ast.Indices, st.sampled_from([ast.CATEGORICAL, ast.NUMERICAL])),
        st.builds(ast.Full, _VALUES, st.sampled_from([ast.CATEGORICAL, ast.NUMERICAL])),
        st.sampled_from(["a", "b"]).map(ast.Name),
    )
    predicates = st.one_of(
        st.sampled_from(ast.COMPARISONS).map(ast.Comparison), _lambdas(2), _tables(2)
    )
    return st.recursive(
        leaves,
        lambda inner: _with_encoding(
            st.one_of(
                st.builds(ast.Map, st.one_of(_lambdas(1), _tables(1)), inner),
                st.builds(ast.SequenceMap, st.one_of(_lambdas(2), _tables(2)), inner, inner),
                _unary_sugar(inner),
                _binary_sugar(inner),
                st.builds(ast.Map, st.just(ast.Lambda(("x",), ast.UnaryOp("-", x))), inner),
                st.builds(ast.Aggregate, inner, inner, _VALUES),
                st.builds(ast.SelectorWidth, inner),
                st.builds(ast.Select, inner, inner, predicates),
                st.builds(ast.SelectAnd, inner, inner),
                st.builds(ast.SelectOr, inner, inner),
                st.builds(ast.SelectNot, inner),
            )
        ),
        max_leaves=8,
    )


_NODES = _nodes()  # built once: hypothesis validates each new strategy object again


@st.composite
def _any_programs(draw):
    names = draw(st.lists(st.sampled_from(["a", "b", "c1"]), max_size=3))
    definitions = tuple(ast.Definition(name, draw(_NODES)) for name in names)
    return ast.Program(definitions, draw(_NODES))


@settings(max_examples=150, deadline=None)
@given(_any_programs())
def test_any_tree_round_trips(tree):
    text = to_source(tree)
    assert parse(text) == tree
    assert to_source(parse(text)) == text
