"""Emit a program as the source of a standalone torch `nn.Module` with a model's interface.

The module takes what `distill.Model.forward` takes (token ids [batch, pos],
BOS at position 0, PAD after short inputs, optional mask) and returns what it
returns ([batch, pos, d_out]), computed from the program instead of weights:

- a categorical SOp is an integer code tensor [batch, pos] into the SOp's value
  table (code `len(values)` is "undefined", tracr's None); a numerical SOp is a
  float64 tensor (NaN is undefined);
- `map` / `sequence_map` are lookups into 1-D / 2-D tables, `select` gathers a
  [key value, query value] predicate table into [batch, query, key] booleans,
  `aggregate` and `selector_width` are one matmul of the selector with per-key
  columns (values, codes, liveness) giving means and counts; every table is
  computed here, at generation time, from the value sets `dsl.infer` gives and
  the callables of `dsl.functions.make_callable`, so the module needs no
  interpreter and imports only torch and math;
- what depends on positions only (indices, full, selects over them) has shape
  [1, ...] and broadcasts over the batch.

The generator is a dispatch table keyed by node type (one function per node
type), the shape of the interpreter.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import dsl
from dsl import ast
from dsl.functions import make_callable
from dsl.tracr_bridge import aggregate_means

CLASS_NAME = "DistilledProgram"

# Two float values closer than this (relative) are the same table value: a mean
# summed in another order differs from the value set's in the last bits only.
MATCH_TOLERANCE = 1e-9

NUMBER_TYPES = (int, float, bool)


class EmitError(dsl.DSLError):
    """A program the torch emitter cannot express (the message says which node and why)."""


@dataclass(frozen=True)
class _Tensor:
    """What one node became: a local variable of `forward` and how to read it."""

    var: str
    kind: str
    """"codes" (categorical: int64 codes into `values`), "numbers" (float64) or "selector"."""
    values: tuple = ()
    """codes: the value table (code len(values) is undefined); numbers: every value it can take."""
    maybe_undefined: bool = False
    """Whether some live position can hold the undefined code / NaN (decides extra masking)."""
    bad: str | None = None
    """selector: the variable of a [batch, query] mask of rows undefined on some live key."""
    batched: bool = True
    """False when it depends on positions only: shape [1, ...], broadcast over the batch."""


def torch_module_source(
    program: ast.Program,
    *,
    vocab,
    bos: str,
    max_seq_len: int,
    output_kind: str,
    output_values,
    domain_note: str,
) -> str:
    """The text of a module defining `DistilledProgram(nn.Module)`, computing `program`.

    `vocab` is in model id order (token id i is vocab[i], then BOS, then PAD);
    `output_values` in unembedding order. `domain_note` says on which domain and
    precondition the program was verified; it goes into the module's docstring.
    """
    if output_kind not in ("categorical", "numerical"):
        raise EmitError(f"output_kind: expected 'categorical' or 'numerical', got {output_kind!r}")
    emitter = _Emitter(program, tuple(vocab), max_seq_len)
    result = emitter.node(program.output)
    if result.kind == "selector":
        raise EmitError("the program returns a selector; it must return an SOp")
    emitter.emit_output(result, output_kind, tuple(output_values))
    return _module_text(
        emitter,
        program=program,
        vocab=tuple(vocab),
        bos=bos,
        max_seq_len=max_seq_len,
        output_kind=output_kind,
        output_values=tuple(output_values),
        domain_note=domain_note,
    )


# --------------------------------------------------------------------------
# Value tables.
# --------------------------------------------------------------------------


def _is_number(value) -> bool:
    return isinstance(value, NUMBER_TYPES)


def _value_order(value):
    # Numbers first in numeric order (so numeric tables are sorted), then the rest by type and text.
    if _is_number(value):
        return (0, float(value), "")
    return (1, 0.0, f"{type(value).__name__}:{value!r}")


def _ordered(values) -> tuple:
    """A value set as a table: None left out (it is the undefined code), numbers ascending."""
    return tuple(sorted({v for v in values if v is not None}, key=_value_order))


def _code_of(values: tuple) -> Callable:
    """value -> its code in `values`, or the undefined code len(values)."""
    index = {}
    for code, value in enumerate(values):
        index.setdefault(value, code)

    def code_of(value):
        if value is None:
            return len(values)
        try:
            return index.get(value, len(values))
        except TypeError:  # unhashable: never a table value
            return len(values)

    return code_of


def _outcome(function: Callable, *args):
    """A map's function(*args); None where tracr's evaluator gives None (a None argument) or
    is undefined (it raises): both are the undefined code."""
    if any(a is None for a in args):
        return None
    try:
        return function(*args)
    except Exception:  # noqa: BLE001 - any exception: undefined there, as in dsl.evaluate
        return None


def _selects(predicate: Callable, key, query) -> bool | None:
    """Whether a select's predicate holds; None where it raises (a comparison with None does).

    Unlike a map, a predicate is called with None values: a lambda may accept them."""
    try:
        return bool(predicate(key, query))
    except Exception:  # noqa: BLE001 - any exception: undefined there, as in dsl.evaluate
        return None


def _float_literal(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "math.nan"
    if isinstance(value, float) and math.isinf(value):
        return "math.inf" if value > 0 else "-math.inf"
    return repr(float(value))


def _value_literal(value) -> str:
    """Python source for a table value; non-finite floats, which repr cannot write, via math."""
    if isinstance(value, float) and not math.isfinite(value):
        return _float_literal(value)
    if isinstance(value, tuple):
        items = ", ".join(_value_literal(v) for v in value)
        return f"({items},)" if len(value) == 1 else f"({items})"
    return repr(value)


def _as_number(value):
    return float(value) if _is_number(value) else None


def _nested(rows, element: Callable[[object], str]) -> str:
    if rows and isinstance(rows[0], (list, tuple)):
        return "[" + ", ".join(_nested(row, element) for row in rows) + "]"
    return "[" + ", ".join(element(v) for v in rows) + "]"


# --------------------------------------------------------------------------
# The emitter: one generator per node type, writing lines of `forward`.
# --------------------------------------------------------------------------


@dataclass
class _Emitter:
    program: ast.Program
    vocab: tuple
    max_seq_len: int
    lines: list[str] = field(default_factory=list)
    buffers: list[tuple[str, str, str]] = field(default_factory=list)
    """(name, literal, comment) of every table, registered in __init__."""
    value_tables: dict[str, tuple] = field(default_factory=dict)
    """definition name -> its value table, shown in the module for readers."""
    uses_codes_of: bool = False

    def __post_init__(self):
        self.lookup = self.program.lookup()
        self.value_set = _value_sets(self.program, self.vocab, self.max_seq_len)
        self._by_name: dict[str, _Tensor] = {}
        self._by_node: dict[int, _Tensor] = {}
        self._counter = 0

    # -- bookkeeping ------------------------------------------------------

    def fresh(self, hint: str) -> str:
        self._counter += 1
        return f"{hint}{self._counter}"

    def line(self, text: str) -> None:
        self.lines.append(text)

    def table(self, hint: str, literal: str, comment: str) -> str:
        name = self.fresh(f"{hint}_table_")
        self.buffers.append((name, literal, comment))
        return f"self.{name}"

    def long_table(self, hint: str, rows, comment: str) -> str:
        return self.table(hint, f"torch.tensor({_nested(rows, str)}, dtype=torch.long)", comment)

    def float_table(self, hint: str, rows, comment: str, dtype: str = "torch.float64") -> str:
        literal = f"torch.tensor({_nested(rows, _float_literal)}, dtype={dtype})"
        return self.table(hint, literal, comment)

    def bool_table(self, hint: str, rows, comment: str) -> str:
        return self.table(hint, f"torch.tensor({_nested(rows, str)}, dtype=torch.bool)", comment)

    # -- traversal --------------------------------------------------------

    def node(self, node: ast.Node, name: str | None = None) -> _Tensor:
        cached = self._by_node.get(id(node))
        if cached is None:
            generator = GENERATORS.get(type(node))
            if generator is None:
                raise EmitError(f"cannot emit {type(node).__name__} node {node!r}")
            cached = self._by_node[id(node)] = generator(self, node, name or self.fresh("t"))
        return cached

    def resolve(self, name: str) -> _Tensor:
        if name not in self._by_name:
            if name not in self.lookup:
                raise EmitError(f"undefined name {name!r}")
            self._by_name[name] = self.node(self.lookup[name], _variable(name))
            if self._by_name[name].kind == "codes":
                self.value_tables[name] = self._by_name[name].values
        return self._by_name[name]

    def sop(self, node: ast.Node) -> _Tensor:
        value = self.node(node)
        if value.kind == "selector":
            raise EmitError(f"expected an SOp, got a selector: {node!r}")
        return value

    def selector(self, node: ast.Node) -> _Tensor:
        value = self.node(node)
        if value.kind != "selector":
            raise EmitError(f"expected a selector, got an SOp: {node!r}")
        return value

    # -- conversions between the two representations ---------------------

    def as_codes(self, value: _Tensor, hint: str) -> _Tensor:
        """A numbers tensor as codes into its (sorted) value table."""
        if value.kind == "codes":
            return value
        values = _ordered(value.values)
        var = self.fresh(f"{hint}_codes")
        self.line(f"{var} = {self.codes_of(value.var, values, hint)}")
        return _Tensor(var, "codes", values, maybe_undefined=True, batched=value.batched)

    def codes_of(self, expression: str, values: tuple, hint: str) -> str:
        """Source of an expression turning floats into codes of `values` (undefined if absent)."""
        numbers = sorted((float(v), code) for code, v in enumerate(values) if _is_number(v))
        if not numbers:
            return f"torch.full({expression}.shape, {len(values)}, dtype=torch.long, device=ids.device)"
        self.uses_codes_of = True
        sorted_values = [n for n, _ in numbers]
        midpoints = [(a + b) / 2 for a, b in itertools.pairwise(sorted_values)]
        return (
            f"_codes_of({expression}, "
            f"{self.float_table(f'{hint}_midpoints', midpoints, 'between consecutive numbers')}, "
            f"{self.float_table(f'{hint}_sorted', sorted_values, 'numbers, sorted')}, "
            f"{self.long_table(f'{hint}_code', [c for _, c in numbers], 'their codes')}, "
            f"{len(values)})"
        )

    def as_numbers(self, value: _Tensor, hint: str) -> str:
        """Source of a float64 tensor of the values (NaN where undefined or not a number)."""
        if value.kind == "numbers":
            return value.var
        table = self.float_table(
            hint, [_as_number(v) for v in value.values] + [None], "code -> number (NaN: none)"
        )
        return f"{table}[{value.var}]"

    # -- the output --------------------------------------------------------

    def emit_output(self, result: _Tensor, output_kind: str, output_values: tuple) -> None:
        if output_kind == "numerical":
            numbers = self.as_numbers(result, "output")
            self.line("# Numerical output: the value (NaN where the program is undefined).")
            self.line(f"scores = torch.where(live, {numbers}, 0.0).to(self.dtype)[:, :, None]")
        else:
            result = self.as_codes(result, "output")
            index_of = {v: i for i, v in enumerate(output_values)}
            one_hot = [
                [float(index_of.get(v, -1) == column) for column in range(len(output_values))]
                for v in result.values
            ] + [[0.0] * len(output_values)]
            table = self.float_table(
                "output", one_hot, "code -> one-hot over OUTPUT_VALUES", dtype="dtype"
            )
            self.line(
                "# Categorical output: one-hot of the value in OUTPUT_VALUES order (zeros: undefined)."
            )
            self.line(f"scores = torch.where(live[:, :, None], {table}[{result.var}], 0.0)")
        self.line("out = torch.nn.functional.pad(scores, (0, 0, 1, 0))  # position 0 (BOS): zeros")


def _variable(name: str) -> str:
    # The prefix keeps definition names apart from forward's own locals (ids, mask, out, ...).
    return "v_" + re.sub(r"\W", "_", name)


def _value_sets(program: ast.Program, vocab: tuple, max_seq_len: int) -> Callable[[ast.Node], set]:
    """SOp node -> the set of values it can take on inputs of length <= max_seq_len (dsl.infer)."""
    info = dsl.infer(program, vocab, max_seq_len)
    return lambda node: set(info.value_set(node) or ())


def _aggregate_values(em: _Emitter, node: ast.Aggregate, source: _Tensor) -> set:
    """Every value an aggregate gives: dsl.infer's set (tracr's rule), the source's values, the
    default, and the means of several selected numbers, which dsl.evaluate computes but tracr's
    rule leaves out."""
    means = aggregate_means(_ordered(source.values), em.max_seq_len)
    return em.value_set(node) | set(source.values) | {node.default} | means


# --------------------------------------------------------------------------
# Generators, one per node type: (emitter, node, variable) -> _Tensor.
# --------------------------------------------------------------------------


def _gen_name(em: _Emitter, node: ast.Name, var: str) -> _Tensor:
    return em.resolve(node.id)


def _gen_tokens(em: _Emitter, node: ast.Tokens, var: str) -> _Tensor:
    # Token id i < len(VOCAB) is VOCAB[i]: the id is the code. BOS and PAD become "undefined".
    if node.encoding is ast.NUMERICAL:
        table = em.float_table(
            "tokens", [_as_number(v) for v in em.vocab] + [None, None], "id -> number"
        )
        em.line(f"{var} = {table}[tokens]")
        return _Tensor(var, "numbers", em.vocab, maybe_undefined=not all(map(_is_number, em.vocab)))
    em.line(f"{var} = tokens.clamp(max={len(em.vocab)})")
    return _Tensor(var, "codes", em.vocab)


def _gen_indices(em: _Emitter, node: ast.Indices, var: str) -> _Tensor:
    if node.encoding is ast.NUMERICAL:
        em.line(f"{var} = positions.to(torch.float64)")
        return _Tensor(var, "numbers", tuple(range(em.max_seq_len)), batched=False)
    em.line(f"{var} = positions")
    return _Tensor(var, "codes", tuple(range(em.max_seq_len)), batched=False)


def _gen_full(em: _Emitter, node: ast.Full, var: str) -> _Tensor:
    if node.encoding is ast.NUMERICAL:
        em.line(
            f"{var} = torch.full((1, n), {_float_literal(_as_number(node.value))}, "
            "dtype=torch.float64, device=ids.device)"
        )
        return _Tensor(
            var, "numbers", (node.value,), maybe_undefined=not _is_number(node.value), batched=False
        )
    values = _ordered({node.value})  # empty for full(None): code 0 is then "undefined"
    em.line(f"{var} = torch.zeros((1, n), dtype=torch.long, device=ids.device)")
    return _Tensor(var, "codes", values, maybe_undefined=not values, batched=False)


def _results(em: _Emitter, node: ast.SOp, outcomes: list) -> tuple:
    """The value table of a map's results: what dsl.infer says, plus anything it left out."""
    return _ordered(em.value_set(node) | {v for v in outcomes if v is not None})


def _gen_map(em: _Emitter, node: ast.Map, var: str) -> _Tensor:
    arg = em.as_codes(em.sop(node.arg), var)
    function = make_callable(node.fn)
    outcomes = [_outcome(function, v) for v in arg.values] + [None]
    undefined = any(v is None for v in outcomes[:-1]) or arg.maybe_undefined
    comment = f"map over {len(arg.values)} values (last row: undefined)"
    if node.encoding is ast.NUMERICAL:
        table = em.float_table(var, [_as_number(v) for v in outcomes], comment)
        em.line(f"{var} = {table}[{arg.var}]")
        return _Tensor(
            var,
            "numbers",
            _results(em, node, outcomes),
            maybe_undefined=undefined,
            batched=arg.batched,
        )
    values = _results(em, node, outcomes)
    table = em.long_table(var, [_code_of(values)(v) for v in outcomes], comment)
    em.line(f"{var} = {table}[{arg.var}]")
    return _Tensor(var, "codes", values, maybe_undefined=undefined, batched=arg.batched)


def _gen_sequence_map(em: _Emitter, node: ast.SequenceMap, var: str) -> _Tensor:
    left = em.as_codes(em.sop(node.left), f"{var}_left")
    right = em.as_codes(em.sop(node.right), f"{var}_right")
    function = make_callable(node.fn)
    grid = [[_outcome(function, x, y) for y in right.values] + [None] for x in left.values] + [
        [None] * (len(right.values) + 1)
    ]
    flat = [v for row in grid for v in row]
    undefined = any(v is None for row in grid[:-1] for v in row[:-1])
    undefined = undefined or left.maybe_undefined or right.maybe_undefined
    batched = left.batched or right.batched
    comment = f"sequence_map over {len(left.values)} x {len(right.values)} values"
    if node.encoding is ast.NUMERICAL:
        table = em.float_table(var, [[_as_number(v) for v in row] for row in grid], comment)
        em.line(f"{var} = {table}[{left.var}, {right.var}]")
        return _Tensor(
            var, "numbers", _results(em, node, flat), maybe_undefined=undefined, batched=batched
        )
    values = _results(em, node, flat)
    code_of = _code_of(values)
    table = em.long_table(var, [[code_of(v) for v in row] for row in grid], comment)
    em.line(f"{var} = {table}[{left.var}, {right.var}]")
    return _Tensor(var, "codes", values, maybe_undefined=undefined, batched=batched)


def _gen_select(em: _Emitter, node: ast.Select, var: str) -> _Tensor:
    keys = em.as_codes(em.sop(node.keys), f"{var}_keys")
    queries = em.as_codes(em.sop(node.queries), f"{var}_queries")
    predicate = make_callable(node.predicate)
    # outcome[k][q]: True / False, or None where the predicate raises; the last row and column
    # are the undefined code, which is None to the predicate.
    outcome = [
        [_selects(predicate, k, q) for q in (*queries.values, None)] for k in (*keys.values, None)
    ]
    raises = any(o is None for row in outcome[:-1] for o in row[:-1])
    gather = f"[{keys.var}[:, None, :], {queries.var}[:, :, None]]"  # -> [batch, query, key]
    comment = f"select: [key value, query value] over {len(keys.values)} x {len(queries.values)}"
    em.line(
        f"{var} = {em.bool_table(var, [[bool(o) for o in row] for row in outcome], comment)}{gather}"
    )
    if not (raises or keys.maybe_undefined or queries.maybe_undefined):
        return _Tensor(var, "selector", batched=keys.batched or queries.batched)
    undefined = em.bool_table(
        f"{var}_undefined",
        [[o is None for o in row] for row in outcome],
        "where the predicate is undefined",
    )
    bad = f"{var}_bad"
    em.line(f"{bad} = ({undefined}{gather} & key_live).any(-1)")
    return _Tensor(var, "selector", bad=bad, batched=keys.batched or queries.batched)


def _merged_bad(em: _Emitter, var: str, *parts: _Tensor) -> str | None:
    bads = [p.bad for p in parts if p.bad]
    if not bads:
        return None
    em.line(f"{var}_bad = {' | '.join(bads)}")
    return f"{var}_bad"


def _gen_select_and(em: _Emitter, node: ast.SelectAnd, var: str) -> _Tensor:
    left, right = em.selector(node.left), em.selector(node.right)
    em.line(f"{var} = {left.var} & {right.var}")
    batched = left.batched or right.batched
    return _Tensor(var, "selector", bad=_merged_bad(em, var, left, right), batched=batched)


def _gen_select_or(em: _Emitter, node: ast.SelectOr, var: str) -> _Tensor:
    left, right = em.selector(node.left), em.selector(node.right)
    em.line(f"{var} = {left.var} | {right.var}")
    batched = left.batched or right.batched
    return _Tensor(var, "selector", bad=_merged_bad(em, var, left, right), batched=batched)


def _gen_select_not(em: _Emitter, node: ast.SelectNot, var: str) -> _Tensor:
    inner = em.selector(node.inner)
    em.line(f"{var} = ~{inner.var}")  # PAD keys are masked where the selector is used
    return _Tensor(var, "selector", bad=inner.bad, batched=inner.batched)


def _selected_sums(em: _Emitter, var: str, selector: _Tensor, columns: list[str]) -> str:
    """Emit sums over each query's selected live keys of per-key columns; returns the variable.

    One matmul of the selector ([1 or batch, query, key], as 0/1 floats) with the
    columns ([batch, key, c], zero at PAD) does every mean and count of an aggregate
    at once, and a selector that does not depend on the input is never copied per input.
    """
    stacked = f"torch.stack([{', '.join(columns)}], -1)"
    if selector.batched:
        em.line(f"{var}_sums = torch.matmul({selector.var}.to(torch.float64), {stacked})")
    else:
        em.line(
            f'{var}_sums = torch.einsum("qk,bkc->bqc", {selector.var}[0].to(torch.float64), {stacked})'
        )
    return f"{var}_sums"  # [batch, query, column]


def _number_columns(em: _Emitter, var: str, source: _Tensor) -> list[str]:
    """The column of a source's numbers, then, if some can be NaN (undefined, or not a number),
    a column counting those, which are zeroed in the first so they cannot spread to other queries."""
    numbers = em.as_numbers(source, f"{var}_numbers")
    always_numbers = all(map(_is_number, source.values)) and not source.maybe_undefined
    if always_numbers:
        return [f"torch.where(live, {numbers}, 0.0)"]
    em.line(f"{var}_numbers = {numbers}")
    return [
        f"torch.where(live, {var}_numbers, 0.0).nan_to_num(0.0)",
        f"(live & {var}_numbers.isnan()).to(torch.float64)",
    ]


def _mean(
    em: _Emitter, var: str, sums: str, columns: list[str], count: str, indent: str = ""
) -> str:
    """Emit the mean of the selected numbers (NaN where one of them is); returns the variable."""
    em.line(f"{indent}{var}_mean = {sums}[..., 0] / {count}.clamp(min=1)")
    if len(columns) == 2:  # the column counting NaNs
        em.line(f"{indent}{var}_mean = {var}_mean.masked_fill({sums}[..., 1] > 0, math.nan)")
    return f"{var}_mean"


def _gen_selector_width(em: _Emitter, node: ast.SelectorWidth, var: str) -> _Tensor:
    selector = em.selector(node.selector)
    sums = _selected_sums(em, var, selector, ["live_numbers"])
    em.line(f"{var}_width = {sums}[..., 0].round().long()")
    if node.encoding is ast.NUMERICAL:
        em.line(f"{var} = {var}_width.to(torch.float64)")
        if selector.bad:
            em.line(f"{var} = {var}.masked_fill({selector.bad}, math.nan)")
        return _Tensor(
            var, "numbers", tuple(range(em.max_seq_len + 1)), maybe_undefined=bool(selector.bad)
        )
    values = _ordered(em.value_set(node) | set(range(em.max_seq_len + 1)))
    code_of = _code_of(values)
    table = em.long_table(var, [code_of(w) for w in range(em.max_seq_len + 1)], "width -> code")
    em.line(f"{var} = {table}[{var}_width]")
    if selector.bad:
        em.line(f"{var} = {var}.masked_fill({selector.bad}, {len(values)})")
    return _Tensor(var, "codes", values, maybe_undefined=bool(selector.bad))


def _gen_aggregate(em: _Emitter, node: ast.Aggregate, var: str) -> _Tensor:
    selector, source = em.selector(node.selector), em.sop(node.sop)
    values = _ordered(_aggregate_values(em, node, source))
    if node.encoding is ast.NUMERICAL:
        columns = _number_columns(em, var, source)
        sums = _selected_sums(em, var, selector, [*columns, "live_numbers"])
        em.line(f"{var}_count = {sums}[..., {len(columns)}]")
        # tracr's mean of the selected values; undefined if one of them is.
        mean = _mean(em, var, sums, columns, f"{var}_count")
        default = _float_literal(_as_number(node.default))
        em.line(f"{var} = torch.where({var}_count > 0, {mean}, {default})")
        if selector.bad:
            em.line(f"{var} = {var}.masked_fill({selector.bad}, math.nan)")
        undefined = bool(selector.bad) or source.maybe_undefined or not _is_number(node.default)
        return _Tensor(var, "numbers", values, maybe_undefined=undefined)

    code_of = _code_of(values)
    undefined_code = len(values)
    default_code = code_of(node.default)
    has_numbers = source.kind == "numbers" or any(_is_number(v) for v in source.values)
    number_columns = _number_columns(em, var, source) if has_numbers else []
    columns = list(number_columns)
    if source.kind == "codes":
        # With exactly one key selected, the sum of the selected codes is that key's code.
        columns.append(f"torch.where(live, {source.var}, 0).to(torch.float64)")
    sums = _selected_sums(em, var, selector, [*columns, "live_numbers"])
    count = f"{var}_count"
    em.line(f"{count} = {sums}[..., {len(columns)}]")
    if source.kind == "numbers":
        # The mean of one selected number is that number: one float path for every count.
        means = em.codes_of(_mean(em, var, sums, number_columns, count), values, var)
        em.line(f"{var} = torch.where({count} == 0, {default_code}, {means})")
    else:
        # One selected key: its value, whatever its type (a lookup, no float round trip).
        translate = em.long_table(
            f"{var}_source",
            [code_of(v) for v in source.values] + [undefined_code],
            "source code -> code",
        )
        # Clamped: where several keys are selected the sum means nothing and is replaced below.
        picked = f"{sums}[..., {len(columns) - 1}].round().long().clamp(max={len(source.values)})"
        em.line(f"{var} = torch.where({count} == 0, {default_code}, {translate}[{picked}])")
        if has_numbers:
            # Several selected: their mean, a value of the table. Looked up only when some query
            # selects several keys: compiled tracr programs almost never do.
            em.line(f"{var}_several = {count} >= 2")
            em.line(f"if bool({var}_several.any()):")
            mean = _mean(em, var, sums, number_columns, count, indent="    ")
            means = em.codes_of(mean, values, var)
            em.line(f"    {var} = torch.where({var}_several, {means}, {var})")
        else:
            em.line(f"{var} = {var}.masked_fill({count} >= 2, {undefined_code})  # tracr raises")
    if selector.bad:
        em.line(f"{var} = {var}.masked_fill({selector.bad}, {undefined_code})")
    return _Tensor(var, "codes", values, maybe_undefined=True)


GENERATORS: dict[type, Callable[[_Emitter, ast.Node, str], _Tensor]] = {
    ast.Name: _gen_name,
    ast.Tokens: _gen_tokens,
    ast.Indices: _gen_indices,
    ast.Full: _gen_full,
    ast.Map: _gen_map,
    ast.SequenceMap: _gen_sequence_map,
    ast.Aggregate: _gen_aggregate,
    ast.SelectorWidth: _gen_selector_width,
    ast.Select: _gen_select,
    ast.SelectAnd: _gen_select_and,
    ast.SelectOr: _gen_select_or,
    ast.SelectNot: _gen_select_not,
}


# --------------------------------------------------------------------------
# The module text.
# --------------------------------------------------------------------------

_CODES_OF = '''
def _codes_of(x, midpoints, sorted_values, codes, undefined_code):
    """Floats -> codes of a value table: the nearest table number, if within tolerance."""
    nearest = torch.searchsorted(midpoints, x.contiguous())
    found = (x - sorted_values[nearest]).abs() <= MATCH_TOLERANCE * (1.0 + x.abs())
    return torch.where(found, codes[nearest], undefined_code)
'''


_SHARED_LOCALS = (
    ("key_live", "key_live = live[:, None, :]  # [batch, 1, key]: PAD is never selected"),
    ("live_numbers", "live_numbers = live.to(torch.float64)"),
    (
        "positions",
        "positions = torch.arange(n, device=ids.device)[None, :]  # [1, n]: broadcast over the batch",
    ),
)


def _docstring_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')


def _indent(text: str, prefix: str = "    ") -> str:
    return "\n".join(prefix + line if line else line for line in text.splitlines())


def _module_text(
    emitter: _Emitter,
    *,
    program: ast.Program,
    vocab: tuple,
    bos: str,
    max_seq_len: int,
    output_kind: str,
    output_values: tuple,
    domain_note: str,
) -> str:
    d_out = len(output_values) if output_kind == "categorical" else 1
    if output_kind == "categorical":
        output_doc = (
            "[batch, pos, D_OUT] scores: at each input position the one-hot of the program's\n"
            "value in OUTPUT_VALUES order (argmax decodes it, as for the model). Position 0 (BOS)\n"
            "and PAD positions are all zeros."
        )
        undefined_doc = (
            "all-zero scores (no OUTPUT_VALUES column is hot); this is also what a value\n"
            "outside OUTPUT_VALUES gives."
        )
    else:
        output_doc = (
            "[batch, pos, 1]: at each input position the program's value. Position 0 (BOS) and\n"
            "PAD positions are 0."
        )
        undefined_doc = "NaN."
    doc = f'''"""A replacement for the distilled network, computed from its program (generated by distill).

Program:

{_indent(_docstring_text(dsl.to_source(program)))}

Verified: {_docstring_text(domain_note)}
Outside that domain and precondition nothing was checked.

Interface (the same as distill.Model.forward):
    forward(ids, mask=None)
    ids   [batch, pos] int64 token ids, BOS at position 0: id i < len(VOCAB) is VOCAB[i],
          BOS_ID is BOS, PAD_ID pads shorter inputs (at most MAX_SEQ_LEN tokens after BOS).
    mask  [batch, pos] bool, False at PAD (default: ids != PAD_ID).
    returns {_indent(output_doc, " " * 12).lstrip()}

Undefined values: where the program is undefined (tracr's evaluator would raise or
give None: an aggregate selecting nothing with no default, a function outside its
domain, a mean of non-numbers), the positions whose value depends on it get
{_indent(undefined_doc, "").strip()}

Every table below was computed when this file was generated; nothing is
interpreted at run time. Imports: torch and math only.
"""'''
    buffers = "\n".join(
        f'        self.register_buffer("{name}", {literal}, persistent=False)  # {comment}'
        for name, literal, comment in emitter.buffers
    )
    entries = "".join(
        f"\n    {name!r}: {_value_literal(values)},"
        for name, values in emitter.value_tables.items()
    )
    value_tables = "{" + entries + ("\n}" if entries else "}")
    body = "\n".join("        " + line for line in emitter.lines)
    # Locals that only some programs read: defined only where used (each costs a kernel launch).
    shared = "".join(
        f"        {text}\n" for name, text in _SHARED_LOCALS if re.search(rf"\b{name}\b", body)
    )
    return f'''{doc}

import math

import torch

VOCAB = {vocab!r}
BOS = {bos!r}
BOS_ID = {len(vocab)}
PAD_ID = {len(vocab) + 1}
MAX_SEQ_LEN = {max_seq_len}
OUTPUT_KIND = {output_kind!r}
OUTPUT_VALUES = {output_values!r}
D_OUT = {d_out}
MATCH_TOLERANCE = {MATCH_TOLERANCE!r}

# The value table of each categorical definition: code i is VALUES[name][i], and
# code len(VALUES[name]) is "undefined".
VALUES = {value_tables}
{_CODES_OF if emitter.uses_codes_of else ""}

class {CLASS_NAME}(torch.nn.Module):
    def __init__(self, dtype=torch.float32):
        """dtype: of the output scores / values (the model's dtype; float32 by default)."""
        super().__init__()
        self.dtype = dtype
{buffers}

    def forward(self, ids, mask=None):
        if mask is None:
            mask = ids != PAD_ID
        batch, n = ids.shape[0], ids.shape[1] - 1
        if n == 0:
            return torch.zeros(batch, 1, D_OUT, dtype=self.dtype, device=ids.device)
        tokens = ids[:, 1:]  # [batch, n]: the input after BOS
        live = mask[:, 1:]  # [batch, n]: positions that hold a token
{shared}{body}
        return out
'''
