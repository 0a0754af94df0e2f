"""Errors of the `.rasp` language: one root type, located problems collected."""

from __future__ import annotations

from dataclasses import dataclass


class DSLError(Exception):
    """Root of every error raised by `dsl`."""


@dataclass(frozen=True)
class Problem:
    """One located problem in a program: what, where, and the source line."""

    message: str
    filename: str = "<string>"
    line: int | None = None
    column: int | None = None
    source_line: str | None = None

    def render(self) -> str:
        where = self.filename
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        text = f"{where}: {self.message}"
        if self.source_line is not None and self.line is not None:
            text += f"\n    {self.source_line}"
            if self.column is not None:
                text += "\n    " + " " * (self.column - 1) + "^"
        return text


class ParseError(DSLError):
    """A syntax error: one problem, with file, line, column and the offending line."""

    def __init__(self, problem: Problem):
        self.problem = problem
        super().__init__(problem.render())


class TypeCheckError(DSLError):
    """Every type error found in a program, reported together."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(p.render() for p in self.problems))


class EvaluationError(DSLError):
    """A program is undefined on an input (where tracr's evaluator raises)."""


class BridgeError(DSLError):
    """A tracr expression or program that the bridge cannot translate."""
