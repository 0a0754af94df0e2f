"""Errors of the `.rasp` language: one root type, located problems collected."""

from __future__ import annotations

from dataclasses import dataclass

# How much of a long message part, source line or list of problems an error shows.
SHOWN_CHARS = 320
SHOWN_LINE_CHARS = 120
SHOWN_PROBLEMS = 20


def shorten(text: str, limit: int = SHOWN_CHARS) -> str:
    """`text`, cut to about `limit` characters with a note of how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit:,} more characters)"


def source_line(text: str, line: int | None) -> str | None:
    """Line `line` (1-based) of `text`, counting lines as the parser does: by "\n" only."""
    if line is None or line < 1:
        return None
    start = 0
    for _ in range(line - 1):
        start = text.find("\n", start) + 1
        if start == 0:
            return None
    end = text.find("\n", start)
    return text[start : end if end >= 0 else len(text)].removesuffix("\r")


def _window(line: str, column: int) -> tuple[str, int]:
    """A long source line cut to SHOWN_LINE_CHARS around `column`; the column in the cut."""
    if len(line) <= SHOWN_LINE_CHARS:
        return line, column
    start = max(0, min(column - 1 - SHOWN_LINE_CHARS // 2, len(line) - SHOWN_LINE_CHARS))
    end = start + SHOWN_LINE_CHARS
    prefix = "..." if start else ""
    return prefix + line[start:end] + ("..." if end < len(line) else ""), column - start + len(
        prefix
    )


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
        text = f"{shorten(where)}: {shorten(self.message)}"
        if self.source_line is not None and self.line is not None:
            shown, column = _window(self.source_line, self.column or 1)
            text += f"\n    {shown}"
            if self.column is not None:
                text += "\n    " + " " * (column - 1) + "^"
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
        shown = [p.render() for p in self.problems[:SHOWN_PROBLEMS]]
        if len(self.problems) > SHOWN_PROBLEMS:
            shown.append(f"... and {len(self.problems) - SHOWN_PROBLEMS:,} more problems")
        super().__init__("\n".join(shown))


class EvaluationError(DSLError):
    """A program is undefined on an input (where tracr's evaluator raises)."""


class BridgeError(DSLError):
    """A tracr expression or program that the bridge cannot translate."""
