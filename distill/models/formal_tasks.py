"""Tasks a model can be trained on: named formal languages and `.rasp` programs.

A task is an alphabet, the output values, a labelling function and a read-out.
Labels are computed on whole arrays of token indices (`[n, length]`, one length
per array), so the exhaustive check of every binary string up to length 20 (2
million strings) labels in seconds. A task reads either every position ("all")
or only the last ("last"). Per-prefix tasks (a label at position i says
something about the first i tokens) train with causal attention by default;
whole-string tasks (sort, reverse, histogram) read the whole input and train
without it. A label takes one of three forms:

- an index into `output_values` per position (read out by argmax);
- multi-label (`multilabel`): a 0/1 vector over `output_values` per position,
  read out as the set of values whose logit is > 0. Dyck is trained so, as a
  next-symbol-set language model: after each prefix, the tokens that may come
  next (EOS when the prefix is balanced; nothing after an invalid prefix);
- `bos x sep y` (`sep`): the model reads x, SEP, then y (teacher forcing), and
  the label of x is y, as indices into the alphabet: the model is scored on
  predicting each token of y from SEP and the y tokens before it. Copy is
  trained so (y = x), as a causal language model.

The `task` record written into a model file follows the task-file schema
(`alphabet`, `special`, `domain`, `readout`) that `distill/models/task.py` reads.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from distill.errors import BadInputError

BINARY = (0, 1)
LETTERS = ("a", "b", "c")
DIGITS = (0, 1, 2, 3)
# Membership labels: 0 = the prefix is not in the language, 1 = it is.
MEMBERSHIP = (0, 1)
DYCK_BRACKETS = ("()", "[]", "{}", "<>")
DEFAULT_DYCK_DEPTH = 4
BOS_NAME = "BOS"
SEP_NAME = "SEP"
EOS_NAME = "EOS"
# Every rasp output outside the program's value set is labelled so (never a real index).
UNLABELLED = -1


@dataclass(frozen=True)
class Task:
    """A training task: what the inputs are, what each read-out position should output."""

    name: str
    """The task's name (`tomita3`, `dyck2-d4`, or a `.rasp` file's name)."""
    alphabet: tuple
    """Input tokens, in token-id order."""
    output_values: tuple
    """What an output index decodes to (multi-label: what each 0/1 entry says is next)."""
    readout: str
    """"all": every position is an output; "last": only the last position is (for `sep`
    tasks, y is read: the outputs at SEP and after it, but for the last token)."""
    causal: bool
    """The attention the task suits by default (prefix labels: causal)."""
    max_len: int
    """Default longest training input."""
    label: Callable[[np.ndarray], np.ndarray]
    """token indices [n, length] -> output indices [n, length] (UNLABELLED if outside);
    multi-label: 0/1 [n, length, len(output_values)]; sep: y as alphabet indices."""
    description: str
    """One line saying what the label is."""
    program: str | None = None
    """The `.rasp` source the labels come from, for a program task."""
    multilabel: bool = False
    """Read out the set of output values whose logit is > 0 (trained with a per-value BCE)."""
    sep: bool = False
    """The model reads `x SEP y` and predicts y (teacher forcing); `reference` says y."""
    reference: str | None = None
    """For a `sep` task: the `.rasp` program that computes y from x (stored in the record)."""

    @property
    def special(self) -> dict:
        """The special tokens: BOS, SEP for `x sep y`, EOS for a multi-label language."""
        names = {"bos": BOS_NAME}
        if self.sep:
            names["sep"] = SEP_NAME
        if self.multilabel and EOS_NAME in self.output_values:
            names["eos"] = EOS_NAME
        return names

    @property
    def vocab(self) -> tuple:
        """The tokens the model reads: the alphabet, then SEP and EOS (the task file's order)."""
        extra = tuple(self.special[n] for n in ("sep", "eos") if n in self.special)
        return tuple(self.alphabet) + extra

    def sequence_length(self, length: int) -> int:
        """Tokens the model reads for an x of `length` tokens (x, SEP and y for `sep`)."""
        return 2 * length + 1 if self.sep else length

    def record(self, min_len: int, max_len: int) -> dict:
        """The model file's `task` record (the task-file schema)."""
        domain = {"kind": "strings", "min_len": min_len, "max_len": max_len}
        positions = self.readout
        if self.sep:
            domain = {**domain, "kind": "bos_x_sep_y", "reference": self.reference,
                      "y": "reference"}  # fmt: skip
            positions = "after_sep"
        return {
            "name": self.name,
            "description": self.description,
            "alphabet": list(self.alphabet),
            "special": self.special,
            "domain": domain,
            "readout": {
                "positions": positions,
                "kind": "multilabel" if self.multilabel else "argmax",
            },
        }


# ---------------------------------------------------------------- labelling helpers


def _run_dfa(tokens: np.ndarray, table: list[list[int]], accepting: set[int]) -> np.ndarray:
    """Per-prefix membership of a DFA from state 0: table[state][token] -> state."""
    transitions = np.asarray(table)
    state = np.zeros(tokens.shape[0], dtype=np.int64)
    labels = np.empty(tokens.shape, dtype=np.int64)
    accept = np.isin(np.arange(len(table)), sorted(accepting))
    for position in range(tokens.shape[1]):
        state = transitions[state, tokens[:, position]]
        labels[:, position] = accept[state]
    return labels


def _prefix_counts(tokens: np.ndarray, n_tokens: int) -> np.ndarray:
    """[n, length, n_tokens]: how often each token occurs in each prefix."""
    one_hot = np.eye(n_tokens, dtype=np.int64)[tokens]
    return one_hot.cumsum(axis=1)


# Tomita's seven regular languages over {0, 1} (Tomita 1982), as minimal DFAs; state 0 starts.
TOMITA = {
    1: ("1*", [[1, 0], [1, 1]], {0}),
    2: ("(10)*", [[2, 1], [0, 2], [2, 2]], {0}),
    # No odd run of 1s followed directly by an odd run of 0s. States: 0 even 1-run (or after
    # 0s), 1 odd 1-run, 2 odd 1-run then odd 0-run, 3 odd 1-run then even 0-run, 4 dead.
    3: (
        "no odd run of 1s directly followed by an odd run of 0s",
        [[0, 1], [2, 0], [3, 4], [2, 1], [4, 4]],
        {0, 1, 3},
    ),
    4: ("no 000 substring", [[1, 0], [2, 0], [3, 0], [3, 3]], {0, 1, 2}),
    # state = (zeros mod 2) + 2 * (ones mod 2)
    5: ("even number of 0s and even number of 1s", [[1, 2], [0, 3], [3, 0], [2, 1]], {0}),
    # state = (zeros - ones) mod 3
    6: ("(#0 - #1) divisible by 3", [[1, 2], [2, 0], [0, 1]], {0}),
    7: ("0*1*0*1*", [[0, 1], [2, 1], [2, 3], [4, 3], [4, 4]], {0, 1, 2, 3}),
}


def tomita(number: int) -> Task:
    description, table, accepting = TOMITA[number]
    return Task(
        name=f"tomita{number}",
        alphabet=BINARY,
        output_values=MEMBERSHIP,
        readout="all",
        causal=True,
        max_len=20,
        label=lambda tokens: _run_dfa(tokens, table, accepting),
        description=f"per prefix: 1 if it is in Tomita {number} ({description}), else 0",
    )


def dyck(pairs: int, depth: int) -> Task:
    """Dyck-`pairs` with nesting at most `depth`, as a next-symbol-set language model.

    After each prefix, the set of tokens that may follow it in a Dyck word of nesting at
    most `depth`: every opener while the nesting is below `depth`, the closer of the
    innermost open bracket, and EOS when the prefix is balanced; the empty set once the
    prefix is invalid (a wrong or unmatched closer, or nesting past `depth`). A string is
    a Dyck word exactly when each token is in the set after the prefix before it, and
    EOS is in the last set.
    """
    alphabet = tuple(c for pair in DYCK_BRACKETS[:pairs] for c in pair)
    n_outputs = len(alphabet) + 1  # the brackets, then EOS

    def label(tokens: np.ndarray) -> np.ndarray:
        n, length = tokens.shape
        stack = np.zeros((n, depth + 1), dtype=np.int64)  # the open bracket kinds, bottom first
        height = np.zeros(n, dtype=np.int64)
        valid = np.ones(n, dtype=bool)
        labels = np.zeros((n, length, n_outputs), dtype=np.int64)
        rows = np.arange(n)
        for position in range(length):
            token = tokens[:, position]
            kind, closing = token // 2, token % 2 == 1
            opening = ~closing
            valid &= ~(opening & (height >= depth))
            top = stack[rows, np.maximum(height - 1, 0)]
            valid &= ~(closing & ((height == 0) | (top != kind)))
            push = valid & opening
            stack[rows[push], height[push]] = kind[push]
            height = height + push - (valid & closing)
            may_open = valid & (height < depth)
            labels[:, position, 0 : 2 * pairs : 2] = may_open[:, None]
            inner = stack[rows, np.maximum(height - 1, 0)]
            closer = valid & (height > 0)
            labels[rows[closer], position, 2 * inner[closer] + 1] = 1
            labels[:, position, -1] = valid & (height == 0)
        return labels

    return Task(
        name=f"dyck{pairs}-d{depth}",
        alphabet=alphabet,
        output_values=(*alphabet, EOS_NAME),
        readout="all",
        causal=True,
        max_len=16,
        label=label,
        description=(
            f"per prefix over {' '.join(alphabet)}: the set of tokens that may come next in a "
            f"Dyck word of nesting at most {depth} (EOS: the prefix is balanced; none: it is "
            "invalid)"
        ),
        multilabel=True,
    )


def _majority(tokens: np.ndarray, n_tokens: int) -> np.ndarray:
    """Per prefix, the most frequent token; a tie goes to the earliest in the alphabet."""
    return _prefix_counts(tokens, n_tokens).argmax(axis=-1)


def _sort(tokens: np.ndarray) -> np.ndarray:
    return np.sort(tokens, axis=1)


def _reverse(tokens: np.ndarray) -> np.ndarray:
    return tokens[:, ::-1].copy()


def _histogram(tokens: np.ndarray, n_tokens: int) -> np.ndarray:
    """Per position, how often its token occurs in the whole input (minus 1: values start at 1)."""
    totals = _prefix_counts(tokens, n_tokens)[:, -1, :]
    return np.take_along_axis(totals, tokens, axis=1) - 1


def _count(tokens: np.ndarray, n_tokens: int) -> np.ndarray:
    """Per position, how often its token has occurred so far, itself included (minus 1)."""
    counts = _prefix_counts(tokens, n_tokens)
    return np.take_along_axis(counts, tokens[..., None], axis=2)[..., 0] - 1


def _free_alphabet_task(name: str, alphabet: tuple, context: int) -> Task:
    """A task whose alphabet the user may choose (`--vocab`); counts go up to `context`."""
    n = len(alphabet)
    counts = tuple(range(1, context + 1))
    tasks = {
        "majority": (alphabet, "last", True, lambda t: _majority(t, n),
                     "at the last position, the most frequent token (a tie: earliest in the alphabet)"),
        "sort": (alphabet, "all", False, _sort, "the input sorted (by alphabet order)"),
        "reverse": (alphabet, "all", False, _reverse, "the input reversed"),
        "histogram": (counts, "all", False, lambda t: _histogram(t, n),
                      "how often each position's token occurs in the input"),
        "count": (counts, "all", True, lambda t: _count(t, n),
                  "how often each position's token has occurred so far, itself included"),
    }  # fmt: skip
    if name == "copy":
        return Task(name, alphabet, alphabet, "all", True, DEFAULT_MAX_LEN, lambda t: t.copy(),
                    "bos x sep y with y = x: after SEP, each next token of the copy",
                    sep=True, reference="return tokens\n")  # fmt: skip
    output_values, readout, causal, label, description = tasks[name]
    return Task(name, alphabet, output_values, readout, causal, DEFAULT_MAX_LEN, label, description)


def _binary_majority(tokens: np.ndarray) -> np.ndarray:
    counts = _prefix_counts(tokens, 2)
    return (counts[..., 1] > counts[..., 0]).astype(np.int64)


def _parity(tokens: np.ndarray) -> np.ndarray:
    return tokens.cumsum(axis=1) % 2


FREE_ALPHABET = {"majority": LETTERS, "sort": DIGITS, "reverse": LETTERS, "copy": LETTERS,
                 "histogram": LETTERS, "count": LETTERS}  # fmt: skip
FIXED = {
    "binary-majority": lambda: Task(
        "binary-majority", BINARY, MEMBERSHIP, "last", True, 12, _binary_majority,
        "at the last position, 1 if there are more 1s than 0s, else 0"),
    "parity": lambda: Task(
        "parity", BINARY, MEMBERSHIP, "all", True, 12, _parity,
        "per prefix, the number of 1s mod 2"),
}  # fmt: skip
DYCK_NAME = re.compile(r"dyck([1-4])(?:-d([1-9][0-9]?))?")
DEFAULT_MAX_LEN = 8


def task_names() -> list[str]:
    """The named tasks, for help and error messages."""
    return [f"tomita{i}" for i in TOMITA] + ["dyck1..4[-dK]", *FIXED, *FREE_ALPHABET]


def named_task(
    name: str, alphabet: tuple | None = None, context: int = 2 * DEFAULT_MAX_LEN
) -> Task:
    """The named task; `alphabet` replaces the default of a task whose alphabet is free.

    `context` is the longest input the model will be evaluated on (counts go up to it).
    """
    match = re.fullmatch(r"tomita([1-7])", name) or DYCK_NAME.fullmatch(name)
    fixed = name in FIXED or match is not None
    if fixed and alphabet is not None:
        raise BadInputError(f"--vocab: the task {name} has a fixed alphabet; leave --vocab out")
    if name.startswith("tomita") and match:
        return tomita(int(match.group(1)))
    if name.startswith("dyck") and match:
        return dyck(int(match.group(1)), int(match.group(2) or DEFAULT_DYCK_DEPTH))
    if name in FIXED:
        return FIXED[name]()
    if name in FREE_ALPHABET:
        chosen = tuple(alphabet) if alphabet is not None else FREE_ALPHABET[name]
        if name == "sort" and not _sortable(chosen):
            raise BadInputError("--vocab: sort needs values of one kind (all numbers or all text)")
        return _free_alphabet_task(name, tuple(sorted(chosen)) if name == "sort" else chosen,
                                   context)  # fmt: skip
    raise BadInputError(
        f"unknown task {name!r}: expected a .rasp file or one of {', '.join(task_names())}"
    )


def _sortable(values: tuple) -> bool:
    try:
        sorted(values)
    except TypeError:
        return False
    return True


def program_task(path, alphabet: tuple, context: int) -> Task:
    """The task whose labels are a `.rasp` program's outputs at every position.

    The output values are the program's value set over inputs up to `context` long (from
    type inference); an output outside it is UNLABELLED, so a model never scores it.
    """
    import dsl
    from distill.cli.options import read_program

    program = read_program(path)
    info = dsl.infer(program, list(alphabet), context)
    values = info.output.value_set
    if values is None:
        raise BadInputError(
            f"{path}: the program's output values are unknown to type inference (a numerical "
            "aggregate?); training needs a finite set of output values"
        )
    output_values = tuple(sorted(values, key=lambda v: (type(v).__name__, v)))
    index = {value: i for i, value in enumerate(output_values)}

    def label(tokens: np.ndarray) -> np.ndarray:
        inputs = [[alphabet[i] for i in row] for row in tokens.tolist()]
        outputs = dsl.evaluate(program, inputs, undefined="mark")
        return np.array(
            [[index.get(v, UNLABELLED) for v in row] if row is not None
             else [UNLABELLED] * tokens.shape[1] for row in outputs],
            dtype=np.int64,
        ).reshape(tokens.shape)  # fmt: skip

    return Task(
        name=path.stem,
        alphabet=alphabet,
        output_values=output_values,
        readout="all",
        causal=False,
        max_len=DEFAULT_MAX_LEN,
        label=label,
        description=f"the outputs of {path.name} at every position",
        program=path.read_text(encoding="utf-8"),
    )


__all__ = ["Task", "named_task", "program_task", "task_names"]
