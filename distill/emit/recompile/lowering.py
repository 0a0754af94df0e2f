"""Model -> program -> model: lowering a distilled program to what tracr compiles.

A distilled program follows its model, which tracr's compiler does not always
accept as written. `lower_for_tracr` rewrites it into a program computing the
same values on the domain that tracr compiles:

- A categorical aggregate that selects nothing gives the value the model shows
  there (`default=1`, or a label that later tables map). tracr compiles only
  default None, where the network writes nothing: exactly what the model the
  program was read from did. So such defaults go, with the table keys on them.
- A causal model's program ands the causal mask into every select. tracr
  compiles no composite selector, but a causal compile masks every head: the
  mask goes. A non-causal compile of a composite selector is refused.
- tracr compiles a sequence_map only on categorical inputs to a categorical
  output (or a linear one on numbers), and a select only on categorical SOps.
  A numerical operand there gets a categorical twin (`categorical map(lambda
  x: x, v)`, tracr's discretising MLP); a numerical non-linear sequence_map is
  computed categorically and turned back into a number (`numerical map`).
- Every table gets an entry for every argument the value sets allow: tracr
  builds each MLP from the function on all of them. Entries added for inputs
  that never occur take the table's first output.
- tracr's categorical -> numerical MLP clips negative values (its one hidden
  unit is the output, behind a ReLU): such a map with negative values becomes
  its positive part minus its negative part, a linear sequence_map.

`compile_program` (in `tracr_compile`) then compiles with the value sets of the program itself.
tracr's basis inference takes a numerical mean of 0/1 values to be some v /
length, missing 2/3, 3/4, ...; a discretising MLP built on that set puts its
thresholds in the wrong places. Here every numerical aggregate takes every
mean it can take.
"""

from __future__ import annotations

import dataclasses
import itertools

from distill.emit.recompile.value_sets import ValueSets, tabulated, value_sets
from distill.errors import BadInputError
from dsl import ast

IDENTITY = ast.Lambda(("x",), ast.Var("x"))
DIFFERENCE = ast.Lambda(("x", "y"), ast.BinOp("-", ast.Var("x"), ast.Var("y")))


def lower_for_tracr(
    program: ast.Program, *, vocab, max_seq_len: int, causal: bool = False
) -> ast.Program:
    """`program` rewritten into what tracr compiles, computing the same on the domain."""
    program = _drop_categorical_defaults(program)
    program = _drop_causal_mask(program) if causal else program
    _refuse_composite_selectors(program)
    program = _with_categorical_operands(_named_sops(program))
    program = _complete_tables(program, vocab, max_seq_len)
    return _split_signed_numbers(program, vocab, max_seq_len)


def _drop_categorical_defaults(program: ast.Program) -> ast.Program:
    dropped: set = set()

    def drop_default(node):
        if (
            isinstance(node, ast.Aggregate)
            and node.encoding == ast.CATEGORICAL
            and node.default is not None
        ):
            dropped.add(_hashable(node.default))
            return dataclasses.replace(node, default=None)
        return node

    def drop_keys(node):
        if isinstance(node, (ast.Map, ast.SequenceMap)) and isinstance(node.fn, ast.Table):

            def mentions(key):
                parts = key if isinstance(node, ast.SequenceMap) else (key,)
                return any(_hashable(part) in dropped for part in parts)

            entries = tuple((k, v) for k, v in node.fn.entries if not mentions(k))
            return dataclasses.replace(node, fn=ast.Table(entries))
        return node

    lowered = ast.rewrite_program(program, drop_default)
    # Table keys are dropped once every dropped default is known.
    return ast.rewrite_program(lowered, drop_keys) if dropped else program


def _hashable(value):
    return (type(value).__name__, value)


def _drop_causal_mask(program: ast.Program) -> ast.Program:
    """Each `mask & s` (or `s & mask`) becomes `s`: a causal compile masks every head."""
    from distill.circuit.tables import CAUSAL_SELECT

    lookup = program.lookup()

    def is_mask(node) -> bool:
        while isinstance(node, ast.Name) and node.id in lookup:
            node = lookup[node.id]
        return node == CAUSAL_SELECT

    def drop(node):
        if isinstance(node, ast.SelectAnd):
            if is_mask(node.left):
                return node.right
            if is_mask(node.right):
                return node.left
        return node

    return ast.rewrite_program(program, drop)


def _refuse_composite_selectors(program: ast.Program) -> None:
    lookup = program.lookup()
    composite = (ast.SelectAnd, ast.SelectOr, ast.SelectNot)
    refused = sorted(
        name
        for name in _reachable_names(program)
        if any(isinstance(node, composite) for node in _subtree(lookup[name]))
    )
    if refused:
        raise BadInputError(
            f"tracr compiles no composite selector (&, |, ~): {', '.join(refused)}. "
            "A program read off a causal model ands the causal mask "
            "select(indices, indices, <=) into every select: compile it with causal "
            "attention (--causal), which masks every head."
        )


def _subtree(node: ast.Node):
    """`node` and every node under it, up to the names it refers to."""
    yield node
    for child in node.children:
        yield from _subtree(child)


def _reachable_names(program: ast.Program) -> set[str]:
    """The definitions the output depends on."""
    lookup = program.lookup()
    reached: set[str] = set()
    stack = [program.output]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Name):
            if node.id not in reached and node.id in lookup:
                reached.add(node.id)
                stack.append(lookup[node.id])
        else:
            stack.extend(node.children)
    return reached


class _Definitions:
    """Definitions being rewritten in order, with fresh names for the ones added."""

    def __init__(self, program: ast.Program):
        self.taken = {d.name for d in program.definitions}
        self.definitions: list[ast.Definition] = []

    def add(self, base: str, node: ast.Node) -> ast.Name:
        name = base
        for suffix in itertools.count(2):
            if name not in self.taken:
                break
            name = f"{base}_{suffix}"
        self.taken.add(name)
        self.definitions.append(ast.Definition(name, node))
        return ast.Name(name)


def _named_sops(program: ast.Program) -> ast.Program:
    """Every SOp but tokens and indices gets a definition of its own.

    The value sets written into tracr's graph are found by definition name.
    """
    rewritten = _Definitions(program)

    def hoist(owner: str):
        def name_children(node):
            children = {
                f.name: rewritten.add(f"{owner}_{f.name}", child)
                for f in dataclasses.fields(node)
                if isinstance(child := getattr(node, f.name), ast.SOp)
                and not isinstance(child, (ast.Tokens, ast.Indices))
            }
            return dataclasses.replace(node, **children) if children else node

        return name_children

    for definition in program.definitions:
        node = ast.rewrite(definition.node, hoist(definition.name))
        rewritten.definitions.append(dataclasses.replace(definition, node=node))
    output = ast.rewrite(program.output, hoist("output"))
    if isinstance(output, ast.SOp) and not isinstance(output, (ast.Tokens, ast.Indices)):
        output = rewritten.add("output", output)
    return ast.Program(tuple(rewritten.definitions), output, program.origin)


def _with_categorical_operands(program: ast.Program) -> ast.Program:
    """Numerical operands where tracr needs categorical ones get categorical twins."""
    from dsl.tracr_bridge import linear_factors

    rewritten = _Definitions(program)
    encodings: dict[str, ast.Encoding] = {}
    twins: dict[tuple[str, ast.Encoding], ast.Name] = {}

    def encoding(operand: ast.Node) -> ast.Encoding | None:
        if isinstance(operand, ast.Name):
            return encodings.get(operand.id)
        return operand.encoding

    def encoded(operand: ast.Node, wanted: ast.Encoding) -> ast.Node:
        if encoding(operand) in (wanted, None):
            return operand
        label = operand.id if isinstance(operand, ast.Name) else type(operand).__name__.lower()
        key = (label, wanted)
        if key not in twins:
            twins[key] = rewritten.add(
                f"{label}_{wanted.value}", ast.Map(IDENTITY, operand, encoding=wanted)
            )
            encodings[twins[key].id] = wanted
        return twins[key]

    for definition in program.definitions:
        node = definition.node
        if isinstance(node, ast.Select):
            node = dataclasses.replace(
                node,
                keys=encoded(node.keys, ast.CATEGORICAL),
                queries=encoded(node.queries, ast.CATEGORICAL),
            )
        elif isinstance(node, ast.SequenceMap):
            linear = node.encoding == ast.NUMERICAL and linear_factors(node.fn) is not None
            operands = ast.NUMERICAL if linear else ast.CATEGORICAL
            node = dataclasses.replace(
                node, left=encoded(node.left, operands), right=encoded(node.right, operands)
            )
            if not linear and node.encoding == ast.NUMERICAL:
                categorical = dataclasses.replace(node, encoding=ast.CATEGORICAL)
                twin = rewritten.add(f"{definition.name}_categorical", categorical)
                twins[(definition.name, ast.CATEGORICAL)] = twin
                encodings[twin.id] = ast.CATEGORICAL
                node = ast.Map(IDENTITY, twin, encoding=ast.NUMERICAL)
        if isinstance(node, (ast.SOp, ast.Name)):  # a name may alias another definition
            encodings[definition.name] = encoding(node)
        rewritten.definitions.append(dataclasses.replace(definition, node=node))
    return ast.Program(tuple(rewritten.definitions), program.output, program.origin)


def _complete_tables(program: ast.Program, vocab, max_seq_len: int) -> ast.Program:
    """Each table gets an entry (its first output) for every argument its operands can take."""
    inference = ValueSets(frozenset(vocab), max_seq_len, value_sets(program, vocab, max_seq_len))

    def complete(node):
        if not isinstance(node, (ast.Map, ast.SequenceMap)) or not isinstance(node.fn, ast.Table):
            return node
        if isinstance(node, ast.Map):
            arguments = inference.of(node.arg)
        else:
            arguments = itertools.product(inference.of(node.left), inference.of(node.right))
        entries = node.fn.as_dict()
        if not entries:
            return node
        filler = node.fn.entries[0][1]
        added = tuple((key, filler) for key in arguments if key not in entries)
        return dataclasses.replace(node, fn=ast.Table(node.fn.entries + added)) if added else node

    return ast.rewrite_program(program, complete)


def _split_signed_numbers(program: ast.Program, vocab, max_seq_len: int) -> ast.Program:
    """A categorical -> numerical map with negative values becomes (positive part) - (negative part).

    tracr's MLP for such a map has the output itself as its one hidden unit,
    whose ReLU clips negative values; a linear sequence_map keeps the sign.
    """
    inference = ValueSets(frozenset(vocab), max_seq_len, value_sets(program, vocab, max_seq_len))
    lookup = program.lookup()
    rewritten = _Definitions(program)
    for definition in program.definitions:
        node = definition.node
        arg = arg_node = getattr(node, "arg", None)
        while isinstance(arg_node, ast.Name):
            arg_node = lookup[arg_node.id]
        if (
            isinstance(node, ast.Map)
            and node.encoding == ast.NUMERICAL
            and arg_node.encoding == ast.CATEGORICAL
            and any(value < 0 for value in inference.sets[definition.name])
        ):
            values = tabulated(node.fn, [(x,) for x in inference.of(arg)])
            parts = [
                rewritten.add(
                    f"{definition.name}_{part}",
                    ast.Map(
                        ast.Table(tuple((x, max(sign * v, 0)) for (x,), v in values.items())),
                        arg,
                        encoding=ast.NUMERICAL,
                    ),
                )
                for part, sign in (("positive", 1), ("negative", -1))
            ]
            node = ast.SequenceMap(DIFFERENCE, *parts, encoding=ast.NUMERICAL)
        rewritten.definitions.append(dataclasses.replace(definition, node=node))
    return ast.Program(tuple(rewritten.definitions), program.output, program.origin)
