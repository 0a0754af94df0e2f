"""`distill train`: task labels against their definitions, training to 100%, seeded runs."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest
import torch

import distill
from distill.cli import main
from distill.models.formal_tasks import named_task
from distill.models.training import Recipe, train

# Tomita's languages written independently of the DFAs: regular expressions and counts.
TOMITA_DEFINITIONS = {
    1: lambda s: re.fullmatch("1*", s) is not None,
    2: lambda s: re.fullmatch("(10)*", s) is not None,
    3: lambda s: (
        not any(
            len(ones) % 2 == 1 and len(zeros) % 2 == 1
            for ones, zeros in re.findall("(?=(?:^|0)(1+)(0+)(?:1|$))", s)
        )
    ),
    4: lambda s: "000" not in s,
    5: lambda s: s.count("0") % 2 == 0 and s.count("1") % 2 == 0,
    6: lambda s: (s.count("0") - s.count("1")) % 3 == 0,
    7: lambda s: re.fullmatch("0*1*0*1*", s) is not None,
}


def all_strings(n_tokens: int, length: int) -> np.ndarray:
    return np.array(list(itertools.product(range(n_tokens), repeat=length)), dtype=np.int64)


@pytest.mark.parametrize("number", sorted(TOMITA_DEFINITIONS))
def test_tomita_labels_are_prefix_membership(number):
    task = named_task(f"tomita{number}")
    tokens = all_strings(2, 10)
    labels = task.label(tokens)
    member = TOMITA_DEFINITIONS[number]
    for row, label in zip(tokens.tolist(), labels.tolist()):
        text = "".join(map(str, row))
        assert label == [int(member(text[: i + 1])) for i in range(len(text))], text


def dyck_state(text: str, pairs: dict, depth: int) -> str:
    stack = []
    for char in text:
        if char in pairs:
            if len(stack) == depth:
                return "invalid"
            stack.append(char)
        elif not stack or pairs[stack.pop()] != char:
            return "invalid"
    return "balanced" if not stack else "open"


def test_dyck_labels_follow_a_stack():
    task = named_task("dyck2-d2")
    pairs = {"(": ")", "[": "]"}
    tokens = all_strings(4, 7)
    labels = task.label(tokens)
    for row, label in zip(tokens.tolist(), labels.tolist()):
        text = "".join(task.alphabet[i] for i in row)
        expected = [dyck_state(text[: i + 1], pairs, 2) for i in range(len(text))]
        assert [task.output_values[i] for i in label] == expected, text


def test_sequence_task_labels():
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 3, size=(200, 7))
    for name, definition in {
        "sort": lambda s: sorted(s),
        "reverse": lambda s: s[::-1],
        "copy": lambda s: s,
        "histogram": lambda s: [s.count(t) for t in s],
        "count": lambda s: [s[: i + 1].count(t) for i, t in enumerate(s)],
        "majority": lambda s: [max(range(3), key=lambda t: (s[: i + 1].count(t), -t))
                               for i in range(len(s))],
    }.items():  # fmt: skip
        task = named_task(name, alphabet=(0, 1, 2))
        for row, label in zip(tokens.tolist(), task.label(tokens).tolist()):
            assert [task.output_values[i] for i in label] == definition(row), (name, row)


def tiny_recipe(**changes) -> Recipe:
    base = dict(layers=1, heads=1, d_model=16, max_len=6, context=8, steps=600, seed=3)
    return Recipe(**{**base, **changes})


def test_training_reaches_every_string_and_the_file_records_how(tmp_path):
    torch.set_num_threads(1)
    task = named_task("tomita1")
    result = train(task, tiny_recipe())
    assert result.held_out_accuracy == 1.0
    path = tmp_path / "tomita1.safetensors"
    result.model.save(path)
    model = distill.load_model(path)
    inputs = [
        list(row) for length in range(1, 7) for row in itertools.product((0, 1), repeat=length)
    ]
    got = model.predict(inputs)
    member = TOMITA_DEFINITIONS[1]
    for tokens, outputs in zip(inputs, got):
        text = "".join(map(str, tokens))
        assert outputs == [int(member(text[: i + 1])) for i in range(len(text))], text
    training = model.records["training"]
    assert training["recipe"] == "tomita1" and training["layers"] == 1 and training["seed"] == 3
    assert training["torch_version"] == torch.__version__
    assert model.records["source"]["kind"] == "trained"
    task_record = model.records["task"]
    assert task_record["alphabet"] == [0, 1]
    assert task_record["domain"] == {"kind": "strings", "min_len": 1, "max_len": 6}
    assert task_record["readout"] == {"positions": "all", "kind": "argmax"}


def test_seeded_training_is_reproducible():
    torch.set_num_threads(1)
    task = named_task("majority", alphabet=("a", "b"))
    recipe = tiny_recipe(steps=30, dropout=0.1, ln=True)
    first = train(task, recipe).model.state_dict()
    second = train(task, recipe).model.state_dict()
    assert first.keys() == second.keys()
    assert all(torch.equal(first[name], second[name]) for name in first)


def test_train_cli_writes_a_model(tmp_path, capsys):
    path = tmp_path / "parity.safetensors"
    status = main(["train", "tomita1", "--layers", "1", "--heads", "1", "--d-model", "16",
                   "--max-len", "5", "--steps", "300", "-o", str(path), "--quiet"])  # fmt: skip
    out = capsys.readouterr().out
    assert status == 0, out
    assert "correct on every input up to length 5" in out
    assert distill.load_model(path).records["training"]["max_len"] == 5


@pytest.mark.parametrize(
    "args, message",
    [
        (["nonsense"], "unknown task 'nonsense'"),
        (["tomita1", "--min-len", "5", "--max-len", "3"], "--min-len 5 is more than --max-len 3"),
        (["tomita1", "--max-len", "0"], "--max-len: expected a positive integer"),
        (["tomita1", "--vocab", "a,b"], "has a fixed alphabet"),
        (["tomita1", "--d-model", "15", "--heads", "2"], "not a multiple of --heads"),
        (["tomita1", "--dropout", "1.5"], "--dropout"),
        (["tomita1", "--activation", "tanh"], "act_fn"),
        (["missing.rasp", "--vocab", "a,b"], "missing.rasp"),
        (["missing.rasp"], "needs its input alphabet"),
    ],
)
def test_bad_train_options_exit_2(tmp_path, capsys, args, message):
    status = main(["train", *args, "-o", str(tmp_path / "m.safetensors"), "--quiet"])
    assert status == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "m.safetensors").exists()
