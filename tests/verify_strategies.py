"""Hypothesis strategies for pairs of programs: equal by a rewrite, or one mutation apart.

    from verify_strategies import equal_pairs, mutated_pairs

`equal_pairs` applies one semantics-preserving rewrite to a random program of
`strategies.programs()`: inlining a definition, a lambda as a table (or a
table as a chain of `if`s), a select comparison as a lambda with the
comparison flipped and its operands swapped, a flipped comparison inside a
lambda, de Morgan on selectors, an arithmetic identity (commuted `+`/`*`,
`(e + 1) - 1`, `-(-e)`) or an identity map. `mutated_pairs` changes one thing:
a comparison, a constant, a table entry, an operator, an aggregate default,
the keys and queries of a select. A mutation may leave the function unchanged;
tests compare against enumeration, so they do not assume it does not.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Iterator

from hypothesis import strategies as st
from strategies import programs

from dsl import ast
from dsl.domain import enumerate_inputs
from dsl.functions import make_callable
from dsl.interpreter import evaluate_arrays

FLIPPED = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}

# A rewrite or mutation site: replaces one node (SOp/selector level) or one
# lambda-body expression; yields zero or more replacements.
NodeRewrite = Callable[[ast.Node, "_Context"], Iterator[ast.Node]]


@dataclasses.dataclass(frozen=True)
class _Context:
    values: dict  # definition name -> every value it takes over the domain (None included)
    vocab: tuple
    max_seq_len: int

    def values_of(self, node: ast.Node) -> set | None:
        if isinstance(node, ast.Name):
            return self.values.get(node.id)
        if isinstance(node, ast.Tokens):
            return set(self.vocab)
        if isinstance(node, ast.Indices):
            return set(range(self.max_seq_len))
        return None


def value_sets(program: ast.Program, vocab, max_seq_len: int) -> dict:
    """Every value each definition takes on some input of the domain."""
    inputs = [s for batch in enumerate_inputs(vocab, max_seq_len) for s in batch]
    evaluation = evaluate_arrays(program, inputs)
    found = {}
    for name, array in evaluation.definitions.items():
        if hasattr(array, "codes"):  # SOps only
            found[name] = {array.table[c] for c in array.codes[evaluation.mask].tolist()}
    return found


# ---- generic traversal -------------------------------------------------------


def _child_fields(node) -> list[str]:
    return [
        f.name
        for f in dataclasses.fields(node)
        if isinstance(getattr(node, f.name), (ast.Node, ast.Expr, ast.Function))
    ]


def _sites(node) -> Iterator[tuple[object, Callable[[object], object]]]:
    """Every sub-node (SOp, selector, function, expression) with a way to rebuild `node` around a replacement."""
    yield node, lambda replacement: replacement
    for name in _child_fields(node):
        child = getattr(node, name)
        for sub, rebuild in _sites(child):
            yield (
                sub,
                (
                    lambda replacement, name=name, rebuild=rebuild: dataclasses.replace(
                        node, **{name: rebuild(replacement)}
                    )
                ),
            )
    if isinstance(node, ast.Call):
        for index, argument in enumerate(node.args):
            for sub, rebuild in _sites(argument):
                yield (
                    sub,
                    (
                        lambda replacement, index=index, rebuild=rebuild: dataclasses.replace(
                            node,
                            args=node.args[:index]
                            + (rebuild(replacement),)
                            + node.args[index + 1 :],
                        )
                    ),
                )


def _variants(program: ast.Program, rewrite: Callable, context: _Context) -> list[ast.Program]:
    """Programs with one site of `program` replaced by one of rewrite's replacements."""
    found = []
    for index, definition in enumerate(program.definitions):
        for sub, rebuild in _sites(definition.node):
            for replacement in rewrite(sub, context, program):
                new = dataclasses.replace(definition, node=rebuild(replacement))
                definitions = (
                    program.definitions[:index] + (new,) + program.definitions[index + 1 :]
                )
                found.append(ast.Program(definitions, program.output))
    return found


# ---- semantics-preserving rewrites ---------------------------------------------


def _inline(node, context, program):
    if isinstance(node, ast.Name):
        definition = program.lookup().get(node.id)
        if definition is not None:
            yield definition


def _lambda_as_table(node, context, program):
    if not isinstance(node, (ast.Map, ast.SequenceMap)) or not isinstance(node.fn, ast.Lambda):
        return
    arguments = [node.arg] if isinstance(node, ast.Map) else [node.left, node.right]
    domains = [context.values_of(a) for a in arguments]
    if any(d is None for d in domains):
        return
    domains = [sorted((v for v in d if v is not None), key=repr) for d in domains]
    if any(len(set(d)) != len(d) for d in domains):  # 1 and True would collide as keys
        return
    function = make_callable(node.fn)
    entries = []
    for combo in itertools.product(*domains):
        try:
            entries.append((combo if len(combo) > 1 else combo[0], function(*combo)))
        except Exception:  # noqa: BLE001, S112 - no entry: the table raises there too
            continue
    yield dataclasses.replace(node, fn=ast.Table(tuple(entries)))


def _table_as_lambda(node, context, program):
    if not isinstance(node, (ast.Map, ast.SequenceMap)) or not isinstance(node.fn, ast.Table):
        return
    arguments = [node.arg] if isinstance(node, ast.Map) else [node.left, node.right]
    domains = [context.values_of(a) for a in arguments]
    entries = node.fn.entries
    if not entries or any(d is None for d in domains):
        return
    keys = {k if isinstance(k, tuple) else (k,) for k, _ in entries}
    if not all(
        combo in keys
        for combo in itertools.product(*[[v for v in d if v is not None] for d in domains])
    ):
        return  # a missing key raises; an if-chain would not
    params = ("x",) if len(arguments) == 1 else ("x", "y")
    body: ast.Expr = ast.Const(entries[-1][1])
    for key, value in reversed(entries[:-1]):
        parts = key if isinstance(key, tuple) else (key,)
        tests = [ast.Compare("==", ast.Var(p), ast.Const(k)) for p, k in zip(params, parts)]
        condition = tests[0] if len(tests) == 1 else ast.BoolOp("and", tests[0], tests[1])
        body = ast.IfExp(condition, ast.Const(value), body)
    yield dataclasses.replace(node, fn=ast.Lambda(params, body))


def _comparison_as_flipped_lambda(node, context, program):
    if not isinstance(node, ast.Select) or not isinstance(node.predicate, ast.Comparison):
        return
    op = node.predicate.op
    keys, queries = context.values_of(node.keys), context.values_of(node.queries)
    # tracr's comparison raises on None where a lambda's == would not.
    if op in FLIPPED and keys is not None and queries is not None and None not in keys | queries:
        body = ast.Compare(FLIPPED[op], ast.Var("q"), ast.Var("k"))
        yield dataclasses.replace(node, predicate=ast.Lambda(("k", "q"), body))


def _flip_compare(node, context, program):
    if isinstance(node, ast.Compare):
        yield ast.Compare(FLIPPED[node.op], node.right, node.left)


def _de_morgan(node, context, program):
    if isinstance(node, ast.SelectAnd):
        yield ast.SelectNot(ast.SelectOr(ast.SelectNot(node.left), ast.SelectNot(node.right)))
    elif isinstance(node, ast.SelectOr):
        yield ast.SelectNot(ast.SelectAnd(ast.SelectNot(node.left), ast.SelectNot(node.right)))
    elif isinstance(node, ast.SelectNot) and isinstance(node.inner, ast.SelectNot):
        yield node.inner.inner
    elif isinstance(node, ast.Select):
        yield ast.SelectNot(ast.SelectNot(node))


def _arithmetic_identity(node, context, program):
    if isinstance(node, ast.BinOp) and node.op in ("+", "*"):
        yield ast.BinOp(node.op, node.right, node.left)
    if isinstance(node, (ast.Map, ast.SequenceMap)) and isinstance(node.fn, ast.Lambda):
        arguments = [node.arg] if isinstance(node, ast.Map) else [node.left, node.right]
        domains = [context.values_of(a) for a in arguments]
        if any(d is None for d in domains):
            return
        function = make_callable(node.fn)
        results = set()
        for combo in itertools.product(*[[v for v in d if v is not None] for d in domains]):
            try:
                results.add(function(*combo))
            except Exception:  # noqa: BLE001
                return
        # Integers only: with floats, (e + 1) - 1 may round.
        if results and all(isinstance(r, (int, bool)) for r in results):
            body = node.fn.body
            for new_body in (
                ast.BinOp("-", ast.BinOp("+", body, ast.Const(1)), ast.Const(1)),
                ast.UnaryOp("-", ast.UnaryOp("-", body)),
            ):
                yield dataclasses.replace(node, fn=ast.Lambda(node.fn.params, new_body))


def _identity_map(node, context, program):
    if isinstance(node, ast.Name) and node.id in context.values:
        yield ast.Map(ast.Lambda(("x",), ast.Var("x")), node)


REWRITES = (
    _inline,
    _lambda_as_table,
    _table_as_lambda,
    _comparison_as_flipped_lambda,
    _flip_compare,
    _de_morgan,
    _arithmetic_identity,
    _identity_map,
)


# ---- single mutations --------------------------------------------------------------


def _change_comparison(node, context, program):
    if isinstance(node, ast.Select) and isinstance(node.predicate, ast.Comparison):
        for op in ast.COMPARISONS:
            if op != node.predicate.op:
                yield dataclasses.replace(node, predicate=ast.Comparison(op))


def _swap_select(node, context, program):
    if isinstance(node, ast.Select):
        yield dataclasses.replace(node, keys=node.queries, queries=node.keys)


def _change_constant(node, context, program):
    if isinstance(node, ast.Const):
        value = node.value
        if isinstance(value, bool):
            yield ast.Const(not value)
        elif isinstance(value, int):
            yield ast.Const(value + 1)
        elif isinstance(value, str):
            yield ast.Const(value + "b" if value != "b" else "a")


def _change_table_entry(node, context, program):
    if isinstance(node, ast.Table) and node.entries:
        for index, (key, value) in enumerate(node.entries):
            replacement = 1 if value != 1 else 0
            entries = node.entries[:index] + ((key, replacement),) + node.entries[index + 1 :]
            yield ast.Table(entries)


def _change_operator(node, context, program):
    if isinstance(node, ast.BinOp) and node.op in ("+", "-"):
        yield dataclasses.replace(node, op="-" if node.op == "+" else "+")
    if isinstance(node, ast.Compare):
        yield dataclasses.replace(
            node, op={"<": "<=", "<=": "<", "==": "!=", "!=": "=="}.get(node.op, "==")
        )


def _change_default(node, context, program):
    if isinstance(node, ast.Aggregate):
        for default in (None, 0, 1):
            if default != node.default or type(default) is not type(node.default):
                if node.encoding == ast.NUMERICAL and default is None:
                    continue
                yield dataclasses.replace(node, default=default)


MUTATIONS = (
    _change_comparison,
    _swap_select,
    _change_constant,
    _change_table_entry,
    _change_operator,
    _change_default,
)


def _paired(draw, vocab, max_seq_len, transformations) -> tuple[ast.Program, ast.Program, str]:
    program = draw(programs(vocab=vocab, max_seq_len=max_seq_len))
    context = _Context(value_sets(program, vocab, max_seq_len), tuple(vocab), max_seq_len)
    # The kind first, then the site: otherwise kinds with many sites (inlining) crowd out the rest.
    by_kind = {}
    for transformation in transformations:
        variants = [v for v in _variants(program, transformation, context) if v != program]
        if variants:
            by_kind[transformation.__name__.strip("_")] = variants
    if not by_kind:
        return program, program, "none"
    name = draw(st.sampled_from(sorted(by_kind)))
    return program, draw(st.sampled_from(by_kind[name])), name


@st.composite
def equal_pairs(draw, vocab=("a", "b", "c"), max_seq_len: int = 3):
    """(program, an equal rewrite of it, the rewrite's name)."""
    return _paired(draw, vocab, max_seq_len, REWRITES)


@st.composite
def mutated_pairs(draw, vocab=("a", "b", "c"), max_seq_len: int = 3):
    """(program, the program with one mutation, the mutation's name)."""
    return _paired(draw, vocab, max_seq_len, MUTATIONS)


def outputs_same(x, y) -> bool:
    """Outputs equal position by position (numbers within float rounding); None is undefined."""
    if x is None or y is None:
        return x is None and y is None
    if len(x) != len(y):
        return False
    for a, b in zip(x, y):
        numbers = all(isinstance(v, (int, float, bool)) for v in (a, b))
        if not (abs(a - b) <= 1e-9 if numbers else a == b):
            return False
    return True
