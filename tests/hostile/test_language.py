"""Hostile `.rasp` files, language options and domains: each refused cleanly, or answered right.

Every case asserts what `assert_clean_refusal` checks (exit 2 with one short
`error:` line naming the problem, no traceback), or exit 1 for a genuine
refutation, or exit 0 with the right answer for a strange input that is valid.
The blow-up classes run capped (`run_capped`: a 2 GB address space, a time cap)
and must finish well inside the time cap. Limits are named as in `dsl.limits`.
"""

from __future__ import annotations

import math
import os
import re
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dsl
import verify
from dsl import limits
from dsl.errors import SHOWN_PROBLEMS
from dsl.parser import parse
from hostile.harness import assert_clean_refusal, run_capped, run_in_process

LOCATED = re.compile(r"^error: .*\.rasp:\d+:\d+: ")  # file:line:col of a parse/type error


def write(tmp_path, text, name="p.rasp"):
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8", newline="")
    return path


def eval_args(path, vocab="a,b", max_len=3, tokens=("a", "b")):
    return ["eval", path, "--vocab", vocab, "--max-len", str(max_len), *tokens]


# ---- the .rasp file: syntax, nesting, literals, encodings -------------------------------

_D = limits.MAX_NESTING_DEPTH
_REFUSED_FILES = {
    "chain_of_400_plus": (
        "x = " + " + ".join(["tokens"] * 400) + "\nreturn x\n",
        "MAX_NESTING_DEPTH",
    ),
    "lambda_of_500_plus": (
        "x = map(lambda t: " + " + ".join(["t"] * 500) + ", tokens)\nreturn x\n",
        "MAX_NESTING_DEPTH",
    ),
    "definition_chain_3000": (
        "x0 = tokens\n"
        + "".join(f"x{i} = x{i - 1} + 1\n" for i in range(1, 3000))
        + "return x2999\n",
        "MAX_NESTING_DEPTH",
    ),
    "tilde_1000": (
        "s = " + "~" * 1000 + "select(tokens, tokens, ==)\nreturn aggregate(s, tokens)\n",
        "MAX_NESTING_DEPTH",
    ),
    "ampersand_500": (
        "s = "
        + " & ".join(["select(tokens, tokens, ==)"] * 500)
        + "\nreturn aggregate(s, tokens)\n",
        "MAX_NESTING_DEPTH",
    ),
    "bar_500": (
        "s = "
        + " | ".join(["select(tokens, tokens, ==)"] * 500)
        + "\nreturn aggregate(s, tokens)\n",
        "MAX_NESTING_DEPTH",
    ),
    "nested_aggregates_300": (
        "return " + "aggregate(select(tokens, tokens, ==), " * 300 + "tokens" + ")" * 300 + "\n",
        "MAX_NESTING_DEPTH",
    ),
    "nested_if_300": (
        "return map(lambda t: " + "1 if t == 1 else (" * 300 + "0" + ")" * 300 + ", tokens)\n",
        "MAX_NESTING_DEPTH",
    ),
    "minus_1000": ("return " + "- " * 1000 + "tokens\n", "MAX_NESTING_DEPTH"),
    "not_1000": ("return map(lambda t: " + "not " * 1000 + "t, tokens)\n", "MAX_NESTING_DEPTH"),
    "int_5000_digits": ("return map(lambda t: " + "9" * 5000 + ", tokens)\n", "MAX_INT_BITS"),
    "int_1300_digits": ("return full(" + "7" * 1300 + ")\n", "MAX_INT_BITS"),
    "int_just_past_4096_bits": (f"return full({2**4096})\n", "MAX_INT_BITS"),
    "float_1e999": ("return map(lambda t: 1e999, tokens)\n", "out of the range of a float"),
    "float_minus_1e999_default": (
        "return numerical aggregate(select(tokens, tokens, ==), numerical map(lambda t: 1, tokens), default=-1e999)\n",
        "out of the range of a float",
    ),
    "float_long_digits_inf": ("return full(" + "1" * 400 + ".0)\n", "out of the range of a float"),
    "table_key_1e999": ("return map({1e999: 1}, tokens)\n", "out of the range of a float"),
    "surrogate_escape": ("return full('\\ud800')\n", "invalid character code"),
    "surrogate_escape_U": ("return full('\\U0000dfff')\n", "invalid character code"),
    "too_big_escape": ("return full('\\U00110000')\n", "invalid character code"),
    "string_200k": ("return full('" + "s" * 200_000 + "')\n", "MAX_STRING_LENGTH"),
    "lone_carriage_return": ("x = tokens\rreturn x\n", "carriage return"),
    "nul_byte": ("x = tok\0ens\nreturn x\n", "unexpected character"),
    "unicode_identifier": ("λ = tokens\nreturn λ\n", "unexpected character"),
    "duplicate_definition": ("x = tokens\nx = indices\nreturn x\n", "redefinition of 'x'"),
    "duplicate_table_key": ("return map({'a': 1, 'a': 2}, tokens)\n", "duplicate key"),
    "duplicate_parameter": (
        "return sequence_map(lambda t, t: t, tokens, tokens)\n",
        "duplicate parameter",
    ),
    "empty_file": ("", "unexpected end of input"),
    "only_comments": ("# nothing\n# here\n", "unexpected end of input"),
    "unterminated_string": ("return full('abc)\n", "unterminated string"),
    "keyword_as_name": ("lambda = tokens\nreturn tokens\n", "keyword"),
    "eval_is_not_a_call": ("return eval(tokens)\n", "unknown function 'eval'"),
    "dunder_import": ("return map(lambda t: __import__('os'), tokens)\n", "unknown function"),
    "attribute_access": ("return map(lambda t: t.upper(), tokens)\n", "unexpected"),
}


@pytest.mark.parametrize("text, mention", _REFUSED_FILES.values(), ids=_REFUSED_FILES.keys())
def test_hostile_rasp_file_is_refused_with_its_location(text, mention, tmp_path, capsys):
    outcome = run_in_process(eval_args(write(tmp_path, text), vocab="a,b,1"), capsys)
    assert_clean_refusal(outcome, mention)
    assert LOCATED.match(outcome.stderr), outcome.stderr[:300]


_REFUSED_PROGRAMS = {
    "power_10_10000": ("return numerical map(lambda t: 10 ** 10000, tokens)\n", "MAX_INT_BITS"),
    "power_of_power": ("return map(lambda t: (10 ** 10000) ** 10000, tokens)\n", "MAX_INT_BITS"),
    "product_past_bits": (f"return map(lambda t: {2**4000} * {2**4000}, tokens)\n", "MAX_INT_BITS"),
    "doubling_past_bits": (
        "x0 = full(" + str(2**4095) + ")\nreturn x0 + x0\n",
        "MAX_INT_BITS",
    ),
    "string_times_1e5_times_1e5": (
        "return map(lambda t: (t * 100000) * 100000, tokens)\n",
        "MAX_STRING_LENGTH",
    ),
    "string_doubling": (
        "a = tokens + tokens\n"
        + "".join(f"s{i} = {'a' if i == 0 else f's{i - 1}'} * 1000\n" for i in range(3))
        + "return s2\n",
        "MAX_STRING_LENGTH",
    ),
    "percent_format": ("return map(lambda t: '%2000000000s' % t, tokens)\n", "formatting"),
    "complex_root": ("return numerical map(lambda t: (-1) ** 0.5, indices)\n", "complex"),
    "complex_from_negative_index": (
        "return numerical map(lambda i: (i - 1) ** 0.5, indices)\n",
        "complex",
    ),
    "string_pairs_blow_up": (
        "a = tokens + tokens\nb = a + a\nc = b + b\nd = c + c\nreturn d\n",
        "MAX_INFERENCE_STEPS",
    ),
    "select_on_huge_sets": (
        "a = tokens + tokens\nb = a + a\nreturn selector_width(select(b, b, ==))\n",
        "MAX_INFERENCE_STEPS",
    ),
    "mean_of_huge_ints": (
        "x = numerical map(lambda t: 2 ** 2000, tokens)\n"
        "return numerical aggregate(select(indices, indices, ==), x)\n",
        "numerical aggregate",
    ),
}


@pytest.mark.parametrize("text, mention", _REFUSED_PROGRAMS.values(), ids=_REFUSED_PROGRAMS.keys())
def test_program_computing_past_a_limit_is_refused(text, mention, tmp_path, capsys):
    vocab = ",".join(f"t{i}" for i in range(10))
    start = time.perf_counter()
    outcome = run_in_process(eval_args(write(tmp_path, text), vocab=vocab, tokens=("t1",)), capsys)
    assert_clean_refusal(outcome, mention)
    assert LOCATED.match(outcome.stderr), outcome.stderr[:300]
    assert time.perf_counter() - start < 20  # refused before the work, not after it


def test_value_set_limit_is_named(tmp_path, capsys):
    # 1,000 strings: tokens + tokens takes 1,000,000 distinct values, within the step budget.
    vocab = ",".join(f"v{i}" for i in range(1000))
    outcome = run_in_process(
        eval_args(write(tmp_path, "return tokens + tokens\n"), vocab=vocab, tokens=("v1",)), capsys
    )
    assert_clean_refusal(outcome, "MAX_VALUE_SET")


def test_a_very_long_line_is_cut_in_the_message(tmp_path, capsys):
    line = "x = map(lambda t: t + " + " + ".join(["1"] * 20_000) + " $, tokens)"  # 1.3 MB... cut
    line = line.replace(" + 1 + 1", " + 1  +  1", 100_000)
    path = write(tmp_path, line + "\nreturn x\n")
    assert path.stat().st_size > 100_000
    outcome = run_in_process(eval_args(path), capsys)
    assert_clean_refusal(outcome, "unexpected character '$'")
    column = line.index("$") + 1
    assert f"p.rasp:1:{column}:" in outcome.stderr
    assert len(outcome.stderr) < 1_000
    shown, caret = outcome.stderr.splitlines()[1:3]
    assert shown[caret.index("^")] == "$"  # the caret still points at the problem


def test_many_problems_are_listed_up_to_a_count(tmp_path, capsys):
    text = "".join(f"x{i} = nowhere{i}\n" for i in range(1000)) + "return tokens\n"
    outcome = run_in_process(eval_args(write(tmp_path, text)), capsys)
    assert_clean_refusal(outcome, "undefined name 'nowhere0'")
    assert "980 more problems" in outcome.stderr
    assert outcome.stderr.count("undefined name") == SHOWN_PROBLEMS


def test_source_past_the_size_limit(tmp_path, capsys):
    path = write(tmp_path, "# " + "x" * limits.MAX_SOURCE_BYTES + "\nreturn tokens\n")
    assert_clean_refusal(run_in_process(eval_args(path), capsys), "MAX_SOURCE_BYTES")


def test_non_utf8_byte_is_located(tmp_path, capsys):
    path = write(tmp_path, b"x = tokens\nreturn x \xff\n")
    outcome = run_in_process(eval_args(path), capsys)
    assert_clean_refusal(outcome, "not UTF-8", "p.rasp:2:10")


@pytest.mark.parametrize("kind", ["fifo", "dev_zero_link", "directory", "missing", "dangling_link"])
def test_a_path_that_is_not_a_rasp_file(kind, tmp_path, capsys):
    path = tmp_path / "p.rasp"
    if kind == "fifo":
        os.mkfifo(path)  # opening it for reading would wait for a writer forever
    elif kind == "dev_zero_link":
        path.symlink_to("/dev/zero")  # reading it never ends
    elif kind == "directory":
        path.mkdir()
    elif kind == "dangling_link":
        path.symlink_to(tmp_path / "nowhere")
    outcome = run_in_process(eval_args(path), capsys)
    mention = {
        "fifo": "not a regular file",
        "dev_zero_link": "not a regular file",
        "directory": "directory",
    }
    assert_clean_refusal(outcome, "p.rasp", mention.get(kind, "No such file"))


# ---- strange but valid files: answered right -----------------------------------------------

_ACCEPTED = {
    "utf8_bom": (b"\xef\xbb\xbfreturn tokens\n", "a b"),
    "crlf": (b"x = tokens\r\nreturn x\r\n", "a b"),
    "tabs": (b"x\t=\tmap(lambda\tt:\tt,\ttokens)\t# tab\nreturn\tx\n", "a b"),
    "parentheses_10000": (
        ("return " + "(" * 10_000 + "tokens" + ")" * 10_000 + "\n").encode(),
        "a b",
    ),
    "no_final_newline": (b"return tokens", "a b"),
    "unicode_string": ("return map(lambda t: 'é' + t + '\\u2603', tokens)\n".encode(), "éa☃ éb☃"),
}


@pytest.mark.parametrize("data, expected", _ACCEPTED.values(), ids=_ACCEPTED.keys())
def test_strange_but_valid_file_runs(data, expected, tmp_path, capsys):
    outcome = run_in_process(eval_args(write(tmp_path, data)), capsys)
    assert outcome.status == 0, outcome.stderr
    assert outcome.stdout.strip() == expected


def test_a_huge_table_is_read_and_used(tmp_path, capsys):
    entries = {k: (k * 7919) % 1000 for k in range(20_000)}
    text = "return map({" + ", ".join(f"{k}: {v}" for k, v in entries.items()) + "}, tokens)\n"
    tokens = ("19999", "3", "12345")
    outcome = run_in_process(
        eval_args(write(tmp_path, text), vocab="19999,3,12345", tokens=tokens), capsys
    )
    assert outcome.status == 0, outcome.stderr
    assert outcome.stdout.split() == [str(entries[int(t)]) for t in tokens]


def _plus_chain(count: int) -> str:
    return "x = " + " + ".join(["tokens"] * (count + 1)) + "\nreturn x\n"


def _definition_chain(count: int) -> str:
    lines = ["x0 = tokens"] + [f"x{i} = x{i - 1} + 1" for i in range(1, count + 1)]
    return "\n".join(lines) + f"\nreturn x{count}\n"


# Depth counts nodes and lambda bodies (dsl.parser.nesting_depth): a chain of k `+` on SOps
# is k + 2 deep (the innermost sequence_map holds tokens and a 2-deep body), a chain of k
# definitions `xi = x(i-1) + 1` is k + 2 deep too.
@pytest.mark.parametrize("chain", [_plus_chain, _definition_chain])
def test_programs_at_the_depth_limit_work_everywhere(chain, tmp_path, capsys):
    deepest = write(tmp_path, chain(_D - 2))
    outcome = run_in_process(eval_args(deepest, vocab="1,2", tokens=("1", "2")), capsys)
    assert outcome.status == 0, outcome.stderr[-500:]
    width = _D - 1 if chain is _plus_chain else 1
    shift = 0 if chain is _plus_chain else _D - 2
    assert outcome.stdout.split() == [str(width * t + shift) for t in (1, 2)]
    outcome = run_in_process(
        ["equiv", deepest, deepest, "--vocab", "1,2", "--max-len", "2"], capsys
    )
    assert outcome.status == 0 and outcome.stdout.startswith("proved(2)"), outcome.stderr[-500:]
    program = parse(deepest.read_text())
    assert parse(dsl.to_source(program)) == program
    assert "def run" in dsl.to_python(program)
    past = write(tmp_path, chain(_D - 1), name="past.rasp")
    outcome = run_in_process(eval_args(past, vocab="1,2", tokens=("1",)), capsys)
    assert_clean_refusal(outcome, "MAX_NESTING_DEPTH")


# ---- options and domains --------------------------------------------------------------------

_TEN_THOUSAND = ",".join(f"v{i}" for i in range(10_000))
_BAD_EVAL_OPTIONS = {
    "max_len_10000": (["--vocab", "a,b", "--max-len", "10000", "a"], "MAX_SEQ_LEN"),
    "max_len_1e9": (["--vocab", "a,b", "--max-len", "1000000000", "a"], "MAX_SEQ_LEN"),
    "max_len_zero": (["--vocab", "a,b", "--max-len", "0", "a"], "--max-len"),
    "max_len_negative": (["--vocab", "a,b", "--max-len", "-5", "a"], "--max-len"),
    "vocab_10000": (["--vocab", _TEN_THOUSAND, "--max-len", "3", "v1"], "MAX_VOCAB"),
    "vocab_commas_only": (["--vocab", ",,", "--max-len", "3", "a"], "--vocab"),
    "vocab_empty": (["--vocab", "", "--max-len", "3", "a"], "--vocab"),
    "vocab_blank_item": (["--vocab", "a, ,b", "--max-len", "3", "a"], "--vocab"),
    "vocab_spaces_only": (["--vocab", "   ", "--max-len", "3", "a"], "--vocab"),
    "vocab_duplicate": (["--vocab", "a,b,a", "--max-len", "3", "a"], "repeated"),
    "vocab_duplicate_as_integers": (["--vocab", "1,01", "--max-len", "3", "1"], "repeated"),
    "vocab_duplicate_after_strip": (["--vocab", "a, a", "--max-len", "3", "a"], "repeated"),
    "vocab_huge_integer": (["--vocab", "1," + "9" * 5000, "--max-len", "3", "1"], "MAX_INT_BITS"),
    "vocab_overflowing_integer": (
        ["--vocab", f"1,{2**4100}", "--max-len", "3", "1"],
        "MAX_INT_BITS",
    ),
    "vocab_not_utf8": (["--vocab", "a,b\udcff", "--max-len", "3", "a"], "surrogate"),
    "token_not_in_vocab": (["--vocab", "a,b", "--max-len", "3", "a", "z"], "not in the vocabulary"),
    "token_int_vs_string": (["--vocab", "a,b", "--max-len", "3", "1"], "not in the vocabulary"),
    "more_tokens_than_max_len": (
        ["--vocab", "a,b", "--max-len", "2", "a", "b", "a"],
        "more than --max-len",
    ),
    "no_tokens": (["--vocab", "a,b", "--max-len", "3"], "no input tokens"),
    "token_5000_digits": (["--vocab", "1,2", "--max-len", "3", "9" * 5000], "MAX_INT_BITS"),
    "token_not_utf8": (["--vocab", "a,b", "--max-len", "3", "\udcff"], "surrogate"),
}


@pytest.mark.parametrize(
    "options, mention", _BAD_EVAL_OPTIONS.values(), ids=_BAD_EVAL_OPTIONS.keys()
)
def test_bad_eval_options_are_refused(options, mention, tmp_path, capsys):
    path = write(tmp_path, "return tokens\n")
    assert_clean_refusal(run_in_process(["eval", path, *options], capsys), mention)


def test_largest_vocab_and_length_are_usable(tmp_path, capsys):
    vocab = ",".join(f"v{i}" for i in range(limits.MAX_VOCAB))
    text = "n = selector_width(select(tokens, tokens, ==))\nreturn n\n"
    tokens = ["v1", "v2", "v1"] * 5
    args = [
        "eval",
        write(tmp_path, text),
        "--vocab",
        vocab,
        "--max-len",
        str(limits.MAX_SEQ_LEN),
        *tokens,
    ]
    outcome = run_in_process(args, capsys)
    assert outcome.status == 0, outcome.stderr[-500:]
    assert outcome.stdout.split() == [str(tokens.count(t)) for t in tokens]


_BAD_EQUIV_OPTIONS = {
    "timeout_nan": (["--timeout", "nan"], "--timeout"),
    "timeout_inf": (["--timeout", "inf"], "--timeout"),
    "timeout_minus_inf": (["--timeout", "-inf"], "--timeout"),
    "timeout_zero": (["--timeout", "0"], "--timeout"),
    "timeout_negative": (["--timeout", "-1"], "--timeout"),
    "timeout_past_z3": (["--timeout", "1e300"], "--timeout"),
    "max_len_100000": (["--max-len", "100000"], "MAX_SEQ_LEN"),
    "max_len_zero": (["--max-len", "0"], "--max-len"),
    "vocab_10000": (["--vocab", _TEN_THOUSAND], "MAX_VOCAB"),
    "vocab_duplicate": (["--vocab", "a,a"], "repeated"),
}


@pytest.mark.parametrize(
    "options, mention", _BAD_EQUIV_OPTIONS.values(), ids=_BAD_EQUIV_OPTIONS.keys()
)
def test_bad_equiv_options_are_refused(options, mention, tmp_path, capsys):
    path = write(tmp_path, "return tokens\n")
    args = ["equiv", path, path, "--vocab", "a,b", "--max-len", "3", *options]
    assert_clean_refusal(run_in_process(args, capsys), mention)


def test_equiv_refutes_different_programs_with_exit_1(tmp_path, capsys):
    first = write(tmp_path, "return tokens\n", "a.rasp")
    second = write(tmp_path, "return map(lambda t: 'a', tokens)\n", "b.rasp")
    outcome = run_in_process(["equiv", first, second, "--vocab", "a,b", "--max-len", "3"], capsys)
    assert_clean_refusal(outcome, status=1)
    # The counterexample is checked here, not trusted: the two programs differ on it.
    [line] = [x for x in outcome.stdout.splitlines() if x.startswith("counterexample")]
    assert "'b'" in line


# ---- verify: no option turns a disagreement into exit 0 -----------------------------------


@pytest.fixture(scope="module")
def constant_model(tmp_path_factory):
    """A model of zero weights: its read-out is the same value at every position."""
    from distill.models.family import Model, ModelConfig

    config = ModelConfig(
        n_layers=1, d_model=4, n_heads=1, d_head=2, d_mlp=4, n_ctx=6, act_fn="relu",
        normalization=None, causal=False, vocab=("a", "b", "c", "d"), bos="BOS",
        max_seq_len=5, output_kind="categorical", output_values=("a", "b"),
    )  # fmt: skip
    model = Model(config)
    outputs = {v for out in model.predict([["a"], ["d", "c", "b", "a", "a"]]) for v in out}
    [constant] = outputs  # measured, not assumed
    path = tmp_path_factory.mktemp("model") / "zero.safetensors"
    model.save(path)
    return path, constant, next(v for v in config.output_values if v != constant)


_VERIFY_OPTIONS = {
    "default": [],
    "exhaustive": ["--exhaustive"],
    "samples_1": ["--samples", "1"],
    "samples_50_seed_7": ["--samples", "50", "--seed", "7"],
    "seed_only": ["--seed", "3"],
    "exhaustive_seed": ["--exhaustive", "--seed", "9"],
    "samples_more_than_domain": ["--samples", "5000"],
    "negative_seed": ["--samples", "10", "--seed", "-4"],
    "huge_seed": ["--samples", "10", "--seed", str(10**30)],
}


@pytest.mark.parametrize("options", _VERIFY_OPTIONS.values(), ids=_VERIFY_OPTIONS.keys())
def test_no_verify_option_turns_a_disagreement_into_success(
    options, constant_model, tmp_path, capsys
):
    model, constant, other = constant_model
    right = write(tmp_path, f"return full({other!r})\n", "wrong.rasp")
    outcome = run_in_process(["verify", model, right, *options], capsys)
    assert_clean_refusal(outcome, status=1)
    assert "counterexample" in outcome.stdout
    agreeing = write(tmp_path, f"return full({constant!r})\n", "right.rasp")
    outcome = run_in_process(["verify", model, agreeing, *options], capsys)
    assert outcome.status == 0, outcome.stdout + outcome.stderr


_BAD_VERIFY_OPTIONS = {
    "samples_1e9": (["--samples", "1000000000"], "MAX_SAMPLES"),
    "samples_zero": (["--samples", "0"], "--samples"),
    "samples_negative": (["--samples", "-3"], "--samples"),
    "exhaustive_and_samples": (["--exhaustive", "--samples", "5"], "exclude each other"),
}


@pytest.mark.parametrize(
    "options, mention", _BAD_VERIFY_OPTIONS.values(), ids=_BAD_VERIFY_OPTIONS.keys()
)
def test_bad_verify_options_are_refused(options, mention, constant_model, tmp_path, capsys):
    program = write(tmp_path, "return tokens\n")
    outcome = run_in_process(["verify", constant_model[0], program, *options], capsys)
    assert_clean_refusal(outcome, mention)


def test_verify_refuses_a_hostile_program_file(constant_model, tmp_path, capsys):
    program = write(tmp_path, "a = tokens + tokens\nb = a + a\nc = b + b\nd = c + c\nreturn d\n")
    outcome = run_in_process(["verify", constant_model[0], program], capsys)
    assert_clean_refusal(outcome, "MAX_INFERENCE_STEPS")


# ---- the library refuses what the command line refuses -------------------------------------

_IDENTITY = parse("return tokens\n")


@pytest.mark.parametrize(
    "arguments, error",
    [
        ({"max_seq_len": 0}, limits.LimitError),
        ({"max_seq_len": -1}, limits.LimitError),
        ({"max_seq_len": 2, "min_len": 3}, limits.LimitError),
        ({"max_seq_len": 10_000}, limits.LimitError),
        ({"vocab": []}, limits.LimitError),
        ({"vocab": [1j, 2]}, limits.LimitError),
        ({"vocab": [math.inf]}, limits.LimitError),
        ({"vocab": [1, True]}, limits.LimitError),
        ({"timeout": math.nan}, ValueError),
        ({"timeout": math.inf}, ValueError),
        ({"timeout": 0}, ValueError),
    ],
)
def test_equivalent_refuses_an_empty_or_hostile_domain(arguments, error):
    with pytest.raises(error):
        verify.equivalent(_IDENTITY, _IDENTITY, **{"vocab": ["a"], "max_seq_len": 2, **arguments})


@pytest.mark.parametrize(
    "arguments",
    [
        {"max_seq_len": 0},
        {"vocab": [2j]},
        {"samples": 0, "exhaustive": False},
        {"samples": 10**9, "exhaustive": False},
    ],
)
def test_check_refuses_an_empty_or_hostile_domain(arguments):
    def oracle(batch):
        return [list(x) for x in batch]

    with pytest.raises((limits.LimitError, ValueError)):
        verify.check(_IDENTITY, oracle, **{"vocab": ["a"], "max_seq_len": 2, **arguments})


def test_infer_refuses_complex_tokens():
    with pytest.raises(limits.LimitError, match="complex"):
        dsl.infer(_IDENTITY, [1, 2j], 3)


# ---- fuzzing the grammar ------------------------------------------------------------------

_ALPHABET = st.sampled_from(list("abtxy_019 .,:=+-*/%<>!&|~()[]{}'\"#\\\n\t\r\0λé") + [
    "tokens", "indices", "select", "aggregate", "map", "lambda", "return", "==", "**",
    "numerical", "full", "selector_width", "sequence_map", "if", "else", "True", "None",
])  # fmt: skip
_FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _assert_parse_is_clean(text: str) -> None:
    try:
        program = parse(text, filename="fuzz.rasp")
    except dsl.DSLError as error:
        first = str(error).splitlines()[0]
        assert re.match(r"^fuzz\.rasp:\d+:\d+: ", first), first
        return
    # A parsed program must type-check or fail as the language's own error.
    try:
        info = dsl.infer(program, ["a", "b", 1], 3)
        dsl.evaluate(program, [["a", 1, "b"], ["b"]], undefined="mark")
        dsl.to_source(program)
        assert info.output is not None
    except dsl.DSLError:
        pass


@_FUZZ
@given(st.lists(_ALPHABET, max_size=40).map("".join))
def test_random_text_parses_or_fails_with_a_location(text):
    _assert_parse_is_clean(text)


_SEEDS = [
    (path.read_text())
    for path in sorted(
        (__import__("pathlib").Path(__file__).parents[2] / "examples").glob("*.rasp")
    )
]


@_FUZZ
@given(
    st.sampled_from(_SEEDS),
    st.lists(
        st.tuples(st.integers(0, 10_000), st.integers(0, 3), _ALPHABET), min_size=1, max_size=4
    ),
)
def test_mutated_programs_parse_or_fail_with_a_location(seed, mutations):
    text = seed
    for position, length, insert in mutations:
        position %= len(text) + 1
        text = text[:position] + insert + text[position + length :]
    _assert_parse_is_clean(text)


@_FUZZ
@given(data=st.binary(max_size=60))
def test_random_bytes_as_a_file_are_read_or_refused(data, tmp_path_factory):
    from distill.cli.options import read_program
    from distill.errors import BadInputError

    path = tmp_path_factory.mktemp("fuzz") / "b.rasp"
    path.write_bytes(data)
    try:
        read_program(path)
    except (BadInputError, dsl.DSLError) as error:
        assert str(error).count("\n") == 0 or re.match(r"^.*b\.rasp:\d+:\d+: ", str(error))


# ---- blow-ups, run under the memory cap ------------------------------------------------------


def test_the_cap_lets_normal_commands_run(tmp_path):
    """The 2 GB cap is not so tight that a normal eval or a Z3 proof cannot run under it."""
    path = write(tmp_path, "return tokens\n")
    done = run_capped(["equiv", path, path, "--vocab", "a,b", "--max-len", "3"])
    assert done.status == 0 and done.stdout.startswith("proved(3)"), done.stderr[-500:]


_BLOW_UPS = {
    "string_pairs": (
        "a = tokens + tokens\nb = a + a\nc = b + b\nd = c + c\nreturn d\n",
        "MAX_INFERENCE_STEPS",
    ),
    "power_of_power": ("return map(lambda t: (10 ** 10000) ** 10000, tokens)\n", "MAX_INT_BITS"),
    "format_width": ("return map(lambda t: '%2000000000s' % t, tokens)\n", "formatting"),
}


@pytest.mark.parametrize("text, mention", _BLOW_UPS.values(), ids=_BLOW_UPS.keys())
def test_blow_ups_are_refused_under_the_memory_cap(text, mention, tmp_path):
    start = time.perf_counter()
    done = run_capped(eval_args(write(tmp_path, text), vocab="a,b,c,d,e,f,g,h,i,j", tokens=("a",)))
    assert_clean_refusal(done, mention)
    assert time.perf_counter() - start < 30  # well inside the harness's TIME_CAP
