"""Parse `.rasp` text into a `dsl.ast.Program`.

The grammar lives in `grammar.lark`; the transformer below is a list of short
bindings from grammar rules to AST nodes. Infix operators on SOps are sugar
with one canonical AST form (what `dsl.printer` prints back as infix):

    a OP b   (two SOps)      -> SequenceMap(lambda x, y: x OP y, a, b)
    a OP c   (c a literal)   -> Map(lambda x: x OP c, a)
    c OP a                   -> Map(lambda x: c OP x, a)
    -a                       -> Map(lambda x: -x, a)

Every error, whether lark's or one raised while building nodes, is translated
at one boundary (`parse`) into a `ParseError` naming file, line and column.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass

import lark
from lark import Lark, Token, Transformer, v_args
from lark.lark import PostLex

from dsl import ast, limits
from dsl.errors import ParseError, Problem, shorten, source_line
from dsl.limits import limit_text

# Names the language gives a meaning to: a definition may not take them.
PRIMITIVE_NAMES = ("tokens", "indices")
CALL_NAMES = ("aggregate", "full", "map", "select", "selector_width", "sequence_map")
RESERVED_NAMES = PRIMITIVE_NAMES + CALL_NAMES + ("true", "false")
# The grammar's keywords. lark's contextual lexer reads one as a name where the
# keyword cannot stand (`True = tokens`), so definitions and parameters check.
KEYWORDS = (
    "and",
    "categorical",
    "else",
    "False",
    "if",
    "lambda",
    "None",
    "not",
    "numerical",
    "or",
    "return",
    "True",
)

# The parameter names of the lambdas that infix sugar stands for.
UNARY_PARAMS = ("x",)
BINARY_PARAMS = ("x", "y")


class _NewlinesInsideTables(PostLex):
    """Drop line ends inside `{ }`, so a long table may span several lines."""

    always_accept = ("_NL",)

    def process(self, stream):
        depth = 0
        for token in stream:
            if token.type == "LBRACE":
                depth += 1
            elif token.type == "RBRACE":
                depth = max(0, depth - 1)
            elif token.type == "_NL" and depth:
                continue
            yield token


_PARSER = Lark.open(
    "grammar.lark",
    rel_to=__file__,
    parser="lalr",
    propagate_positions=True,
    maybe_placeholders=True,
    postlex=_NewlinesInsideTables(),
)


class _SyntaxProblem(Exception):
    """Raised inside the transformer; `parse` turns it into a ParseError."""

    def __init__(self, message: str, line: int, column: int):
        super().__init__(message)
        self.message, self.line, self.column = message, line, column


def _fail(message: str, where) -> _SyntaxProblem:
    """A problem located at a token or a rule's meta."""
    return _SyntaxProblem(message, where.line, where.column)


@dataclass(frozen=True)
class _Literal:
    """A literal in a sequence expression: an operand of infix sugar or an argument."""

    value: ast.Value
    where: object  # the token or meta it was read from


@dataclass(frozen=True)
class _ComparisonWord:
    """An operator written as the comparison argument of `select`."""

    token: Token


@dataclass(frozen=True)
class _Keyword:
    """A `name=value` argument."""

    name: Token
    value: object


def _span(where) -> ast.Span:
    return ast.Span(where.line, where.column, where.end_line, where.end_column)


def _describe(value) -> str:
    """How an argument is named in an error message."""
    if isinstance(value, _Literal):
        return f"the literal {value.value!r}"
    if isinstance(value, ast.Function):
        return "a function"
    if isinstance(value, _ComparisonWord):
        return f"the comparison {value.token.value!r}"
    if isinstance(value, ast.Selector):
        return "a selector"
    return "an SOp"


def _expect_node(value, context: str, where):
    """A sequence expression (SOp, selector or name), or a located error."""
    if isinstance(value, ast.Node):
        return value
    if isinstance(value, _Literal):
        raise _fail(
            f"{context} must be an SOp, got {_describe(value)} (write full({value.value!r}))",
            value.where,
        )
    raise _fail(f"{context} must be an SOp, got {_describe(value)}", where)


def _expect_literal(value, context: str, where) -> ast.Value:
    if isinstance(value, _Literal):
        return value.value
    raise _fail(f"{context} must be a literal value, got {_describe(value)}", where)


def _expect_function(value, context: str, where) -> ast.Function:
    if isinstance(value, ast.Function):
        return value
    raise _fail(
        f"{context} must be a function (a lambda or a table), got {_describe(value)}", where
    )


def _operation(op: str, left: ast.Expr, right: ast.Expr) -> ast.Expr:
    kind = ast.Compare if op in ast.COMPARE_OPERATORS else ast.BinOp
    return kind(op, left, right)


_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "t": "\t", "r": "\r", "0": "\0"}
_HEX_ESCAPE_LENGTHS = {"x": 2, "u": 4, "U": 8}
_ESCAPE_PATTERN = re.compile(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|.)")


def _decode_string(token: Token) -> str:
    """The value of a quoted string token, with Python's common escapes."""

    def replace(match: re.Match) -> str:
        escape = match.group(1)
        if escape in _ESCAPES:
            return _ESCAPES[escape]
        if escape[0] in _HEX_ESCAPE_LENGTHS and len(escape) > 1:
            code = int(escape[1:], 16)
            if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                raise _fail(f"invalid character code '\\{escape}' in string", token)
            return chr(code)
        raise _fail(f"unknown escape '\\{escape}' in string", token)

    value = _ESCAPE_PATTERN.sub(replace, token.value[1:-1])
    problem = limits.value_problem(value)
    if problem:
        raise _fail(f"the string literal is {problem}", token)
    return value


# A decimal integer of this many digits is past MAX_INT_BITS (10**1234 > 2**4096),
# so longer literals are refused before Python converts them.
_MAX_INT_DIGITS = int(limits.MAX_INT_BITS * 0.30103) + 2


def _number(token: Token) -> int | float:
    text = token.value
    if re.fullmatch(r"\d+", text):
        if len(text) > _MAX_INT_DIGITS:
            raise _fail(
                f"an integer literal of {len(text):,} digits is past {limit_text('MAX_INT_BITS')}",
                token,
            )
        value = int(text)
        problem = limits.value_problem(value)
        if problem:
            raise _fail(f"the integer literal is {problem}", token)
        return value
    value = float(text)
    if not math.isfinite(value):
        raise _fail(
            f"the number {shorten(text, 40)} is out of the range of a float (at most about 1.8e308)",
            token,
        )
    return value


@v_args(inline=True)
class _ProgramBuilder(Transformer):
    """Builds AST nodes from lark's parse tree, bottom up."""

    def __init__(self, text: str):
        super().__init__()
        self._text = text

    # ---- program ---------------------------------------------------------------

    def start(self, *items):
        *definitions, output = items
        return ast.Program(tuple(definitions), _expect_node(output, "the returned value", output))

    @v_args(meta=True, inline=True)
    def definition(self, meta, name: Token, value):
        if name.value in KEYWORDS:
            raise _fail(f"cannot define {name.value!r}: it is a keyword", name)
        if name.value in RESERVED_NAMES:
            raise _fail(f"cannot define {name.value!r}: it is a builtin name", name)
        node = _expect_node(value, f"the value of {name.value!r}", meta)
        return ast.Definition(name.value, node, span=_span(name))

    # ---- sequence expressions ----------------------------------------------------

    def name(self, token: Token):
        if token.value == "tokens":
            return ast.Tokens(span=_span(token))
        if token.value == "indices":
            return ast.Indices(span=_span(token))
        return ast.Name(token.value, span=_span(token))

    @v_args(meta=True, inline=True)
    def annotated(self, meta, encoding: Token, value):
        if isinstance(value, ast.Name):
            raise _fail(
                f"cannot annotate the name {value.id!r}: annotate its definition instead", encoding
            )
        if not isinstance(value, ast.SOP_TYPES):
            raise _fail(f"{encoding.value!r} annotates an SOp, not {_describe(value)}", encoding)
        return dataclasses.replace(value, encoding=ast.Encoding(encoding.value))

    @v_args(meta=True, inline=True)
    def infix(self, meta, left, op: Token, right):
        span = _span(meta)
        if isinstance(left, _Literal) and isinstance(right, _Literal):
            raise _fail(f"{op.value!r} needs an SOp on at least one side, got two literals", op)
        if isinstance(right, _Literal):
            fn = ast.Lambda(
                UNARY_PARAMS, _operation(op.value, ast.Var("x"), ast.Const(right.value))
            )
            return ast.Map(
                fn, _expect_node(left, f"the left operand of {op.value!r}", meta), span=span
            )
        if isinstance(left, _Literal):
            fn = ast.Lambda(UNARY_PARAMS, _operation(op.value, ast.Const(left.value), ast.Var("x")))
            return ast.Map(
                fn, _expect_node(right, f"the right operand of {op.value!r}", op), span=span
            )
        fn = ast.Lambda(BINARY_PARAMS, _operation(op.value, ast.Var("x"), ast.Var("y")))
        return ast.SequenceMap(fn, left, right, span=span)

    @v_args(meta=True, inline=True)
    def negate(self, meta, minus: Token, operand):
        if isinstance(operand, _Literal):
            if isinstance(operand.value, bool) or not isinstance(operand.value, (int, float)):
                raise _fail(f"'-' needs a number or an SOp, got {operand.value!r}", minus)
            return _Literal(-operand.value, minus)
        fn = ast.Lambda(UNARY_PARAMS, ast.UnaryOp("-", ast.Var("x")))
        return ast.Map(fn, operand, span=_span(meta))

    @v_args(meta=True, inline=True)
    def select_not(self, meta, operand):
        return ast.SelectNot(self._selector_operand(operand, "~", meta), span=_span(meta))

    @v_args(meta=True, inline=True)
    def select_and(self, meta, left, right):
        return ast.SelectAnd(
            self._selector_operand(left, "&", meta),
            self._selector_operand(right, "&", meta),
            span=_span(meta),
        )

    @v_args(meta=True, inline=True)
    def select_or(self, meta, left, right):
        return ast.SelectOr(
            self._selector_operand(left, "|", meta),
            self._selector_operand(right, "|", meta),
            span=_span(meta),
        )

    @staticmethod
    def _selector_operand(value, op: str, meta):
        if isinstance(value, _Literal):
            raise _fail(f"{op!r} combines selectors, got {_describe(value)}", value.where)
        return value

    # ---- calls of the primitives ---------------------------------------------------

    @v_args(meta=True, inline=True)
    def call(self, meta, name: Token, *arguments):
        arguments = [a for a in arguments if a is not None]  # `f()` leaves a placeholder
        build = _CALLS.get(name.value)
        if build is None:
            raise _fail(
                f"unknown function {name.value!r}; expected one of {', '.join(CALL_NAMES)}", name
            )
        keywords = {}
        positional = []
        for argument in arguments:
            if isinstance(argument, _Keyword):
                if argument.name.value in keywords:
                    raise _fail(f"repeated keyword argument {argument.name.value!r}", argument.name)
                keywords[argument.name.value] = argument
            elif keywords:
                raise _fail("a positional argument cannot follow a keyword argument", name)
            else:
                positional.append(argument)
        for argument in arguments:
            if isinstance(argument, _ComparisonWord) and name.value != "select":
                raise _fail(
                    f"a comparison like {argument.token.value!r} is only allowed in select",
                    argument.token,
                )
        return build(name, positional, keywords, _span(meta))

    def comparison_word(self, token: Token):
        return _ComparisonWord(token)

    def keyword_argument(self, name: Token, value):
        return _Keyword(name, value)

    # ---- functions ------------------------------------------------------------------

    def lambda_(self, parameters, body):
        return ast.Lambda(parameters, body)

    def parameters(self, *names: Token):
        seen = set()
        for name in names:
            if name.value in KEYWORDS:
                raise _fail(f"cannot use the keyword {name.value!r} as a parameter", name)
            if name.value in seen:
                raise _fail(f"duplicate parameter {name.value!r} in lambda", name)
            seen.add(name.value)
        return tuple(name.value for name in names)

    def table(self, *entries):
        seen = {}
        for key, value, where in (e for e in entries if e is not None):
            if key in seen:
                raise _fail(f"duplicate key {key!r} in table", where)
            seen[key] = value
        return ast.Table(tuple(seen.items()))

    def table_entry(self, key, value: _Literal):
        if isinstance(key, tuple):
            return tuple(k.value for k in key), value.value, key[0].where
        return key.value, value.value, key.where

    def tuple_key(self, *parts: _Literal):
        return parts

    def negative_number(self, minus: Token, number: Token):
        return _Literal(-_number(number), minus)

    # ---- lambda bodies --------------------------------------------------------------

    def variable(self, token: Token):
        return ast.Var(token.value)

    def constant(self, literal: _Literal):
        return ast.Const(literal.value)

    def binary_expr(self, left, op: Token, right):
        return ast.BinOp(op.value, left, right)

    def compare_expr(self, left, op: Token, right):
        return ast.Compare(op.value, left, right)

    def bool_op_or(self, left, right):
        return ast.BoolOp("or", left, right)

    def bool_op_and(self, left, right):
        return ast.BoolOp("and", left, right)

    def not_expr(self, operand):
        return ast.UnaryOp("not", operand)

    def negate_expr(self, minus: Token, operand):
        # A minus written directly before a number is part of the literal, so the
        # constant -1 reads back as itself; `-(1)` stays an operation.
        after_minus = self._text[minus.end_pos :].lstrip(" \t\f")
        is_number_literal = isinstance(operand, ast.Const) and after_minus[:1] in set("0123456789.")
        if is_number_literal and not isinstance(operand.value, bool):
            return ast.Const(-operand.value)
        return ast.UnaryOp("-", operand)

    def if_expr(self, then, cond, orelse):
        return ast.IfExp(cond, then, orelse)

    def call_expr(self, name: Token, *arguments):
        return ast.Call(name.value, tuple(a for a in arguments if a is not None))

    # ---- literals --------------------------------------------------------------------

    def number(self, token: Token):
        return _Literal(_number(token), token)

    def string(self, token: Token):
        return _Literal(_decode_string(token), token)

    @v_args(meta=True, inline=True)
    def true(self, meta):
        return _Literal(True, meta)

    @v_args(meta=True, inline=True)
    def false(self, meta):
        return _Literal(False, meta)

    @v_args(meta=True, inline=True)
    def none(self, meta):
        return _Literal(None, meta)


# ---- the primitives called by name ----------------------------------------------------

_SIGNATURES = {
    "map": "map(function, sop)",
    "sequence_map": "sequence_map(function, sop, sop)",
    "aggregate": "aggregate(selector, sop, default=value)",
    "selector_width": "selector_width(selector)",
    "full": "full(value)",
    "select": "select(keys, queries, comparison)",
}


def _check_arguments(name: Token, positional: list, keywords: dict, count: int, allowed=()):
    for keyword, argument in keywords.items():
        if keyword not in allowed:
            raise _fail(f"{name.value} has no keyword argument {keyword!r}", argument.name)
    if len(positional) != count:
        raise _fail(
            f"{_SIGNATURES[name.value]} takes {count} positional argument"
            f"{'s' if count != 1 else ''}, got {len(positional)}",
            name,
        )


def _argument_context(name: Token, index: int) -> str:
    return f"argument {index} of {name.value}"


def _build_map(name, positional, keywords, span):
    _check_arguments(name, positional, keywords, 2)
    fn, sop = positional
    return ast.Map(
        _expect_function(fn, _argument_context(name, 1), name),
        _expect_node(sop, _argument_context(name, 2), name),
        span=span,
    )


def _build_sequence_map(name, positional, keywords, span):
    _check_arguments(name, positional, keywords, 3)
    fn, left, right = positional
    return ast.SequenceMap(
        _expect_function(fn, _argument_context(name, 1), name),
        _expect_node(left, _argument_context(name, 2), name),
        _expect_node(right, _argument_context(name, 3), name),
        span=span,
    )


def _build_aggregate(name, positional, keywords, span):
    _check_arguments(name, positional, keywords, 2, allowed=("default",))
    selector, sop = positional
    default = None
    if "default" in keywords:
        default = _expect_literal(keywords["default"].value, "default", keywords["default"].name)
    return ast.Aggregate(
        _expect_node(selector, _argument_context(name, 1), name),
        _expect_node(sop, _argument_context(name, 2), name),
        default,
        span=span,
    )


def _build_selector_width(name, positional, keywords, span):
    _check_arguments(name, positional, keywords, 1)
    return ast.SelectorWidth(
        _expect_node(positional[0], _argument_context(name, 1), name), span=span
    )


def _build_full(name, positional, keywords, span):
    _check_arguments(name, positional, keywords, 1)
    return ast.Full(_expect_literal(positional[0], _argument_context(name, 1), name), span=span)


def _build_select(name, positional, keywords, span):
    _check_arguments(name, positional, keywords, 3)
    keys, queries, predicate = positional
    return ast.Select(
        _expect_node(keys, _argument_context(name, 1), name),
        _expect_node(queries, _argument_context(name, 2), name),
        _select_predicate(predicate, name),
        span=span,
    )


def _select_predicate(value, name: Token) -> ast.Function:
    if isinstance(value, _ComparisonWord):
        if value.token.value not in ast.COMPARISONS:
            raise _fail(f"unknown comparison {value.token.value!r}", value.token)
        return ast.Comparison(value.token.value)
    if isinstance(value, ast.Name) and value.id in ("true", "false"):
        return ast.Comparison(value.id)
    if isinstance(value, ast.Function):
        return value
    raise _fail(
        "argument 3 of select must be a comparison (== != < <= > >= true false) "
        f"or a function, got {_describe(value)}",
        name,
    )


_CALLS = {
    "map": _build_map,
    "sequence_map": _build_sequence_map,
    "aggregate": _build_aggregate,
    "selector_width": _build_selector_width,
    "full": _build_full,
    "select": _build_select,
}


# ---- the error boundary ------------------------------------------------------------------

# How terminals are named in "expected ..." messages.
_TERMINAL_NAMES = {
    "_NL": "end of line",
    "$END": "end of input",
    "NAME": "a name",
    "NUMBER": "a number",
    "STRING": "a string",
    "COMPARISON_WORD": "a comparison",
    "COMPARE_OP": "a comparison",
}
# Terminals that can start an expression (or an argument): listed together as "an expression".
_EXPRESSION_STARTS = {
    "NAME",
    "NUMBER",
    "STRING",
    "LPAR",
    "MINUS",
    "TILDE",
    "TRUE",
    "FALSE",
    "NONE",
    "NOT",
    "NUMERICAL",
    "CATEGORICAL",
    "LAMBDA",
    "LBRACE",
    "COMPARISON_WORD",
}
# Tokens that may continue what came before (an operator after an operand, `(` or
# `=` after a name): never the thing a reader is missing, unless nothing else fits.
_CONTINUATIONS = {
    "PLUS",
    "MINUS",
    "MUL_OP",
    "POW_OP",
    "COMPARE_OP",
    "AMPERSAND",
    "VBAR",
    "LPAR",
    "EQUAL",
    "IF",
    "AND",
    "OR",
}


def _expected(names) -> str:
    names = set(names)
    described = set()
    if "RETURN" in names and "NAME" in names:
        names -= {"NAME", "_NL"}
        described.add("a definition")
    if "NAME" in names and names & (_EXPRESSION_STARTS - {"NAME"}):
        names -= _EXPRESSION_STARTS
        described.add("an expression")
    if names - _CONTINUATIONS:
        names -= _CONTINUATIONS
    if "_NL" in names:
        names.discard("$END")  # the end of the last line is the end of input too
    described |= {_terminal_name(n) for n in names}
    return " or ".join(sorted(described))


def _terminal_name(name: str) -> str:
    if name in _TERMINAL_NAMES:
        return _TERMINAL_NAMES[name]
    pattern = _PARSER.get_terminal(name).pattern
    return repr(pattern.value) if isinstance(pattern, lark.lexer.PatternStr) else name


def _token_text(token: Token) -> str:
    if token.type in ("_NL", "$END"):
        return _TERMINAL_NAMES[token.type]
    if token.type == "STRING":
        return f"string {shorten(token.value, 60)}"
    return shorten(repr(token.value), 60)


def _end_of_text(text: str) -> tuple[int, int]:
    """Line and column just after the last non-blank line."""
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    for number in range(len(lines), 0, -1):
        if lines[number - 1].strip():
            return number, len(lines[number - 1]) + 1
    return 1, 1


def _lark_problem(error: lark.exceptions.LarkError, text: str) -> tuple[str, int, int]:
    if isinstance(error, lark.exceptions.UnexpectedCharacters):
        if error.char in "\"'":
            return "unterminated string", error.line, error.column
        if error.char == "\r":
            return "a carriage return not followed by a line end", error.line, error.column
        return f"unexpected character {error.char!r}", error.line, error.column
    if isinstance(error, lark.exceptions.UnexpectedToken):
        token = error.token
        accepted = error.accepts or error.expected
        after_operand = "NAME" not in accepted
        if token.type == "COMPARE_OP" and after_operand and "COMPARE_OP" not in accepted:
            return "comparisons cannot be chained; add parentheses", token.line, token.column
        expected = _expected(accepted)
        if token.type == "$END":
            line, column = _end_of_text(text)
            return f"unexpected end of input; expected {expected}", line, column
        return f"unexpected {_token_text(token)}; expected {expected}", token.line, token.column
    raise error


def parse(text: str, filename: str = "<string>") -> ast.Program:
    """Parse `.rasp` source into a Program; raise `ParseError` with its location on bad input.

    A leading byte-order mark is skipped. Sources past `dsl.limits.MAX_SOURCE_BYTES`
    and expressions nested past `dsl.limits.MAX_NESTING_DEPTH` are refused.
    """
    if not isinstance(text, str):
        raise TypeError(f"parse expects the source as a str, got {type(text).__name__}")
    text = text.removeprefix("\ufeff")
    if len(text) > limits.MAX_SOURCE_BYTES:
        raise ParseError(
            Problem(
                f"a source of {len(text):,} characters is past {limit_text('MAX_SOURCE_BYTES')}",
                filename,
            )
        )
    try:
        tree = _PARSER.parse(text)
        _check_tree_depth(tree)
        program = _ProgramBuilder(text).transform(tree)
        _check_nesting(program)
    except _SyntaxProblem as problem:
        raise ParseError(
            _problem(problem.message, problem.line, problem.column, text, filename)
        ) from None
    except lark.exceptions.VisitError as error:
        if not isinstance(error.orig_exc, _SyntaxProblem):
            raise error.orig_exc from None
        problem = error.orig_exc
        raise ParseError(
            _problem(problem.message, problem.line, problem.column, text, filename)
        ) from None
    except lark.exceptions.LarkError as error:
        message, line, column = _lark_problem(error, text)
        raise ParseError(_problem(message, line, column, text, filename)) from None
    return dataclasses.replace(program, origin=ast.Origin(filename, text))


def _problem(message: str, line: int, column: int, text: str, filename: str) -> Problem:
    return Problem(message, filename, line, column, source_line(text, line) or "")


# ---- nesting depth ------------------------------------------------------------------------

# lark's tree has a few more levels than the AST (a call around a lambda around its
# body); this guard only keeps lark's recursive transformer safe, _check_nesting is exact.
_TREE_DEPTH_GUARD = 2 * limits.MAX_NESTING_DEPTH


def _check_tree_depth(tree: lark.Tree) -> None:
    """Refuse a parse tree too deep to transform (iteratively: the tree may be very deep)."""
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > _TREE_DEPTH_GUARD:
            line, column = getattr(node.meta, "line", 1), getattr(node.meta, "column", 1)
            raise _SyntaxProblem(
                _too_deep("an expression", f"more than {_TREE_DEPTH_GUARD}"), line, column
            )
        stack.extend((child, depth + 1) for child in node.children if isinstance(child, lark.Tree))


def _too_deep(what: str, depth) -> str:
    return f"{what} is nested {depth} deep: past {limit_text('MAX_NESTING_DEPTH')}"


def _check_nesting(program: ast.Program) -> None:
    """Refuse a definition nested past MAX_NESTING_DEPTH, counting through names and lambdas."""
    by_name: dict[str, int] = {}
    located = [
        (d.node, f"the definition of {d.name!r}", d.span, d.name) for d in program.definitions
    ]
    located.append(
        (program.output, "the returned value", getattr(program.output, "span", None), None)
    )
    for node, what, span, name in located:
        depth = nesting_depth(node, by_name)
        if depth > limits.MAX_NESTING_DEPTH:
            raise _SyntaxProblem(
                _too_deep(what, depth), span.line if span else 1, span.column if span else 1
            )
        if name is not None:
            by_name.setdefault(name, depth)


def nesting_depth(root: ast.Node, named: dict[str, int] | None = None) -> int:
    """How deep `root` nests: nodes and lambda bodies, a name counting as deep as its definition."""
    named = named or {}
    depths: dict[int, int] = {}
    stack = [(root, False)]
    while stack:
        item, expanded = stack.pop()
        if id(item) in depths:
            continue
        if isinstance(item, ast.Name):
            depths[id(item)] = named.get(item.id, 1)
            continue
        parts = _parts(item)
        if expanded:
            depths[id(item)] = 1 + max((depths[id(part)] for part in parts), default=0)
        else:
            stack.append((item, True))
            stack.extend((part, False) for part in parts if id(part) not in depths)
    return depths[id(root)]


def _parts(item) -> tuple:
    """What `item` nests: a node's children and its lambda's body, an expression's operands."""
    parts = tuple(item.children)
    if isinstance(item, ast.Node):
        for fn in (getattr(item, name, None) for name in ("fn", "predicate")):
            if isinstance(fn, ast.Lambda):
                parts += (fn.body,)
    return parts
