"""Program plumbing the rewrites share: references, use counts, renaming, flattening.

The rewrites work on a *flat* program, where every operation is its own named
definition and nodes refer to each other by `Name` (tokens, indices and `full`
stay inline). `flatten` makes one; `inline_single_uses` puts the definitions it
invented back where they were used once.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping

from dsl import ast

LEAVES = (ast.Tokens, ast.Indices, ast.Full)
GENERATED_PREFIX = "_synth_"


def child_fields(node: ast.Node) -> list[str]:
    """The dataclass fields of `node` that hold child nodes."""
    return [f.name for f in dataclasses.fields(node) if isinstance(getattr(node, f.name), ast.Node)]


def references(node: ast.Node) -> list[str]:
    """Names `node` refers to (with repeats), looking inside inline children."""
    if isinstance(node, ast.Name):
        return [node.id]
    return [name for child in node.children for name in references(child)]


def substitute(node: ast.Node, replacements: Mapping[str, ast.Node]) -> ast.Node:
    """`node` with every `Name` in `replacements` replaced."""
    if isinstance(node, ast.Name):
        return replacements.get(node.id, node)
    changes = {}
    for field in child_fields(node):
        child = getattr(node, field)
        new_child = substitute(child, replacements)
        if new_child is not child:
            changes[field] = new_child
    return dataclasses.replace(node, **changes) if changes else node


def substitute_program(program: ast.Program, replacements: Mapping[str, ast.Node]) -> ast.Program:
    definitions = tuple(
        dataclasses.replace(d, node=substitute(d.node, replacements)) for d in program.definitions
    )
    return ast.Program(definitions, substitute(program.output, replacements), program.origin)


def use_counts(program: ast.Program) -> Counter:
    """How many times each name is referred to (the output counts as a use)."""
    counts: Counter = Counter()
    for definition in program.definitions:
        counts.update(references(definition.node))
    counts.update(references(program.output))
    return counts


def replace_definitions(program: ast.Program, nodes: Mapping[str, ast.Node]) -> ast.Program:
    """`program` with the definitions named in `nodes` given new nodes."""
    definitions = tuple(
        dataclasses.replace(d, node=nodes[d.name]) if d.name in nodes else d
        for d in program.definitions
    )
    return ast.Program(definitions, program.output, program.origin)


def without(program: ast.Program, names: set[str]) -> ast.Program:
    definitions = tuple(d for d in program.definitions if d.name not in names)
    return ast.Program(definitions, program.output, program.origin)


def encoding_of(node: ast.Node, lookup: Mapping[str, ast.Node]) -> ast.Encoding | None:
    """The encoding of an SOp node (following names); None for a selector."""
    return getattr(resolve(node, lookup), "encoding", None)


def resolve(node: ast.Node, lookup: Mapping[str, ast.Node]) -> ast.Node:
    while isinstance(node, ast.Name):
        node = lookup[node.id]
    return node


def flatten(program: ast.Program) -> ast.Program:
    """Every operation its own definition; the output a `Name`."""
    taken = {d.name for d in program.definitions}
    definitions: list[ast.Definition] = []
    counter = 0

    def fresh() -> str:
        nonlocal counter
        while True:
            counter += 1
            name = f"{GENERATED_PREFIX}{counter}"
            if name not in taken:
                taken.add(name)
                return name

    def lift(node: ast.Node) -> ast.Node:
        """Flatten the children of `node`, then give `node` itself a name."""
        if isinstance(node, (ast.Name, *LEAVES)):
            return node
        name = fresh()
        definitions.append(ast.Definition(name, flat_children(node)))
        return ast.Name(name)

    def flat_children(node: ast.Node) -> ast.Node:
        changes = {field: lift(getattr(node, field)) for field in child_fields(node)}
        return dataclasses.replace(node, **changes) if changes else node

    for definition in program.definitions:
        definitions.append(dataclasses.replace(definition, node=flat_children(definition.node)))
    output = lift(program.output)
    return ast.Program(tuple(definitions), output, program.origin)


def inline_single_uses(program: ast.Program) -> ast.Program:
    """Put generated definitions used exactly once back inline (undoing `flatten`)."""
    counts = use_counts(program)
    inline = {
        d.name
        for d in program.definitions
        if d.name.startswith(GENERATED_PREFIX) and counts[d.name] == 1
    }
    replacements: dict[str, ast.Node] = {}
    definitions = []
    for definition in program.definitions:
        node = substitute(definition.node, replacements)
        if definition.name in inline:
            replacements[definition.name] = node
        else:
            definitions.append(dataclasses.replace(definition, node=node))
    output = substitute(program.output, replacements)
    return ast.Program(tuple(definitions), output, program.origin)


def reachable(program: ast.Program) -> set[str]:
    """Names the output depends on."""
    return reachable_from(program, references(program.output))


def reachable_from(program: ast.Program, names) -> set[str]:
    """`names` (those the program defines) and the names they depend on."""
    lookup = program.lookup()
    seen: set[str] = set()
    stack = list(names)
    while stack:
        name = stack.pop()
        if name in seen or name not in lookup:
            continue
        seen.add(name)
        stack.extend(references(lookup[name]))
    return seen


def remove_dead(program: ast.Program) -> ast.Program:
    """Drop definitions the output does not depend on."""
    live = reachable(program)
    return without(program, {d.name for d in program.definitions if d.name not in live})


def may_be_none(node: ast.Node, lookup: Mapping[str, ast.Node]) -> bool:
    """Whether an SOp can be None at a position (an aggregate's default, passed on by maps)."""
    node = resolve(node, lookup)
    if isinstance(node, ast.Full):
        return node.value is None
    if isinstance(node, ast.Aggregate):
        return node.default is None or may_be_none(node.sop, lookup)
    if isinstance(node, (ast.Map, ast.SequenceMap)):
        if any(may_be_none(child, lookup) for child in node.children):
            return True
        if isinstance(node.fn, ast.Table):
            return any(value is None for _, value in node.fn.entries)
        return _mentions_none(node.fn.body) if isinstance(node.fn, ast.Lambda) else False
    return False


def _mentions_none(expr: ast.Expr) -> bool:
    if isinstance(expr, ast.Const):
        return expr.value is None
    return any(_mentions_none(child) for child in expr.children)
