"""Credit: which components compute each definition of the readable program."""

from __future__ import annotations

from dsl import ast


def components_of(
    program: ast.Program, table_program: ast.Program, table_components: dict[str, str]
) -> dict[str, str]:
    """Each readable definition -> the components computing it, comma-separated.

    Readable definitions keep the names of the table definitions they came
    from; a definition that synthesis merged away (a map folded into the next)
    is credited to the readable definition that absorbed it.
    """
    kept = {d.name for d in program.definitions}
    reads = {d.name: names_read(d.node) for d in table_program.definitions}
    components = {}
    for name in kept:
        found, stack, seen = [], [name], set()
        while stack:
            current = stack.pop()
            if current in seen:
                continue
            seen.add(current)
            if table_components.get(current):
                found.append(table_components[current])
            stack += [r for r in reads.get(current, ()) if r not in kept]
        components[name] = ", ".join(sorted(set(found), key=found.index))
    return components


def names_read(node: ast.Node) -> set[str]:
    """The definition names `node` reads."""
    if isinstance(node, ast.Name):
        return {node.id}
    names: set[str] = set()
    for child in node.children:
        names |= names_read(child)
    return names
