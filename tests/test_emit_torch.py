"""distill.emit.torch_module: the emitted nn.Module computes the program, with the model's interface.

Truths: `dsl.evaluate` (itself tested against tracr's evaluator) on every input
of every tracr case (up to the longest length with at most MAX_INPUTS inputs) and
of random programs; tracr's compiled models imported
with `distill.from_tracr` for a few cases; hand-written programs for the
undefined cases; and a bare interpreter (`python -I -S`) for "imports only torch".
"""

from __future__ import annotations

import ast as python_ast
import importlib.util
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from strategies import programs
from tracr_cases import ALL_CASES, BOS, compiled

import distill
import dsl
from distill.emit.torch_module import CLASS_NAME, GENERATORS, torch_module_source
from distill.models.numerics import RESOLUTION
from dsl import ast
from dsl.domain import count_inputs, enumerate_inputs
from dsl.errors import TypeCheckError

# Cases are checked on every input up to the longest length whose domain has at most this many.
MAX_INPUTS = 3_000
TOLERANCE = 1e-9


def _load(source: str, directory: Path, name: str = "module"):
    path = directory / f"{name}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"emitted_{name}_{id(source)}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _domain(vocab, max_seq_len: int) -> list[list]:
    longest = max(
        (n for n in range(1, max_seq_len + 1) if count_inputs(vocab, n) <= MAX_INPUTS), default=1
    )
    return [list(x) for batch in enumerate_inputs(vocab, longest) for x in batch]


def _encode(inputs, vocab) -> torch.Tensor:
    # distill.Model's layout: id i is vocab[i], then BOS, then PAD; BOS first.
    ids = torch.full((len(inputs), max(map(len, inputs)) + 1), len(vocab) + 1, dtype=torch.long)
    ids[:, 0] = len(vocab)
    for row, tokens in enumerate(inputs):
        ids[row, 1 : len(tokens) + 1] = torch.tensor([vocab.index(t) for t in tokens])
    return ids


def _decode(out: torch.Tensor, inputs, output_kind: str, output_values) -> list[list]:
    """Module output -> values per input; None where it says "undefined"."""
    rows = []
    for row, tokens in enumerate(inputs):
        values = []
        for scores in out[row, 1 : len(tokens) + 1]:
            if output_kind == "numerical":
                value = scores[0].item()
                values.append(None if math.isnan(value) else value)
            else:
                hot = torch.nonzero(scores).flatten().tolist()
                assert scores.sum().item() in (0.0, 1.0) and len(hot) <= 1, scores
                values.append(output_values[hot[0]] if hot else None)
        rows.append(values)
    return rows


def _same(expected, got) -> bool:
    if expected is None or got is None:
        return expected is None and got is None
    if isinstance(expected, (int, float)) and isinstance(got, (int, float)):
        return math.isclose(expected, got, rel_tol=TOLERANCE, abs_tol=TOLERANCE)
    return expected == got


def _spec(program: ast.Program, vocab, max_seq_len: int, outputs) -> tuple[str, tuple]:
    """The output kind and values a model of this program would have."""
    info = dsl.infer(program, vocab, max_seq_len)
    if info.is_numerical:
        return "numerical", ()
    seen = {v for row in outputs if row is not None for v in row}
    values = {v for v in (info.output.value_set | seen) if v is not None}
    return "categorical", tuple(sorted(values, key=lambda v: (type(v).__name__, repr(v))))


def _check_against_evaluate(program, vocab, max_seq_len, directory: Path) -> int:
    """Emit, run on the (capped) whole domain, compare with dsl.evaluate; return inputs compared."""
    inputs = _domain(vocab, max_seq_len)
    expected = dsl.evaluate(program, inputs, undefined="mark")
    kind, values = _spec(program, vocab, max_seq_len, expected)
    source = torch_module_source(
        program,
        vocab=vocab,
        bos=BOS,
        max_seq_len=max_seq_len,
        output_kind=kind,
        output_values=values,
        domain_note="test domain",
    )
    module = getattr(_load(source, directory), CLASS_NAME)(dtype=torch.float64)
    got = _decode(module(_encode(inputs, vocab)), inputs, kind, values)
    compared = 0
    for tokens, want, have in zip(inputs, expected, got):
        if want is None:  # undefined on this input: nothing to match
            continue
        assert all(map(_same, want, have)), f"input {tokens}: expected {want}, got {have}"
        compared += 1
    return compared


def test_generators_cover_every_node_type():
    assert set(GENERATORS) == set(ast.NODE_TYPES)


def _case_id(case) -> str:
    return case.name


@pytest.mark.parametrize("case", ALL_CASES, ids=_case_id)
def test_module_equals_evaluate_on_tracr_case(case, tmp_path):
    vocab = case.sorted_vocab
    program = dsl.from_tracr(case.program, vocab=vocab, max_seq_len=case.max_seq_len)
    try:
        dsl.infer(program, vocab, case.max_seq_len)
    except TypeCheckError:
        # What the type checker rejects (tracr's unsupported cases) the emitter rejects too.
        with pytest.raises(TypeCheckError):
            torch_module_source(
                program,
                vocab=vocab,
                bos=BOS,
                max_seq_len=case.max_seq_len,
                output_kind="categorical",
                output_values=("x",),
                domain_note="",
            )
        return
    assert _check_against_evaluate(program, vocab, case.max_seq_len, tmp_path) > 0


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(programs(vocab=("a", "b", 1), max_seq_len=4))
def test_module_equals_evaluate_on_random_programs(tmp_path, program):
    _check_against_evaluate(program, ["a", "b", 1], 4, tmp_path)


# Cases whose compiled model is also compared: categorical over words and numbers, and numerical.
MODEL_CASES = ["lib_make_reverse", "lib_make_sort_unique", "lib_make_frac_prevs"]


@pytest.mark.parametrize("name", MODEL_CASES)
def test_module_equals_compiled_tracr_model(name, tmp_path):
    case = next(c for c in ALL_CASES if c.name == name)
    model = distill.from_tracr(compiled(case))
    config = model.config
    program = dsl.from_tracr(case.program, vocab=config.vocab, max_seq_len=config.max_seq_len)
    source = torch_module_source(
        program,
        vocab=config.vocab,
        bos=config.bos,
        max_seq_len=config.max_seq_len,
        output_kind=config.output_kind,
        output_values=config.output_values,
        domain_note=f"exhaustive({config.max_seq_len})",
    )
    # The module computes in the dtype it is given, as the model does.
    module = getattr(_load(source, tmp_path), CLASS_NAME)(dtype=next(model.parameters()).dtype)
    inputs = [
        list(x) for batch in enumerate_inputs(config.vocab, config.max_seq_len) for x in batch
    ]
    ids, mask = model.encode(inputs)
    with torch.no_grad():
        want, got = model(ids, mask), module(ids, mask)
    assert got.shape == want.shape and got.dtype == want.dtype
    defined = dsl.evaluate(program, inputs, undefined="mark")
    expected = model.decode(want, [len(x) for x in inputs])
    produced = _decode(got, inputs, config.output_kind, config.output_values)
    for tokens, program_out, model_out, module_out in zip(inputs, defined, expected, produced):
        for position, value in enumerate(program_out or []):
            if value is None:  # the model's output is meaningless where the program is undefined
                continue
            if config.output_kind == "numerical":
                assert math.isclose(
                    model_out[position], module_out[position], abs_tol=RESOLUTION
                ), tokens
            else:
                assert model_out[position] == module_out[position], (tokens, position)


def _program(text: str) -> ast.Program:
    return dsl.parse(text, filename="test.rasp")


def test_undefined_positions_give_zero_scores_and_nan(tmp_path):
    # Position 0 has no previous token: the aggregate selects nothing and its default is None.
    text = (
        "prev = select(indices, indices, lambda k, q: k == q - 1)\n"
        "shifted = aggregate(prev, tokens)\n"
        'count = numerical aggregate(prev, numerical map(lambda t: 1 if t == "a" else 0, tokens), default=None)\n'
        "return shifted\n"
    )
    program = _program(text)
    source = torch_module_source(
        program,
        vocab=("a", "b"),
        bos=BOS,
        max_seq_len=3,
        output_kind="categorical",
        output_values=("a", "b"),
        domain_note="",
    )
    module = getattr(_load(source, tmp_path), CLASS_NAME)()
    out = module(_encode([["b", "a", "a"], ["a"]], ["a", "b"]))
    assert out[0].tolist() == [[0, 0], [0, 0], [0, 1], [1, 0]]
    assert out[1].tolist() == [[0, 0], [0, 0], [0, 0], [0, 0]]  # BOS, undefined, PAD, PAD

    numerical = ast.Program(program.definitions, ast.Name("count"))
    source = torch_module_source(
        numerical,
        vocab=("a", "b"),
        bos=BOS,
        max_seq_len=3,
        output_kind="numerical",
        output_values=(),
        domain_note="",
    )
    module = getattr(_load(source, tmp_path, "numerical"), CLASS_NAME)(dtype=torch.float64)
    values = module(_encode([["a", "b", "a"]], ["a", "b"]))[0, :, 0].tolist()
    assert values[0] == 0.0 and math.isnan(values[1]) and values[2:] == [1.0, 0.0]


def test_module_docstring_states_domain_program_and_interface(tmp_path):
    program = _program("flip = select(indices, indices, ==)\nreturn aggregate(flip, tokens)\n")
    note = "exhaustive(3): vocab {'a', 'b'}, lengths 1..3; precondition: none"
    source = torch_module_source(
        program,
        vocab=("a", "b"),
        bos=BOS,
        max_seq_len=3,
        output_kind="categorical",
        output_values=("a", "b"),
        domain_note=note,
    )
    doc = _load(source, tmp_path).__doc__
    assert note in doc
    assert "flip = select(indices, indices, ==)" in doc
    assert "one-hot" in doc and "BOS" in doc and "Undefined" in doc


def test_module_imports_only_torch_and_math(tmp_path):
    program = _program(
        "n = selector_width(select(tokens, tokens, ==))\n"
        "return numerical aggregate(select(indices, indices, <=), numerical map(lambda x: x / 2, n), default=0)\n"
    )
    source = torch_module_source(
        program,
        vocab=("a", "b"),
        bos=BOS,
        max_seq_len=3,
        output_kind="numerical",
        output_values=(),
        domain_note="",
    )
    imported = set()
    for node in python_ast.walk(python_ast.parse(source)):
        if isinstance(node, python_ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, python_ast.ImportFrom):
            imported.add(node.module)
    assert imported <= {"torch", "math", "typing"}

    (tmp_path / "replacement.py").write_text(source)
    torch_home = str(Path(torch.__file__).parent.parent)
    script = (
        "import sys\n"
        f"sys.path[:] = [{str(tmp_path)!r}, {torch_home!r}] + [p for p in sys.path if 'python3' in p "
        "and 'site-packages' not in p]\n"
        "import replacement, torch\n"
        "assert not {'dsl', 'distill', 'synth', 'verify'} & set(sys.modules)\n"
        "for name in ('dsl', 'distill'):\n"
        "    try:\n"
        "        __import__(name)\n"
        "    except ImportError:\n"
        "        pass\n"
        "    else:\n"
        "        raise SystemExit(name + ' is importable: the check proves nothing')\n"
        "ids = torch.tensor([[2, 0, 1, 0]])\n"
        "print(replacement.DistilledProgram(torch.float64)(ids)[0, :, 0].tolist())\n"
    )
    # -I: no user site, no cwd on the path; -S: no site-packages (so no .pth of our packages).
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    # n = [2, 1, 2]; halves [1, .5, 1]; running means over positions <= q.
    assert result.stdout.strip() == str([0.0, 1.0, 0.75, (1 + 0.5 + 1) / 3])


def test_lambda_predicates_see_none_where_comparisons_are_undefined(tmp_path):
    # prev is None at position 0: the lambda compares it (False), the comparison `==` raises.
    shifted = "prev = aggregate(select(indices, indices, lambda k, q: k == q - 1), tokens)\n"
    lambda_program = _program(
        shifted + "return selector_width(select(prev, tokens, lambda k, q: k == q))\n"
    )
    assert _check_against_evaluate(lambda_program, ["a", "b"], 4, tmp_path) == 30  # every input

    comparison_program = _program(shifted + "return selector_width(select(prev, tokens, ==))\n")
    inputs = _domain(["a", "b"], 4)
    assert dsl.evaluate(comparison_program, inputs, undefined="mark") == [None] * len(inputs)
    source = torch_module_source(
        comparison_program,
        vocab=("a", "b"),
        bos=BOS,
        max_seq_len=4,
        output_kind="categorical",
        output_values=(0, 1, 2, 3, 4),
        domain_note="",
    )
    module = getattr(_load(source, tmp_path, "comparison"), CLASS_NAME)()
    assert not module(_encode(inputs, ["a", "b"])).any()  # every position undefined: all zeros


# Programs reaching each path of the generator that the tracr cases may miss, checked against
# dsl.evaluate on every input of every length up to max_seq_len, in one batch mixing lengths
# (so PAD): what depends on positions only is computed in __init__ for max_seq_len positions
# and sliced to each batch's width.
PATH_PROGRAMS = {
    "position-only selects, both aggregates and widths": (
        "prevs = select(indices, indices, <=)\n"
        "is_a = numerical map(lambda t: 1 if t == 1 else 0, tokens)\n"
        "frac = numerical aggregate(prevs, is_a, default=0)\n"
        "shift = select(indices, indices, lambda k, q: k == q - 1)\n"
        "prev = aggregate(shift, tokens, default=0)\n"
        "width = selector_width(prevs & select(tokens, tokens, ==))\n"
        "return sequence_map(lambda a, b: a + b, prev, width) + frac\n",
        (1, 2),
        6,
    ),
    "several equal numbers selected (affine values: the sum table)": (
        "same = select(tokens, tokens, ==)\nreturn aggregate(same, tokens)\n",
        (1, 2, 3),
        5,
    ),
    "several different numbers selected (affine values: the sum table)": (
        "return aggregate(select(indices, indices, <=), tokens)\n",
        (1, 2, 3),
        5,
    ),
    "several different numbers selected (not affine: the float path)": (
        "return aggregate(select(indices, indices, <=), tokens)\n",
        (1, 2, 5),
        5,
    ),
    "several words selected (undefined)": (
        "return aggregate(select(indices, indices, <=), tokens)\n",
        ("a", "b"),
        5,
    ),
    "maps of maps, composed into one table": (
        "a = map(lambda t: t + 1, tokens)\n"
        "b = map(lambda x: x * 2, a)\n"
        "return map(lambda x: x - 3, b)\n",
        (1, 2, 3),
        4,
    ),
    "numerical arithmetic on two SOps, one torch operation": (
        "prevs = select(indices, indices, <=)\n"
        "opens = numerical aggregate(prevs, numerical map(lambda t: 1 if t == 1 else 0, tokens), default=0)\n"
        "closes = numerical aggregate(prevs, numerical map(lambda t: 1 if t == 2 else 0, tokens), default=0)\n"
        "balance = numerical opens - closes\n"
        "spread = numerical sequence_map(lambda x, y: y * x, balance, numerical map(lambda i: i, indices))\n"
        "return numerical sequence_map(lambda x, y: y + x, spread, opens)\n",
        (1, 2, 3),
        6,
    ),
    "a selector negated (selects PAD keys)": (
        "return selector_width(~select(tokens, tokens, ==))\n",
        ("a", "b"),
        6,
    ),
}


@pytest.mark.parametrize(
    "text, vocab, max_seq_len", PATH_PROGRAMS.values(), ids=list(PATH_PROGRAMS)
)
def test_module_equals_evaluate_on_each_path(text, vocab, max_seq_len, tmp_path):
    program = _program(text)
    assert count_inputs(vocab, max_seq_len) <= MAX_INPUTS  # every length, max_seq_len included
    assert _check_against_evaluate(program, list(vocab), max_seq_len, tmp_path) > 0


def test_lookups_of_lookups_are_one_gather(tmp_path):
    text, vocab, max_seq_len = PATH_PROGRAMS["maps of maps, composed into one table"]
    source = torch_module_source(
        _program(text),
        vocab=vocab,
        bos=BOS,
        max_seq_len=max_seq_len,
        output_kind="categorical",
        output_values=(1, 3, 5),
        domain_note="",
    )
    forward = source[source.index("def forward") :]
    # Three maps and the one-hot output: one table lookup at run time.
    assert forward.count("_gather(") == 1, forward


def test_longer_input_than_max_seq_len_is_refused(tmp_path):
    source = torch_module_source(
        _program("return aggregate(select(indices, indices, ==), tokens)\n"),
        vocab=("a", "b"),
        bos=BOS,
        max_seq_len=3,
        output_kind="categorical",
        output_values=("a", "b"),
        domain_note="",
    )
    module = getattr(_load(source, tmp_path), CLASS_NAME)()
    with pytest.raises(ValueError, match="MAX_SEQ_LEN"):
        module(_encode([["a", "b", "a", "b"]], ["a", "b"]))


# A value table may hold two adjacent floats (0.49999999999999994 and 0.5: means summed in
# different orders differ in the last bit). Their midpoint rounds to 0.5, so a lookup by
# midpoints turned an exact 0.5 into the code of 0.49999999999999994.
ADJACENT_FLOATS = {
    "a numerical SOp read as codes": (
        'n = numerical map(lambda t: 0.5 if t == "a" else 0.49999999999999994, tokens)\n'
        'return map(lambda x: "half" if x == 0.5 else "less", n)\n',
        # a -> 0.5 -> "half"; b -> 0.49999999999999994 -> "less".
        {("a", "b"): ["half", "less"], ("b", "a"): ["less", "half"], ("a",): ["half"]},
    ),
    "the mean of several selected numbers": (
        'v = map(lambda t: 1 if t == "a" else (0 if t == "b" else 0.49999999999999994), tokens)\n'
        "m = aggregate(select(indices, indices, <=), v)\n"
        'return map(lambda x: "half" if x == 0.5 else "other", m)\n',
        # Running means: [a, b] -> [1, (1 + 0) / 2 = 0.5]; [c] -> [0.49999999999999994].
        {
            ("a", "b"): ["other", "half"],
            ("c",): ["other"],
            ("b", "a", "a", "b"): ["other", "half", "other", "half"],
        },
    ),
}


@pytest.mark.parametrize("text, expected", ADJACENT_FLOATS.values(), ids=list(ADJACENT_FLOATS))
def test_exact_number_is_found_beside_an_adjacent_float(text, expected, tmp_path):
    program = _program(text)
    vocab = ["a", "b", "c"]
    inputs = [list(tokens) for tokens in expected]
    assert dsl.evaluate(program, inputs) == list(expected.values())
    output_values = ("half", "less", "other")
    source = torch_module_source(
        program,
        vocab=vocab,
        bos=BOS,
        max_seq_len=4,
        output_kind="categorical",
        output_values=output_values,
        domain_note="",
    )
    module = getattr(_load(source, tmp_path), CLASS_NAME)()
    got = _decode(module(_encode(inputs, vocab)), inputs, "categorical", output_values)
    assert got == list(expected.values())
    assert _check_against_evaluate(program, vocab, 4, tmp_path) > 0
