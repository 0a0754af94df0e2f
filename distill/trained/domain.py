"""A trained model's task domain, split at the length N up to which it is checked on every input.

The issue's rule: N is the largest length whose domain (every input of length 1..N) has at
most `budget` inputs, at most the task's longest input; beyond N, up to the longest length
the model was trained on, inputs are sampled.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from distill.models.task import Task

EXHAUSTIVE_BUDGET = 2_000_000


@dataclass(frozen=True)
class Domain:
    task: Task
    exhaustive_up_to: int  # N: every input of length min_len..N
    longest: int  # the task's longest x (the model was trained up to it)

    @property
    def min_len(self) -> int:
        return self.task.domain["min_len"]

    def count(self, length: int) -> int:
        """Strings x of `length` (an upper bound where a membership program filters them)."""
        return len(self.task.alphabet) ** length

    def exhaustive(self, length: int, model) -> list[list]:
        return self.task.inputs(length, model)

    def sample(self, length: int, k: int, seed: int, model) -> list[list]:
        """k inputs of x-length `length` drawn uniformly (with replacement) from the strings."""
        rng = random.Random(f"{seed}:{length}")
        xs = [rng.choices(self.task.alphabet, k=length) for _ in range(k)]
        return self.task.inputs_of(xs, model)


def task_of(model) -> Task:
    """The model's task record, or for a model without one (a compiled or compressed tracr
    model) its plain interface: strings over its vocab, every position read by argmax."""
    record = model.records.get("task")
    if record is not None:
        return Task.from_record(record)
    config = model.config
    return Task.from_record(
        {
            "alphabet": list(config.vocab),
            "domain": {"kind": "strings", "min_len": 1, "max_len": config.max_seq_len},
            "readout": {"positions": "all", "kind": "argmax"},
        }
    )


def domain_of(task: Task, budget: int = EXHAUSTIVE_BUDGET) -> Domain:
    """The task's domain with N as large as the budget allows."""
    low, high = task.domain["min_len"], task.domain["max_len"]
    total, n = 0, low - 1
    for length in range(low, high + 1):
        total += len(task.alphabet) ** length
        if total > budget:
            break
        n = length
    return Domain(task, max(n, low), high)
