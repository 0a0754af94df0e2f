"""The task interface: TOML in, record round trip, domain enumeration, read-out, checks."""

from __future__ import annotations

import pytest
import torch

from distill.models.family import Model, ModelConfig
from distill.models.task import Task, TaskError, is_trained

EQUAL_COUNTS = """
# as many ( as ): the running fraction of ( is 1/2 at the last position
opens = numerical map(lambda t: 1 if t == "(" else 0, tokens)
prevs = select(indices, indices, <=)
frac = numerical aggregate(prevs, opens, default=0)
return map(lambda f: f == 0.5, frac)
"""
REVERSE = (
    "length = selector_width(select(tokens, tokens, true))\n"
    "flip = select(indices, length - indices - 1, ==)\n"
    "return aggregate(flip, tokens)\n"
)


def lm_config(**changes) -> ModelConfig:
    fields = dict(
        n_layers=1, d_model=4, n_heads=1, d_head=2, d_mlp=4, n_ctx=8, act_fn="gelu_new",
        normalization="LN", causal=True, vocab=("a", "b", "SEP"), bos="BOS", max_seq_len=7,
        output_kind="categorical", output_values=("a", "b", "SEP", "BOS"),
    )  # fmt: skip
    fields.update(changes)
    return ModelConfig(**fields)


def test_toml_with_a_program_file_round_trips_through_the_record(tmp_path):
    (tmp_path / "equal.rasp").write_text(EQUAL_COUNTS)
    (tmp_path / "task.toml").write_text(
        'alphabet = ["(", ")"]\n[special]\nbos = "BOS"\n'
        '[domain]\nkind = "strings"\nmin_len = 2\nmax_len = 4\nmembership_file = "equal.rasp"\n'
        '[readout]\npositions = "last"\nkind = "multilabel"\n'
    )
    task = Task.from_toml(tmp_path / "task.toml")
    assert task.domain["membership"] == EQUAL_COUNTS
    assert Task.from_record(task.to_record()) == task
    # by hand: the strings with as many ( as ), in enumeration order
    assert task.inputs(2) == [["(", ")"], [")", "("]]
    assert ["".join(x) for x in task.inputs(4)] == ["(())", "()()", "())(", ")(()", ")()(", "))(("]
    assert task.inputs(3) == [] and task.inputs(5) == []


def test_bos_x_sep_y_with_a_reference_program():
    task = Task.from_record({
        "alphabet": ["a", "b"], "special": {"bos": "BOS", "sep": "SEP"},
        "domain": {"kind": "bos_x_sep_y", "min_len": 1, "max_len": 3, "reference": REVERSE},
        "readout": {"positions": "after_sep"},
    })  # fmt: skip
    assert task.inputs(2)[1] == ["a", "b", "SEP", "b", "a"]
    assert task.positions_of(["a", "b", "SEP", "b", "a"]) == [3, 4]
    task.check_matches(lm_config())
    with pytest.raises(TaskError, match="domain.max_len"):
        task.check_matches(lm_config(max_seq_len=6, n_ctx=7))


def test_read_out_kinds_by_hand():
    """A model whose output is fixed by b_U alone: scores a=1, b=-1, SEP=2, BOS=0.5."""
    model = Model(lm_config())
    with torch.no_grad():
        model.unembed.b_U.copy_(torch.tensor([1.0, -1.0, 2.0, 0.5]))
    base = {"alphabet": ["a", "b"], "special": {"bos": "BOS", "sep": "SEP"},
            "domain": {"kind": "strings", "max_len": 3}}  # fmt: skip
    inputs = [["a", "b", "a"], ["b"]]
    read = {
        ("all", "argmax", None): [["SEP"] * 3, ["SEP"]],
        ("last", "subset_argmax", ("a", "b")): [["a"], ["a"]],
        ("all", "multilabel", None): [[("a", "SEP")] * 3, [("a", "SEP")]],  # never BOS
        ("last", "multilabel", ("BOS", "b", "a")): [[("a", "BOS")], [("a", "BOS")]],
        ((2, 3), "argmax", None): [["SEP", "SEP"], []],
    }
    for (positions, kind, subset), expected in read.items():
        readout = {"positions": list(positions) if isinstance(positions, tuple) else positions,
                   "kind": kind} | ({"subset": list(subset)} if subset else {})  # fmt: skip
        task = Task.from_record({**base, "readout": readout})
        assert task.read_out(model, inputs) == expected, (positions, kind)


def test_mismatches_are_named_before_any_work():
    config = lm_config()
    cases = [
        ("alphabet", {"alphabet": ["a", "b", "c"]}),
        ("readout.positions", {"readout": {"positions": [1, 9]}}),
        ("readout.subset", {"readout": {"kind": "subset_argmax", "subset": ["z"]}}),
        ("readout.subset", {"readout": {"kind": "multilabel", "subset": ["a", "z"]}}),
        ("readout.subset", {"readout": {"kind": "multilabel", "subset": []}}),
        ("special.bos", {"special": {"bos": "START"}}),
    ]
    for field, change in cases:
        record = {"alphabet": ["a"], "domain": {"kind": "strings", "max_len": 3}, **change}
        with pytest.raises(TaskError, match=field):
            Task.from_record(record).check_matches(config)


def test_is_trained():
    model = Model(lm_config())
    assert is_trained(model)  # LayerNorm: tracr compiles none
    plain = Model(lm_config(normalization=None))
    assert not is_trained(plain)
    plain.records["source"] = {"kind": "trained"}
    assert is_trained(plain)


def test_name_and_description_are_notes_that_round_trip(tmp_path):
    record = {"name": "tomita1", "description": "per prefix: 1 if in 1*", "alphabet": [0, 1],
              "special": {"bos": "BOS"}, "domain": {"kind": "strings", "max_len": 4}}  # fmt: skip
    task = Task.from_record(record)
    assert task.notes == {"name": "tomita1", "description": "per prefix: 1 if in 1*"}
    assert Task.from_record(task.to_record()) == task
    (tmp_path / "t.toml").write_text(task.to_toml())
    assert Task.from_toml(tmp_path / "t.toml") == task
    with pytest.raises(TaskError, match="name: expected a string, got 3"):
        Task.from_record({**record, "name": 3})
