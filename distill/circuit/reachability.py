"""Which values of the network's output variable some input gives it (Z3).

A value no input reaches needs no decoding margin in the certificate: e.g. the
default of an aggregate whose every query selects a key (reverse's flip; sort's
last aggregate). The question is asked of the table program read off the
weights, under the same precondition as every claim: first by the arguments of
`nonempty`, which need no search, then of Z3; "reached" unless one proves otherwise.
"""

from __future__ import annotations

from distill.circuit import tables as table_stage
from distill.circuit.credit import names_read
from distill.circuit.discovery import DEFAULT_LABEL, Circuit
from distill.circuit.nonempty import never_selects_nothing
from dsl import ast
from verify.equivalence import SINGLE_VALUED_AGGREGATES, equivalent


def output_reachability(network: Circuit, vocab, max_len: int, timeout: float):
    """label -> False when Z3 proves no input gives the output variable that value."""
    program = table_stage.build(network).program
    output = network.output
    reading = network.reading_of(output)
    answers: dict = {}

    def reachable(label) -> bool:
        key = (type(label).__name__, repr(label))
        if key not in answers:
            answers[key] = _reached(label)
        return answers[key]

    def _reached(label) -> bool:
        if label == DEFAULT_LABEL and getattr(reading, "kind", None) == "aggregate":
            if never_selects_nothing(program, output.name, vocab, max_len):
                return False
            question = _selects_nothing(program, output.name, max_len)
        else:
            question = _takes(program, output.values, label)
        never = ast.Program(question.definitions, ast.Map(_constant(question), question.output))
        verdict = equivalent(
            question,
            never,
            vocab=vocab,
            max_seq_len=max_len,
            timeout=timeout,
            precondition=SINGLE_VALUED_AGGREGATES,
        )
        return verdict.level != "proved"

    return reachable


def _selects_nothing(program: ast.Program, name: str, max_len: int) -> ast.Program:
    """Is the aggregate's selector row ever empty? Asked of the selector alone: the values
    it would copy cost Z3 far more, and leaving them out (and so the precondition on this
    aggregate) only asks more than needed."""
    selector = f"select_{name.removeprefix('head_')}"
    empty = ast.Table(tuple((w, w == 0) for w in range(max_len + 1)))
    definitions = _cone(program, selector) + (
        ast.Definition("width", ast.SelectorWidth(ast.Name(selector))),
        ast.Definition("reached", ast.Map(empty, ast.Name("width"))),
    )
    return ast.Program(definitions, ast.Name("reached"))


def _takes(program: ast.Program, values, label) -> ast.Program:
    hits = dict((v, type(v) is type(label) and v == label) for v in values)
    definitions = program.definitions + (
        ast.Definition("reached", ast.Map(ast.Table(tuple(hits.items())), program.output)),
    )
    return ast.Program(definitions, ast.Name("reached"))


def _constant(question: ast.Program) -> ast.Table:
    """False for every value the question's last map reads."""
    last = question.definitions[-1].node
    return ast.Table(tuple((k, False) for k, _ in last.fn.entries))


def _cone(program: ast.Program, name: str) -> tuple[ast.Definition, ...]:
    """The definitions `name` needs, in program order."""
    by_name = {d.name: d for d in program.definitions}
    needed, stack = set(), [name]
    while stack:
        current = stack.pop()
        if current in needed or current not in by_name:
            continue
        needed.add(current)
        stack.extend(names_read(by_name[current].node))
    return tuple(d for d in program.definitions if d.name in needed)
