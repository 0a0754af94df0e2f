"""`distill train`: task labels against their definitions, training to 100%, seeded runs."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import distill
from distill.cli import main
from distill.models.formal_tasks import named_task
from distill.models.task import Task
from distill.models.training import IGNORED, Recipe, accuracy_by_length, label_batch, train

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


def test_dyck_labels_are_the_next_symbol_sets_of_a_stack():
    """After each prefix: the tokens t with prefix + t still a valid prefix, and EOS when the
    prefix is balanced (none once it is invalid)."""
    task = named_task("dyck2-d2")
    pairs = {"(": ")", "[": "]"}
    assert task.multilabel and task.output_values == ("(", ")", "[", "]", "EOS")
    tokens = all_strings(4, 7)
    labels = task.label(tokens)
    for row, label in zip(tokens.tolist(), labels.tolist()):
        text = "".join(task.alphabet[i] for i in row)
        for i, scores in enumerate(label):
            prefix = text[: i + 1]
            expected = {t for t in task.alphabet if dyck_state(prefix + t, pairs, 2) != "invalid"}
            if dyck_state(prefix, pairs, 2) == "balanced":
                expected.add("EOS")
            if dyck_state(prefix, pairs, 2) == "invalid":
                assert expected == set(), prefix  # the definition agrees: nothing continues it
            got = {v for v, on in zip(task.output_values, scores) if on}
            assert got == expected, prefix


def test_sequence_task_labels():
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 3, size=(200, 7))
    for name, definition in {
        "sort": lambda s: sorted(s),
        "reverse": lambda s: s[::-1],
        "copy": lambda s: s,  # y of `x sep y`
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


ZOO = Path(__file__).resolve().parent / "data" / "zoo"


def next_symbol_sets(text: str, pairs: dict, depth: int) -> list[set]:
    """Per prefix, the tokens that may follow it (EOS when balanced): the stack definition."""
    closers = set(pairs.values())
    alphabet = [c for pair in pairs.items() for c in pair]
    sets = []
    for i in range(1, len(text) + 1):
        prefix = text[:i]
        nexts = {t for t in alphabet if dyck_state(prefix + t, pairs, depth) != "invalid"}
        assert closers | set(pairs) >= nexts
        sets.append(nexts | ({"EOS"} if dyck_state(prefix, pairs, depth) == "balanced" else set()))
    return sets


def test_multilabel_dyck_reads_out_sets_and_scores_whole_sets(capsys):
    """tests/data/zoo/dyck1-d2 (a multi-label language model): its task reads out the set of
    tokens with logit > 0, training's accuracy counts a string right only when every set is
    right, and `distill predict` prints the sets."""
    path = ZOO / "dyck1-d2.safetensors"
    model = distill.load_model(path)
    record = model.records["task"]
    assert record["readout"] == {"positions": "all", "kind": "multilabel"}
    assert record["special"] == {"bos": "BOS", "eos": "EOS"}
    task = Task.from_record(record)
    named = named_task("dyck1-d2", context=8)
    rows = accuracy_by_length(model, named, range(1, 9))
    for row in rows:
        inputs = [list(x) for x in itertools.product("()", repeat=row["length"])]
        got = task.read_out(model, inputs)
        expected = [next_symbol_sets("".join(x), {"(": ")"}, 2) for x in inputs]
        right = sum([set(s) for s in sets] == truth for sets, truth in zip(got, expected))
        assert row["right"] == right, row
        if row["length"] <= record["domain"]["max_len"]:  # trained to 100% on these
            assert right == len(inputs), row
    text = "(()"
    assert main(["predict", str(path), *text]) == 0
    printed = capsys.readouterr().out.split()
    truth = next_symbol_sets(text, {"(": ")"}, 2)
    assert [set(cell.strip("{}").split(",")) - {""} for cell in printed] == truth


def test_copy_is_trained_as_bos_x_sep_y():
    """Copy reads x, SEP, then y = x (teacher forcing) and is scored on each next token of y:
    the batch the trainer builds is the task record's domain (its reference program run by
    the DSL), and its scored positions are the record's read-out positions."""
    task = named_task("copy", alphabet=("a", "b", "c"))
    rng = np.random.default_rng(0)
    x = rng.integers(0, 3, size=(50, 5))
    lengths = rng.integers(1, 6, size=50)
    read, read_lengths, targets = label_batch(task, x, lengths)
    record = Task.from_record(task.record(1, 5))
    vocab = task.vocab
    assert vocab == ("a", "b", "c", "SEP")
    for row in range(50):
        n = int(lengths[row])
        letters = [task.alphabet[i] for i in x[row, :n]]
        sequence = [vocab[i] for i in read[row, : read_lengths[row]]]
        assert record.inputs_of([letters]) == [sequence] == [letters + ["SEP"] + letters]
        scored = [p + 1 for p in np.flatnonzero(targets[row] != IGNORED)]
        assert scored == record.positions_of(sequence)
        assert [task.output_values[targets[row, p - 1]] for p in scored] == letters
