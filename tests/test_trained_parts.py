"""The parts of trained-model distillation, each against a hand-computed or enumerated truth."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import dsl
from distill.trained.classes import natural_classes
from distill.trained.comparisons import argmax_lines, comparison_of, comparisons_named
from distill.trained.domain import domain_of
from distill.trained.interventions import _intervened_program, _pairs
from distill.trained.program import (
    Observations,
    conflicts,
    determining_sets,
    label_of,
    labels_in,
    output_tables,
)
from dsl import ast
from dsl.interpreter import evaluate_arrays


def _observations(columns: dict[str, list], outputs: list) -> Observations:
    codes, values = {}, {}
    for name, column in columns.items():
        table = sorted(set(column))
        codes[name] = np.array([table.index(v) for v in column])
        values[name] = table
    output_table = sorted(set(outputs), key=repr)
    output_codes = np.array([output_table.index(o) for o in outputs])
    return Observations(codes, values, outputs, output_codes, np.ones(len(outputs), bool))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 2)), min_size=1, max_size=40
    )
)
def test_conflicts_count_what_disagrees_with_each_groups_most_common_output(rows):
    obs = _observations(
        {"a": [r[0] for r in rows], "b": [r[1] for r in rows]}, [r[2] for r in rows]
    )
    for names in ([], ["a"], ["b"], ["a", "b"]):
        groups: dict = {}
        for r in rows:
            key = tuple(r[i] for i, n in enumerate(["a", "b"]) if n in names)
            groups.setdefault(key, []).append(r[2])
        expected = sum(len(g) - max(g.count(v) for v in set(g)) for g in groups.values())
        assert conflicts(obs, names) == expected


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.sampled_from("abc"), min_size=1, max_size=20),
    st.lists(st.tuples(st.sampled_from("abcSEP"), st.sampled_from("abxy")), max_size=20),
    st.sampled_from(["copy", "constant", "other"]),
)
def test_keys_seen_only_where_nothing_is_read_keep_the_read_keys_rule(read, unread, rule):
    """Keys seen only at unread positions are free: they take the identity or the constant
    the read keys follow, else the model's own (plain argmax) output there."""
    answer = {
        "copy": lambda v: v,
        "constant": lambda v: "a",
        "other": {"a": "b", "b": "a", "c": "c"}.get,
    }[rule]
    keys = read + [k for k, _ in unread]
    obs = _observations({"v": keys}, [answer(k) for k in read] + [o for _, o in unread])
    obs = dataclasses.replace(obs, read=np.array([True] * len(read) + [False] * len(unread)))
    table = output_tables(obs, ["v"])
    for k in set(read):
        assert table[(k,)] == answer(k)
    identity = all(answer(k) == k for k in read)  # either rule may fit a few read keys
    constant = len({answer(k) for k in read}) == 1
    for k in {k for k, _ in unread} - set(read):
        if identity or constant:
            assert table[(k,)] == (k if identity else answer(read[0]))
        else:  # no rule to keep: the most common of what the model says there
            said = [o for key, o in unread if key == k]
            assert said.count(table[(k,)]) == max(map(said.count, said))


def test_a_key_s_token_is_read_back_from_a_mix_that_holds_it_and_not_from_one_that_does_not():
    """A head's output mixes its keys' values with weights set by where the query is: the
    previous token is read back linearly (with the query's own token, whose embedding the
    mix shares), one read-out per position, where the mix holds it; the token two back,
    which the mix does not hold, is not, nor is anything from the query's token alone."""
    from distill.trained.discover import _decodable, probe_features

    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 3, size=(600, 8))
    embed = rng.normal(size=(3, 6))
    weights = rng.uniform(0.2, 0.8, size=8)  # on the key before, per query position
    before = np.roll(tokens, 1, axis=1)
    z = weights[None, :, None] * embed[before] + (1 - weights[None, :, None]) * embed[tokens]
    has = np.ones(tokens.shape, bool)
    has[:, :2] = False  # no key two back at the first positions
    assert _decodable(probe_features(z, tokens), before, has)
    assert not _decodable(probe_features(z, tokens), np.roll(tokens, 2, axis=1), has)
    # The query's own token alone holds nothing of the token before it.
    assert not _decodable(probe_features(z[..., :0], tokens), before, has)


def test_a_head_that_looks_back_only_at_its_own_token_carries_the_comparison_not_the_token():
    """A head that puts its weight on the key before where that key holds the query's
    token, and on BOS elsewhere, says whether the two are equal but not what the key
    holds: its layer is offered "the token equals the one before", credited to the
    layer's heads that average, and no previous token. A head that carries the token
    itself is offered the token (which later layers compare), and no comparison."""
    from types import SimpleNamespace

    from distill.trained.discover import _probed, _probed_equalities

    rng = np.random.default_rng(1)
    tokens = rng.integers(0, 3, size=(900, 8))
    embed, bos = rng.normal(size=(3, 6)), rng.normal(size=6)
    before = np.roll(tokens, 1, axis=1)
    same = (before == tokens)[..., None]
    gated = np.where(same, embed[before], bos)  # [batch, pos, d]
    other = rng.normal(size=gated.shape)  # a second head averaging something else
    with_bos = lambda z: np.concatenate([np.zeros((len(z), 1, z.shape[-1])), z], 1)  # noqa: E731
    mask = np.ones((900, 9), bool)
    keys = np.arange(8)
    previous = np.broadcast_to(keys[None, :, None] - 1 == keys[None, None, :], (900, 8, 8))
    selectors = [("indices k == q - 1", "select(indices_, indices_, lambda k, q: k == q - 1)",
                  previous)]  # fmt: skip
    coded = SimpleNamespace(codes={"tokens_": tokens.ravel()})
    heads = {"L0.H0": with_bos(gated), "L0.H1": with_bos(other)}
    by_meaning = {}
    assert _probed("L0.H0", heads["L0.H0"], selectors, coded, mask, by_meaning) == []
    made = _probed_equalities(heads, selectors, coded, mask, by_meaning)
    assert [c.name for c in made] == ["sel_l0h0_prev", "tokens_l0h0_prev", "eq_tokens_l0h0_prev"]
    assert made[-1].component == "L0.H0, L0.H1" and made[1].component is None
    assert made[-1].source.startswith("sequence_map(lambda x, y: 1 if x == y else 0, tokens_,")
    # A later layer reads the comparison: it is not offered again.
    assert _probed_equalities(heads, selectors, coded, mask, by_meaning) == []

    carrying = with_bos(0.6 * embed[before] + 0.4 * embed[tokens])
    by_meaning = {}
    assert [c.name for c in _probed("L0.H0", carrying, selectors, coded, mask, by_meaning)] == [
        "sel_l0h0_prev", "tokens_l0h0_prev"]  # fmt: skip
    assert _probed_equalities({"L0.H0": carrying}, selectors, coded, mask, by_meaning) == []


def test_a_token_two_back_that_only_a_layer_s_heads_together_carry_is_credited_to_them():
    """Two heads each carry one coordinate of the token two back: neither alone tells all
    three tokens apart, together they do. The layer is offered that token (no comparison:
    later layers compare it with the token), credited to both heads. A later head then
    counts each combination of the last two tokens (the last three take 27, more than a
    head is offered), each named apart although the tokens are no identifiers."""
    from types import SimpleNamespace

    from distill.trained.candidates import Candidate
    from distill.trained.discover import _probed, _probed_equalities, _read_head, _windows

    rng = np.random.default_rng(2)
    tokens = rng.integers(0, 3, size=(900, 8))
    two_back = np.roll(tokens, 2, axis=1)
    first, second = np.array([0.0, 1.0, 1.0]), np.array([0.0, 0.0, 1.0])
    with_bos = lambda z: np.concatenate([np.zeros((len(z), 1, 1)), z[..., None]], 1)  # noqa: E731
    heads = {"L0.H0": with_bos(first[two_back]), "L0.H1": with_bos(second[two_back])}
    mask = np.ones((900, 9), bool)
    keys = np.arange(8)
    selectors = [
        (f"indices k == q - {d}", f"select(indices_, indices_, lambda k, q: k == q - {d})",
         np.broadcast_to(keys[None, :, None] - d == keys[None, None, :], (900, 8, 8)))
        for d in (1, 2)
    ]  # fmt: skip
    coded = SimpleNamespace(codes={"tokens_": tokens.ravel()})
    by_meaning = {}
    for component, z in heads.items():
        assert _probed(component, z, selectors[1:], coded, mask, by_meaning) == []
    made = _probed_equalities(heads, selectors[1:], coded, mask, by_meaning)
    assert [c.name for c in made] == ["sel_l0h0_prev2", "tokens_l0h0_prev2"]
    assert made[1].component == "L0.H0, L0.H1"

    # A later head counting over the prefix: one count per combination seen, names apart.
    text = np.array(["(", ")", "[["], dtype=object)
    values = {
        "tokens_": text[tokens],
        "tokens_prev": np.where(keys >= 1, text[np.roll(tokens, 1, 1)], "<default>"),
        "tokens_prev2": np.where(keys >= 2, text[two_back], "<default>"),
    }
    definitions = [
        Candidate("tokens_", "tokens", None),
        Candidate("sel_p", "select(indices_, indices_, lambda k, q: k == q - 1)", "L0.H0"),
        Candidate("tokens_prev", "aggregate(sel_p, tokens_, default='<default>')", "L0.H0"),
        made[0],
        Candidate(
            "tokens_prev2", "aggregate(sel_l0h0_prev2, tokens_, default='<default>')", "L0.H0"
        ),
    ]
    categorical = ["tokens_", "tokens_prev", "tokens_prev2"]
    windows = _windows(definitions, categorical, values, mask)
    assert [(w, len(seen)) for w, seen in windows] == [(("tokens_", "tokens_prev"), 9)]
    prefix = np.broadcast_to(keys[None, None, :] <= keys[None, :, None], (900, 8, 8))
    pattern = np.zeros((900, 9, 9))
    pattern[:, 1:, 1:] = prefix / prefix.sum(-1, keepdims=True)
    finding, counted = _read_head(
        "L1.H0", pattern, [("indices <=", "select(indices_, indices_, <=)", prefix)],
        categorical, values, mask, windows=windows,
    )  # fmt: skip
    windowed = [c.name for c in counted if c.name.startswith("n_last2_")]
    assert len(windowed) == 9 == len(set(windowed))


def test_the_fewest_determining_variables_come_first():
    # out = a xor b; c is noise; d = a xor b itself.
    rows = list(itertools.product([0, 1], [0, 1], [0, 1]))
    columns = {
        "a": [r[0] for r in rows],
        "b": [r[1] for r in rows],
        "c": [r[2] for r in rows],
        "d": [r[0] ^ r[1] for r in rows],
    }
    obs = _observations(columns, [r[0] ^ r[1] for r in rows])
    sets = list(determining_sets(obs, list(columns), preferred=[]))
    assert sets[0] == ["d"] and ["a", "b"] in sets
    assert all(conflicts(obs, s) == 0 for s in sets)
    assert not any(set(s) > {"d"} for s in sets)  # minimal: no superset of one found


def test_a_two_valued_table_of_two_numbers_that_is_a_comparison_gets_its_name():
    entries = {(x, y): (1 if x < y else 0) for x in range(5) for y in range(5) if x + y <= 6}
    fn = comparison_of(ast.Table(tuple(entries.items())))
    assert fn is not None
    program = dsl.parse(
        "out = sequence_map({}, tokens, tokens)\nreturn out\n".replace(
            "{}", "lambda x, y: 1 if x < y else 0"
        )
    )
    assert fn == program.definitions[0].node.fn
    # Not a comparison: one entry flipped.
    flipped = {**entries, (0, 0): 1}
    assert comparison_of(ast.Table(tuple(flipped.items()))) is None
    # Three values: not two-valued.
    assert comparison_of(ast.Table((((0, 1), 0), ((1, 0), 1), ((1, 1), 2)))) is None
    text = "n = selector_width(select(tokens, tokens, ==))\nout = sequence_map({(1, 1): 'x', (1, 2): 'y', (2, 1): 'x', (2, 2): 'x'}, n, n)\nreturn out\n"
    named = comparisons_named(dsl.parse(text))
    assert "lambda x, y: 'y' if x < y else 'x'" in dsl.to_source(named).replace('"', "'")


def test_an_intervention_recomputes_what_follows_the_patched_variable():
    # c counts a's so far; neg marks c > 1; n counts marked positions so far. Patching c
    # at position 1 with 5 marks position 1, so n counts it at every later position.
    program = dsl.parse(
        'c = selector_width(select(indices, indices, <=) & select(tokens, tokens, lambda k, q: k == "a"))\n'
        "neg = map(lambda x: 1 if x > 1 else 0, c)\n"
        "n = selector_width(select(indices, indices, <=) & select(neg, neg, lambda k, q: k == 1))\n"
        "return n\n"
    )
    from distill.models.task import Task

    task = Task.from_record(
        {"alphabet": ["a", "b"], "domain": {"kind": "strings", "max_len": 4},
         "readout": {"positions": "all", "kind": "argmax"}}
    )  # fmt: skip
    firsts, seconds = [list("bbbb")], [list("aaab")]
    # The donor's c at position 1 is 2 (> 1): marked there, and counted from there on.
    c_only = {"c": frozenset({"L0.H0"})}
    read_outs, held = _intervened_program(program, c_only, firsts, seconds, [1], task)
    assert read_outs == [[0, 1, 1, 1]]
    # c's head keeps the base's output wherever c keeps its value: everywhere but there.
    assert held["L0.H0"].tolist() == [[True, False, True, True]]
    # n patched too (at position 1 only: the donor's n there is 1): the later positions
    # still follow the patched c, so n's head is left to the model there.
    both = {"c": frozenset({"L0.H0"}), "n": frozenset({"L1.H0"})}
    read_outs, held = _intervened_program(program, both, firsts, seconds, [1], task)
    assert read_outs == [[0, 1, 1, 1]]
    assert held["L0.H0"].tolist() == [[True, False, True, True]]
    assert held["L1.H0"].tolist() == [[True, False, False, False]]
    # A head credited with both is held only where both keep their values.
    shared = {"c": frozenset({"L0.H0"}), "n": frozenset({"L0.H0"})}
    _, held = _intervened_program(program, shared, firsts, seconds, [1], task)
    assert held["L0.H0"].tolist() == [[True, False, False, False]]
    assert evaluate_arrays(program, firsts).outputs() == [[0, 0, 0, 0]]


def test_clear_clusters_are_cut_and_a_continuum_is_not():
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    points = np.concatenate([c + rng.normal(scale=0.1, size=(20, 2)) for c in centres])
    labels = natural_classes(points)
    assert labels is not None and len(set(labels.tolist())) == 3
    for k in range(3):
        assert len(set(labels[20 * k : 20 * (k + 1)].tolist())) == 1
    line = np.stack([np.linspace(0, 1, 50), np.zeros(50)], axis=1)
    assert natural_classes(line) is None


def test_multi_label_sets_read_back_from_their_labels():
    values = ("(", ")", "EOS", "a,b")
    for size in range(len(values) + 1):
        for chosen in itertools.combinations(values, size):
            assert labels_in(label_of(chosen), values) == chosen


def test_n_is_the_longest_length_whose_domain_fits_the_budget():
    from distill.models.task import Task

    task = Task.from_record(
        {"alphabet": ["a", "b", "c"], "domain": {"kind": "strings", "max_len": 20},
         "readout": {"positions": "all", "kind": "argmax"}}
    )  # fmt: skip
    total = lambda n: sum(3**k for k in range(1, n + 1))  # noqa: E731
    for budget in (3, 12, 100, 2_000_000):
        n = domain_of(task, budget).exhaustive_up_to
        assert total(n) <= budget < total(n + 1)


def test_an_approximation_keeps_few_variables_and_the_least_disagreement_they_allow():
    from distill.trained.program import MAX_SUBSET, fewest_for

    rows = list(itertools.product([0, 1], [0, 1], [0, 1], [0, 1], [0, 1], [0, 1]))
    columns = {f"v{i}": [r[i] for r in rows] for i in range(6)}
    outputs = [r[0] ^ r[1] for r in rows]
    outputs[5] ^= 1  # only all six variables single this row out
    obs = _observations(columns, outputs)
    kept = fewest_for(obs, list(columns))
    # xor first (no one variable lowers the disagreement more), then what narrows row 5 down
    assert len(kept) == MAX_SUBSET and {"v0", "v1"} <= set(kept)
    assert conflicts(obs, kept) == 1 == conflicts(obs, ["v0", "v1"])


def _most_frequent_program(letters: list[str], priority: list[str], largest_count: int):
    """(program, most_frequent): the table "the most frequent letter, ties to the earliest
    in `priority`" over counts 0..largest_count, as argmax_lines writes it, after the
    letters' counts; and that rule in Python, the truth to hold it to."""

    def most_frequent(counts):
        return max(letters, key=lambda x: (counts[letters.index(x)], -priority.index(x)))

    counts_seen = itertools.product(range(largest_count + 1), repeat=len(letters))
    table = {key: most_frequent(key) for key in counts_seen}
    names = [f"n_{x}" for x in letters]
    lines = argmax_lines("output", names, table)
    assert lines is not None
    counts = [
        f'{n} = selector_width(select(tokens, tokens, lambda k, q: k == "{x}"))'
        for n, x in zip(names, letters)
    ]
    return dsl.parse("\n".join([*counts, *lines, "return output", ""])), most_frequent


@settings(max_examples=25, deadline=None)
@given(
    st.permutations(["a", "b", "c", "d"]),
    st.lists(st.text("abcd", min_size=1, max_size=9), min_size=1, max_size=20),
)
def test_the_largest_of_counts_with_a_tie_order_gets_a_closed_form(priority, strings):
    """A table of "the most frequent letter" over counts 0..4 becomes definitions that
    give that letter on any string (counts past the table's included)."""
    letters = ["a", "b", "c", "d"]
    program, most_frequent = _most_frequent_program(letters, priority, 4)
    outputs = evaluate_arrays(program, [list(s) for s in strings]).outputs()
    for string, output in zip(strings, outputs):
        assert output == [most_frequent([string.count(x) for x in letters])] * len(string)


def test_a_table_that_is_not_the_largest_of_its_variables_gets_no_argmax_form():
    letters = ["a", "b", "c"]
    smallest = {
        key: letters[min(range(3), key=lambda i: (key[i], i))]
        for key in itertools.product(range(4), repeat=3)
    }
    assert argmax_lines("output", ["x", "y", "z"], smallest) is None
    largest = {key: letters[max(range(3), key=lambda i: (key[i], -i))] for key in smallest}
    largest[(3, 0, 0)] = "b"  # one entry off: the model's own mistake stays a table
    assert argmax_lines("output", ["x", "y", "z"], largest) is None


def test_the_largest_of_counts_is_put_in_words_with_its_tie_order():
    from distill.trained.report import in_words

    program, _ = _most_frequent_program(["a", "b", "c"], ["c", "a", "b"], 3)
    assert in_words(program)["output"] == (
        'the one whose count is largest: "c" (n_c), "a" (n_a), "b" (n_b); '
        "a tie goes to the one listed first"
    )


def test_a_variable_that_changes_only_with_the_length_is_intervened_across_lengths():
    inputs = [list(x) for n in (2, 3, 4) for x in itertools.product("ab", repeat=n)]
    values = np.zeros((len(inputs), 4, 1), dtype=object)
    for i, tokens in enumerate(inputs):
        values[i, : len(tokens), 0] = len(tokens)  # the length, at every position
    same, different = _pairs(values, inputs, seed=0)
    assert same and all(len(inputs[a]) == len(inputs[b]) for a, b, _ in same)
    assert len(different) > 100
    for a, b, q in different:
        assert len(inputs[b]) < len(inputs[a]) and q < len(inputs[b])  # a shorter donor
        assert inputs[a][q] == inputs[b][q]


def test_the_largest_of_many_counts_gets_its_tie_order_from_the_ties_seen():
    """Seven labels (past any search over orders): the order is read off the ties."""
    letters = list("abcdefg")
    program, most_frequent = _most_frequent_program(letters, list("gcaebfd"), 2)
    strings = ["gc", "ca", "ae", "eb", "bf", "fd", "dg", "abcdefg", "ddaa", "ffbbcc"]
    outputs = evaluate_arrays(program, [list(s) for s in strings]).outputs()
    for string, output in zip(strings, outputs):
        assert output[0] == most_frequent([string.count(x) for x in letters])


def test_an_approximate_largest_of_counts_takes_labels_and_ties_from_most_positions():
    from distill.trained.program import argmax_table

    letters = ["a", "b", "c"]
    keys = list(itertools.product(range(4), repeat=3))
    outputs = [max(letters, key=lambda x: (key[letters.index(x)], -"bca".index(x))) for key in keys]
    flipped = {5, 17, 40}  # the model's mistakes: a label no argmax gives there
    outputs = [
        ("a" if out != "a" else "b") if i in flipped else out for i, out in enumerate(outputs)
    ]
    obs = _observations(
        {f"n_{x}": [key[i] for key in keys] for i, x in enumerate(letters)}, outputs
    )
    table, disagreements = argmax_table(obs, ["n_a", "n_b", "n_c"])
    assert disagreements == len(flipped)
    assert table == {
        key: max(letters, key=lambda x: (key[letters.index(x)], -"bca".index(x))) for key in keys
    }


def test_the_largest_of_counts_at_a_realistic_size_follows_the_rule_on_fresh_inputs():
    """Vocab 12, lengths 9-12 (a realistic held-out size): the counts so far and the most
    frequent letter so far at every position of 3,000 sampled strings are the traced
    observations; the program built from them gives the rule's letter on fresh strings."""
    import random

    from distill.trained.candidates import Candidate
    from distill.trained.program import argmax_table, build

    letters = list("abcdefghijkl")
    priority = list("lkjihgfedcba")  # a tie goes to the later letter
    rng = random.Random(0)

    def most_frequent(counts):
        return max(letters, key=lambda x: (counts[letters.index(x)], -priority.index(x)))

    def counts_so_far(string):
        return [[string[: j + 1].count(x) for x in letters] for j in range(len(string))]

    traced = ["".join(rng.choices(letters, k=rng.randint(9, 12))) for _ in range(3000)]
    rows = [c for s in traced for c in counts_so_far(s)]
    names = [f"n_{x}" for x in letters]
    obs = _observations({n: [r[i] for r in rows] for i, n in enumerate(names)},
                        [most_frequent(r) for r in rows])  # fmt: skip
    table, disagreements = argmax_table(obs, names)
    assert disagreements == 0
    counts = [
        Candidate(n, f'selector_width(select(indices, indices, <=) & select(tokens, tokens, lambda k, q: k == "{x}"))', "L0.H0")
        for n, x in zip(names, letters)
    ]  # fmt: skip
    program = build(counts, names, table)
    assert not any(isinstance(getattr(d.node, "fn", None), ast.Table) for d in program.definitions)
    fresh = ["".join(rng.choices(letters, k=12)) for _ in range(500)]
    outputs = evaluate_arrays(program, [list(s) for s in fresh]).outputs()
    for string, output in zip(fresh, outputs):
        assert output == [most_frequent(c) for c in counts_so_far(string)]


def _sorting_program(order: list[str], longest: int):
    """(program, names): the read-out "the input sorted by `order`" tabulated over the
    position and the letters' counts of every string up to `longest`, built as the
    pipeline builds it (build writes the closed form where the table is one)."""
    from distill.trained.candidates import Candidate
    from distill.trained.program import build

    letters = sorted(order)
    names = [f"n_{x}" for x in letters]
    table = {}
    for n in range(1, longest + 1):
        for string in itertools.product(letters, repeat=n):
            ranked = sorted(string, key=order.index)
            for i in range(n):
                table[(i, *(string.count(x) for x in letters))] = ranked[i]
    counts = [
        Candidate(n, f'selector_width(select(indices, indices, true) & select(tokens, tokens, lambda k, q: k == "{x}"))', "L0.H0")
        for n, x in zip(names, letters)
    ]  # fmt: skip
    position = Candidate("indices_", "indices", None)  # the search's name for the positions
    return build([position, *counts], ["indices_", *names], table), ["indices_", *names]


def _assert_sorts(order: list[str], longest: int, strings: list[str]) -> None:
    """The program built from the table up to `longest` has no table left and sorts
    `strings` (any length) in `order`."""
    program, _ = _sorting_program(order, longest)
    assert not any(isinstance(getattr(d.node, "fn", None), ast.Table) for d in program.definitions)
    outputs = evaluate_arrays(program, [list(s) for s in strings]).outputs()
    for string, output in zip(strings, outputs):
        assert output == sorted(string, key=order.index)


@settings(max_examples=20, deadline=None)
@given(
    st.permutations(["a", "b", "c", "d"]),
    st.lists(st.text("abcd", min_size=1, max_size=10), min_size=1, max_size=20),
)
def test_a_sort_by_counts_table_gets_a_closed_form_that_sorts_any_string(order, strings):
    """Tabulated on strings up to length 4, the read-out becomes running totals that sort
    strings of any length (up to 10 here) in the same order."""
    _assert_sorts(order, 4, strings)


def test_a_table_that_does_not_sort_gets_no_sorting_form_and_an_approximation_counts_it():
    from distill.trained.program import sorting_approximation
    from distill.trained.sorting import sorting_lines

    letters = ["a", "b", "c"]
    table = {}
    for n in range(1, 5):
        for string in itertools.product(letters, repeat=n):
            for i, x in enumerate(sorted(string)):
                table[(i, *(string.count(y) for y in letters))] = x
    names = ["indices_", "n_a", "n_b", "n_c"]
    assert sorting_lines("output", names, table) is not None
    keys = list(table)
    mistakes = {keys[3], keys[50], keys[90]}  # the model's own: another letter there
    wrong = {k: ("b" if v != "b" else "c") if k in mistakes else v for k, v in table.items()}
    assert sorting_lines("output", names, wrong) is None
    obs = _observations(
        {n: [k[i] for k in keys] for i, n in enumerate(names)}, list(wrong.values())
    )
    approximation, disagreements = sorting_approximation(obs, names)
    assert disagreements == len(mistakes)
    assert approximation == table


def test_a_sorting_read_out_is_put_in_words():
    from distill.trained.pipeline import _without_aliases
    from distill.trained.report import in_words

    program, _ = _sorting_program(["c", "a", "b"], 3)
    assert in_words(_without_aliases(program))["output"] == (
        "sorts by counting: "
        '"c" while the position is below n_c, then "a" while the position is below n_c + n_a, '
        'then "b"'
    )


def test_of_variables_that_decide_as_much_the_one_with_fewer_values_is_kept():
    """A count and its yes-or-no (any above 0) both decide "the input holds a b": the
    search keeps the yes-or-no (dyck's "ever negative"), whichever is listed first."""
    from distill.trained.program import fewest_for

    counts = [0, 1, 2, 3, 0, 4, 2, 0]
    outputs = ["no" if c == 0 else "yes" for c in counts]
    obs = _observations(
        {
            "n_b": counts,
            "any_n_b": [int(c > 0) for c in counts],
            "n_a": [3 - c % 3 for c in counts],
        },
        outputs,
    )
    assert fewest_for(obs, ["n_b", "any_n_b", "n_a"]) == ["any_n_b"]


def test_of_approximations_the_one_agreeing_most_on_fresh_inputs_is_kept():
    """A "model" that gives the histogram except on one string. Two approximations: a table
    over the count and the position (listed first; it also holds a mistake read off a
    traced quirk, and says nothing past the traced positions), and one over the count
    alone; judged on fresh inputs up to length 7, the count's closed form is kept, and it
    is the histogram on strings longer than any traced."""
    import random
    from types import SimpleNamespace

    from distill.trained.candidates import Candidate
    from distill.trained.pipeline import _best_on_held_out, _held_out

    letters = ["a", "b", "c"]
    quirk = ("a", "b", "a")  # where the model says 3 at position 0

    def histogram(tokens):
        return [tokens.count(t) for t in tokens]

    def read_out(_model, inputs):
        return [[3, *histogram(x)[1:]] if tuple(x) == quirk else histogram(x) for x in inputs]

    task = SimpleNamespace(read_out=read_out, positions_of=lambda x: range(1, len(x) + 1))
    domain = SimpleNamespace(
        min_len=1,
        longest=7,
        sample=lambda n, k, seed, model: [
            random.Random(f"{seed}:{n}:{i}").choices(letters, k=n) for i in range(k)
        ],
    )
    # Its outputs are numbers (the counts), compared value by value.
    model = SimpleNamespace(config=SimpleNamespace(vocab=tuple(letters), output_kind="numerical"))
    found = SimpleNamespace(definitions=[
        Candidate("tokens_", "tokens", None),
        Candidate("indices_", "indices", None),
        Candidate("n_same", "selector_width(select(tokens_, tokens_, ==))", "L0.H0"),
    ])  # fmt: skip
    traced = [list(x) for n in range(1, 4) for x in itertools.product(letters, repeat=n)]
    rows = [(i, count, out) for x in traced for i, (count, out) in
            enumerate(zip(histogram(x), read_out(None, [x])[0]))]  # fmt: skip
    by_count = {(c,): c for _, c, _ in rows}
    memorised = {(c, i): out for i, c, out in rows}
    memorised[(1, 0)] = 3  # a quirk taken for the rule
    held_out = _held_out(domain, model, 0)
    options = [(["n_same", "indices_"], memorised), (["n_same"], by_count)]
    _, _, completed = _best_on_held_out(options, found, model, task, held_out, domain.longest)
    fresh = [list(x) for x in itertools.product(letters, repeat=6)]
    assert dsl.evaluate(completed, fresh) == [histogram(x) for x in fresh]


def test_a_dyck_depth_and_whether_it_was_ever_negative_are_put_in_words():
    from distill.trained.report import in_words

    program = dsl.parse(
        "sel = select(indices, indices, <=)\n"
        'n_open = selector_width(sel & select(tokens, tokens, lambda k, q: k == "("))\n'
        'n_close = selector_width(sel & select(tokens, tokens, lambda k, q: k == ")"))\n'
        "below0 = sequence_map(lambda x, y: 1 if x - y < 0 else 0, n_open, n_close)\n"
        "n_neg = selector_width(sel & select(below0, below0, lambda k, q: k == 1))\n"
        "n_not = selector_width(sel & select(below0, below0, lambda k, q: k == 0))\n"
        "ever = map(lambda x: 1 if x > 0 else 0, n_neg)\n"
        "return ever\n"
    )
    words = in_words(program)
    depth = 'the count of "(" minus the count of ")"'
    assert words["below0"] == f"{depth} so far (itself included) is below 0"
    assert words["n_neg"] == f"counts positions so far (itself included) where {depth} is below 0"
    assert (
        words["n_not"] == f"counts positions so far (itself included) where {depth} is at least 0"
    )
    assert words["ever"] == (
        f"whether there is any position so far (itself included) where {depth} is below 0"
    )


@settings(max_examples=5, deadline=None)
@given(
    st.permutations(list("abcdefgh")),
    st.lists(st.text("abcdefgh", min_size=1, max_size=12), min_size=1, max_size=10),
)
def test_sorting_by_more_counts_than_orders_tried_is_found_run_by_run(order, strings):
    """Eight letters (past the 6! orders tried): the order is built run by run, and the
    closed form sorts strings longer than any tabulated."""
    _assert_sorts(order, 3, strings)


def test_a_read_out_table_past_what_a_program_may_hold_is_not_built():
    """A table memorising 150,000 keys would be a source past dsl.limits.MAX_SOURCE_BYTES:
    build says so (None) instead of failing the run."""
    from distill.trained.candidates import Candidate
    from distill.trained.program import build

    names = ["indices_", "n"]
    definitions = [Candidate("indices_", "indices", None), Candidate("n", "indices", None)]
    table = {(i, 7 * i % 1000): i % 3 for i in range(150_000)}
    assert build(definitions, names, table) is None
    small = {key: value for key, value in list(table.items())[:100]}
    assert build(definitions, names, small) is not None


def test_sorting_at_a_realistic_size_follows_the_rule_on_fresh_inputs():
    """Vocab 12, lengths 9-12: the position and the twelve counts of 3,000 sampled strings
    are the traced observations, a tenth of their positions answered wrongly (a model's
    mistakes); the approximation recovers the sort (its disagreements are exactly those
    mistakes), and the program built from it sorts fresh strings."""
    import random

    from distill.trained.candidates import Candidate
    from distill.trained.program import build, sorting_approximation

    letters = list("abcdefghijkl")
    order = list("lkjihgfedcba")  # sorted from the last letter down
    rng = random.Random(1)
    traced = ["".join(rng.choices(letters, k=rng.randint(9, 12))) for _ in range(3000)]
    rows, outputs, mistakes = [], [], 0
    for string in traced:
        counts = [string.count(x) for x in letters]
        for i, right in enumerate(sorted(string, key=order.index)):
            rows.append((i, *counts))
            wrong = rng.random() < 0.1
            outputs.append(letters[(letters.index(right) + 1) % 12] if wrong else right)
            mistakes += wrong
    names = ["indices_", *(f"n_{x}" for x in letters)]
    obs = _observations({n: [r[i] for r in rows] for i, n in enumerate(names)}, outputs)
    table, disagreements = sorting_approximation(obs, names)
    assert disagreements == mistakes
    counts = [
        Candidate(f"n_{x}", f'selector_width(select(indices, indices, true) & select(tokens, tokens, lambda k, q: k == "{x}"))', "L0.H0")
        for x in letters
    ]  # fmt: skip
    program = build([Candidate("indices_", "indices", None), *counts], names, table)
    assert not any(isinstance(getattr(d.node, "fn", None), ast.Table) for d in program.definitions)
    fresh = ["".join(rng.choices(letters, k=12)) for _ in range(500)]
    outputs = evaluate_arrays(program, [list(s) for s in fresh]).outputs()
    assert outputs == [sorted(s, key=order.index) for s in fresh]


def _pointer_observations(inputs, answers, read=None, extra=()):
    """Observations of `answers` (per input, per position) over tokens, indices and the
    length, as discovery's candidates name them, and `extra` (name, source) variables."""
    from distill.trained.candidates import Candidate, DefinitionValues
    from distill.trained.program import observations_of

    base = [
        Candidate("tokens_", "tokens", None),
        Candidate("indices_", "indices", None),
        Candidate("n_", "selector_width(select(indices_, indices_, true))", None),
        *(Candidate(name, source, None) for name, source in extra),
    ]
    values = DefinitionValues(inputs).evaluate(base, as_arrays=True)
    outputs = [a for row in answers for a in row]
    read = np.ones(len(outputs), bool) if read is None else np.array(read)
    names = [c.name for c in base if not c.source.startswith("select(")]
    return base, observations_of(values, inputs, names, outputs, read)


def _pointed_tokens(base, made, inputs) -> list[list]:
    from distill.trained.candidates import DefinitionValues

    values = DefinitionValues(inputs).evaluate(base + made)["tokens_at_out"]
    return [list(row[: len(x)]) for row, x in zip(values, inputs)]


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_a_read_out_that_copies_the_token_at_a_position_of_the_index_and_length_is_found(data):
    from distill.trained.read_out_pointer import read_out_pointer

    # Any position chosen per (index, length): reverse, rotations, or arbitrary ones.
    where = {(i, n): data.draw(st.integers(0, n - 1)) for n in range(1, 5) for i in range(n)}
    inputs = [list(x) for n in range(1, 5) for x in itertools.product("abc", repeat=n)]
    answers = [[x[where[i, len(x)]] for i in range(len(x))] for x in inputs]
    base, obs = _pointer_observations(inputs, answers)
    made = read_out_pointer(
        obs, inputs, ["tokens_", "indices_", "n_"], ["L0.H0", "L1.H0"], causal=False
    )
    assert _pointed_tokens(base, made, inputs) == answers
    # The token it reads is credited to every head (patched together), nothing else is.
    assert [(c.name, c.component) for c in made if c.component] == [
        ("tokens_at_out", "L0.H0, L1.H0")
    ]


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_a_model_wrong_on_a_few_answers_gets_the_pointer_most_of_them_show(data):
    """Reverse, with up to 1% of the answers wrong (an imperfect model): no position holds
    every answer of its group, the one holding most is taken; with more wrong, none."""
    from distill.trained.read_out_pointer import APPROXIMATE_AT_LEAST, read_out_pointer

    inputs = [list(x) for n in range(1, 6) for x in itertools.product("abc", repeat=n)]
    reversed_ = [x[::-1] for x in inputs]
    where = [(row, i) for row, x in enumerate(inputs) for i in range(len(x))]
    allowed = int(len(where) * (1 - APPROXIMATE_AT_LEAST))
    wrong = data.draw(st.sets(st.sampled_from(where), min_size=1, max_size=allowed))
    answers = [list(row) for row in reversed_]
    for row, i in wrong:
        answers[row][i] = data.draw(st.sampled_from(sorted(set("abc") - {answers[row][i]})))
    base, obs = _pointer_observations(inputs, answers)
    names = ["tokens_", "indices_", "n_"]
    made = read_out_pointer(obs, inputs, names, ["L0.H0"], causal=False)
    assert _pointed_tokens(base, made, inputs) == reversed_
    # Twice as many wrong answers as allowed: a pointer would hold too few of them.
    more = set(where[: 2 * allowed + 2]) | wrong
    answers = [list(row) for row in reversed_]
    for row, i in more:
        answers[row][i] = next(t for t in "abc" if t != answers[row][i])
    _, obs = _pointer_observations(inputs, answers)
    assert read_out_pointer(obs, inputs, names, ["L0.H0"], causal=False) == []


def test_a_separator_s_index_is_offered_from_its_position_on():
    from distill.trained.candidates import Candidate, DefinitionValues
    from distill.trained.read_out_pointer import landmarks

    inputs = [
        list(x) + ["SEP"] + list(x) for n in range(1, 4) for x in itertools.product("ab", repeat=n)
    ]
    made = landmarks(inputs)
    assert [c.name for c in made] == ["sel_at_SEP", "index_of_SEP"]
    base = [Candidate("tokens_", "tokens", None), Candidate("indices_", "indices", None)]
    values = DefinitionValues(inputs).evaluate(base + made)["index_of_SEP"]
    for x, row in zip(inputs, values):
        k = x.index("SEP")
        assert list(row[: len(x)]) == [-1] * k + [k] * (len(x) - k)
    # A token some input lacks, or holds twice, is no landmark.
    assert landmarks([["a", "SEP"], ["b"]]) == [] and landmarks([["a", "a"], ["a"]]) == []


def test_no_read_out_pointer_where_no_one_position_holds_the_answer():
    from distill.trained.read_out_pointer import read_out_pointer

    inputs = [list(x) for n in range(1, 5) for x in itertools.product("abc", repeat=n)]
    names = ["tokens_", "indices_", "n_"]
    # Sorted: the token at index i comes from a position the tokens decide, not (i, n).
    _, obs = _pointer_observations(inputs, [sorted(x) for x in inputs])
    assert read_out_pointer(obs, inputs, names, ["L0.H0"], causal=False) == []
    # An answer that is no token of the input (a count) is not copied from anywhere.
    _, obs = _pointer_observations(
        inputs, [[x[: i + 1].count("a") for i in range(len(x))] for x in inputs]
    )
    assert read_out_pointer(obs, inputs, names, ["L0.H0"], causal=False) == []


def test_a_read_out_pointer_answers_at_read_positions_only():
    from distill.trained.read_out_pointer import read_out_pointer

    # Copy, causal and teacher forced: "x SEP y" with y = x, the next token of y read out
    # from SEP on (it is also the next input token, which a causal model cannot read).
    # Before SEP nothing is read: the answers there are noise.
    inputs = [[*x, "SEP", *x] for n in range(1, 4) for x in itertools.product("ab", repeat=n)]
    rows, read = [], []
    for x in inputs:
        half = len(x) // 2
        rows.append([x[i - half] if i >= half else "b" for i in range(len(x) - 1)] + ["EOS"])
        read += [half <= i < len(x) - 1 for i in range(len(x))]
    base, obs = _pointer_observations(inputs, rows, read)
    made = read_out_pointer(obs, inputs, ["tokens_", "indices_", "n_"], ["L0.H0"], causal=True)
    for x, row, pointed in zip(inputs, rows, _pointed_tokens(base, made, inputs)):
        half = len(x) // 2
        assert pointed[half:-1] == row[half:-1] == x[:half]
    # Without the causal rule the next input token holds each answer too: no one position.
    assert (
        read_out_pointer(obs, inputs, ["tokens_", "indices_", "n_"], ["L0.H0"], causal=False) == []
    )


def test_a_read_out_pointer_is_credited_to_the_heads_whose_own_pointer_it_is():
    from distill.trained.read_out_pointer import read_out_pointer

    inputs = [list(x) for n in range(1, 5) for x in itertools.product("abc", repeat=n)]
    reversed_ = [x[::-1] for x in inputs]
    heads = ["L0.H0", "L1.H0", "L2.H0"]
    extra = [
        # Reverse where it points inside the input; past the start at length 1 (selects
        # nothing there: the answer comes another way), so it still counts as the same.
        ("at_l1h0", "sequence_map(lambda i, n: n - i - 1 if n > 1 else -1, indices_, n_)"),
        ("at_l2h0", "map(lambda i: 0, indices_)"),  # the first token: another pointer
    ]
    _, obs = _pointer_observations(inputs, reversed_, extra=extra)
    names = ["tokens_", "indices_", "n_", "at_l1h0", "at_l2h0"]
    made = read_out_pointer(obs, inputs, names, heads, causal=False)
    assert [c.component for c in made if c.component] == ["L1.H0"]
    # With no head's pointer the same, every head is credited.
    _, obs = _pointer_observations(inputs, reversed_, extra=extra[1:])
    made = read_out_pointer(
        obs, inputs, ["tokens_", "indices_", "n_", "at_l2h0"], heads, causal=False
    )
    assert [c.component for c in made if c.component] == ["L0.H0, L1.H0, L2.H0"]


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 4), st.integers(1, 4), st.integers(0, 3), st.integers(0, 3), st.booleans())
def test_a_table_that_is_a_residue_of_its_variables_is_written_as_one(m, n, r, q, summed):
    from distill.trained.comparisons import residue_text

    r, q = r % m, q % n
    if summed:  # a residue of the sum: parity of a total
        m = max(m, 2)

        def rule(x, y):
            return (x + y) % m == r % m
    else:
        if m * n == 1:
            m = 2

        def rule(x, y):
            return x % m == r % m and y % n == q

    entries = [((x, y), "T" if rule(x, y) else "F") for x in range(9) for y in range(9)]
    text = residue_text(entries)
    assert text is not None
    # The written lambda, run by the language itself, gives every entry.
    program = dsl.parse(f"f = sequence_map({text}, tokens, indices)\nreturn f\n")
    inputs = [[0] * y + [x] for (x, y), _ in entries]
    got = [out[-1] for out in dsl.evaluate(program, inputs)]
    assert got == [v for _, v in entries]


def test_no_residue_where_the_table_is_not_one():
    from distill.trained.comparisons import residue_text

    assert residue_text([((x, y), x < y) for x in range(6) for y in range(6)]) is None
    # Three values, or a residue that holds only on most entries, are not one either.
    assert residue_text([((x, y), (x + y) % 3) for x in range(6) for y in range(6)]) is None
    almost = [((x, y), (x + y) % 2 == 0 or (x, y) == (5, 4)) for x in range(6) for y in range(6)]
    assert residue_text(almost) is None


_VALUES = st.one_of(
    st.integers(-3, 40), st.sampled_from(["a", "b", "{(,)}", "EOS"]), st.booleans(), st.none()
)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 3), st.data())
def test_build_puts_in_the_tables_the_parser_would_read_from_their_text(width, data):
    from distill.trained.candidates import Candidate
    from distill.trained.program import build, table_lines

    keys = data.draw(
        st.lists(
            st.tuples(*[st.one_of(st.integers(0, 5), st.sampled_from(["a", "b"]))] * width),
            min_size=1,
            max_size=30,
            unique_by=lambda key: tuple((type(k), k) for k in key),
        )
    )
    table = {key: data.draw(_VALUES) for key in keys}
    definitions = [Candidate(f"v{i}", "tokens", None) for i in range(width)]
    names = [c.name for c in definitions]
    built = build(definitions, names, table)
    lines = [f"{c.name} = {c.source}" for c in definitions] + table_lines("output", names, table)
    if built is None:  # a closed form needs no table; only the table path is compared here
        return
    from distill.trained.program import closed_form_lines

    if closed_form_lines("output", names, table):
        return
    parsed = dsl.parse("\n".join([*lines, "return output", ""]), filename="<trained>")
    assert built.definitions == parsed.definitions and built.output == parsed.output


def test_a_read_out_pointer_at_a_realistic_size_reverses_fresh_strings():
    from distill.trained.read_out_pointer import read_out_pointer

    # Vocab 12, lengths 9-12, 3,000 sampled strings (no domain enumeration): the pointer
    # is still one position per (index, length), and it holds on strings never traced.
    rng = np.random.default_rng(0)
    vocab = [f"t{i}" for i in range(12)]

    def sample(count):
        return [list(rng.choice(vocab, size=int(rng.integers(9, 13)))) for _ in range(count)]

    inputs = [[str(t) for t in x] for x in sample(3000)]
    base, obs = _pointer_observations(inputs, [x[::-1] for x in inputs])
    made = read_out_pointer(obs, inputs, ["tokens_", "indices_", "n_"], ["L0.H0"], causal=False)
    fresh = [[str(t) for t in x] for x in sample(500)]
    assert _pointed_tokens(base, made, fresh) == [x[::-1] for x in fresh]


def test_a_causal_copy_past_a_separator_at_a_realistic_size_copies_fresh_strings():
    from distill.trained.read_out_pointer import landmarks, read_out_pointer

    # Vocab 12, x of lengths 5-9, `x SEP x` read from SEP on (the next token of the copy),
    # causal: 3,000 sampled strings; the pointer i - k holds on strings never traced.
    rng = np.random.default_rng(1)
    vocab = [f"t{i}" for i in range(12)]

    def sample(count):
        strings = [
            [str(t) for t in rng.choice(vocab, size=int(rng.integers(5, 10)))] for _ in range(count)
        ]
        return [[*x, "SEP", *x] for x in strings]

    def copy_answers(inputs):
        rows, read = [], []
        for x in inputs:
            k = x.index("SEP")
            rows.append([x[i - k] if k <= i < len(x) - 1 else "t0" for i in range(len(x))])
            read += [k <= i < len(x) - 1 for i in range(len(x))]
        return rows, read

    inputs = sample(3000)
    extra = [(c.name, c.source) for c in landmarks(inputs)]
    base, obs = _pointer_observations(inputs, *copy_answers(inputs), extra=extra)
    # No length: a causal query cannot count the positions after it (discovery offers none).
    names = ["tokens_", "indices_", "index_of_SEP"]
    made = read_out_pointer(obs, inputs, names, ["L0.H0", "L1.H0"], causal=True)
    assert any(c.name == "at_out" and "index_of_SEP" in c.source for c in made)
    fresh = sample(500)
    for x, pointed in zip(fresh, _pointed_tokens(base, made, fresh)):
        k = x.index("SEP")
        assert pointed[k:-1] == x[:k]


def test_the_tokens_of_a_large_vocabulary_are_offered_to_heads_and_other_many_valued_variables_not():
    """Vocab 30: a head that compares or counts tokens must be offered them (a histogram's
    count of the same token); a variable with as many values that is not the tokens is not."""
    from distill.trained.candidates import Candidate, DefinitionValues
    from distill.trained.discover import MAX_VALUE_CLASSES, _value_variables

    rng = np.random.default_rng(0)
    vocab = [f"t{i}" for i in range(30)]
    inputs = [[str(t) for t in rng.choice(vocab, size=int(rng.integers(4, 9)))] for _ in range(500)]
    definitions = [
        Candidate("tokens_", "tokens", None),
        Candidate("indices_", "indices", None),
        Candidate(
            "code",
            "map({" + ", ".join(f'"{t}": {i}' for i, t in enumerate(vocab)) + "}, tokens_)",
            None,
        ),
    ]
    values = DefinitionValues(inputs).evaluate(definitions)
    width = max(map(len, inputs))
    mask = np.zeros((len(inputs), width + 1), dtype=bool)  # BOS at position 0
    for row, x in enumerate(inputs):
        mask[row, : len(x) + 1] = True
    assert len({t for x in inputs for t in x}) == 30 > MAX_VALUE_CLASSES
    assert len({v for row in values["code"] for v in row if v is not None}) > MAX_VALUE_CLASSES
    assert _value_variables(definitions, values, mask) == ["tokens_"]


def test_a_count_of_the_last_tokens_is_put_in_words_only_where_they_are_the_last_ones():
    """The oldest token first; a variable that is not the token one or two back (or whose
    words are unknown) gets no window words, and no error."""
    from distill.trained.report import _window_words

    count = (
        "selector_width(select(indices, indices, <=) & select(tokens, tokens, lambda k, q: k == 0)"
        " & select(p, p, lambda k, q: k == 1) & select(pp, pp, lambda k, q: k == 2))"
    )
    back = {"p": "the previous token", "pp": "the token two before"}
    said = "counts positions so far (itself included) where the last 3 tokens are 2 1 0"
    assert _window_words(count, back) == said
    assert _window_words(count, {"p": "the previous token"}) is None
    assert _window_words(count, {"p": "the token two before", "pp": "the token two before"}) is None
