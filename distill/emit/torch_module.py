"""Emit a program as the source of a standalone torch `nn.Module` with a model's interface.

The module takes what `distill.Model.forward` takes (token ids [batch, pos],
BOS at position 0, PAD after short inputs, optional mask) and returns what it
returns ([batch, pos, d_out]), computed from the program instead of weights:

- a categorical SOp is an integer code tensor [batch, pos] into the SOp's value
  table (code `len(values)` is "undefined", tracr's None); a numerical SOp is a
  float64 tensor (NaN is undefined);
- `map` / `sequence_map` are lookups into 1-D / flattened 2-D tables (a lookup
  of a lookup, and the one-hot output of one, composed into one table here);
  `select` gathers each query's row of a [query value, key value] predicate table,
  then each key's entry, into [batch, query, key] booleans (PAD keys read an
  all-False column); `selector_width` counts them; a categorical `aggregate` is
  one float32 matmul of the selector with a per-key column `offset + code`, whose
  sum gives the count and the sum of codes exactly, and one table lookup maps it
  to the result (default, the one selected value, or a mean); a numerical one is
  a float64 matmul giving sums and counts. Every table is computed here, at
  generation time, from the value sets `dsl.infer` gives and the callables of
  `dsl.functions.make_callable`, so the module needs no interpreter and imports
  only torch and math;
- what depends on positions only (indices, full, maps and selects over them) is
  computed once in `__init__` for MAX_SEQ_LEN positions; `forward` slices it to
  [1, n(, n)] and it broadcasts over the batch;
- an expression emitted twice is computed once, and what no later line reads
  is dropped: on small batches each torch operation costs microseconds, so the
  number of operations is the time.

The generator is a dispatch table keyed by node type (one function per node
type), the shape of the interpreter.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction

import dsl
from dsl import ast
from dsl.functions import make_callable
from dsl.means import aggregate_means

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
    """False when it depends on positions only: computed once in __init__ for MAX_SEQ_LEN
    positions, sliced to [1, n(, n)] in forward and broadcast over the batch."""
    live_keys: bool = False
    """selector: False at every PAD key already, so no key_live mask is needed where it is used."""
    pad_undefined: bool = False
    """Whether PAD positions hold the undefined code / NaN (as tokens do, and maps of them)."""


def torch_module_source(
    program: ast.Program,
    *,
    vocab,
    bos: str,
    max_seq_len: int,
    output_kind: str,
    output_values,
    domain_note: str,
    label_sets: Mapping | None = None,
) -> str:
    """The text of a module defining `DistilledProgram(nn.Module)`, computing `program`.

    `label_sets` makes a multi-label output: each program value names the output values it
    switches on (score 1, the rest 0, so "logit > 0" reads the set back).

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
    emitter.emit_output(result, output_kind, tuple(output_values), label_sets)
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
    """The body of `forward`."""
    init_lines: list[str] = field(default_factory=list)
    """The end of `__init__`: what depends on positions only, for MAX_SEQ_LEN positions."""
    slice_lines: list[str] = field(default_factory=list)
    """The start of `forward`: the first n positions of what __init__ computed."""
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
        self._by_expression: dict[tuple[bool, str], str] = {}
        self._exposed: set[str] = set()
        self._reads_input: dict[int, bool] = {}
        self._lookups: dict[tuple[bool, str], tuple[list, str]] = {}
        """(in_init, variable) -> (rows, index) of a variable assigned `table[index]` (codes)."""
        self._counter = 0
        self.in_init = False
        """Whether lines now go to __init__ (generating a node that depends on positions only)."""

    # -- bookkeeping ------------------------------------------------------

    def fresh(self, hint: str) -> str:
        self._counter += 1
        return f"{hint}{self._counter}"

    def line(self, text: str) -> None:
        assigned = re.match(r"\s*(\w+) = ", text)
        if assigned:  # a variable assigned again is no longer the lookup it was
            self._lookups.pop((self.in_init, assigned.group(1)), None)
        (self.init_lines if self.in_init else self.lines).append(text)

    def forward_line(self, text: str) -> None:
        """A line of `forward` even while generating a position-only node (it reads `live`)."""
        self.lines.append(text)

    def let(self, var: str, expression: str) -> str:
        """Assign `expression` to `var`, or return the variable that already holds it: a repeated
        expression (tokens.clamp, the same lookup twice) is computed once."""
        key = (self.in_init, expression)
        if key not in self._by_expression:
            self.line(f"{var} = {expression}")
            self._by_expression[key] = var
        return self._by_expression[key]

    def expose(self, var: str, slicing: str) -> None:
        """Make an __init__ variable (computed for MAX_SEQ_LEN positions) a buffer, and `var` in
        forward its first n positions."""
        if var in self._exposed:
            return
        self._exposed.add(var)
        self.init_lines.append(f'self.register_buffer("{var}", {var}, persistent=False)')
        self.slice_lines.append(f"{var} = self.{var}{slicing}")

    def position_matrix(self, selector: _Tensor, dtype: str, transposed: bool) -> str:
        """A position-only selector as a float [query, key] (or [key, query]) matrix in forward."""
        suffix = f"{dtype.removeprefix('torch.')}{'_t' if transposed else ''}"
        var = f"{selector.var}_{suffix}"
        if var not in self._exposed:
            matrix = f"{selector.var}[0].T" if transposed else f"{selector.var}[0]"
            self.init_lines.append(f"{var} = {matrix}.to({dtype}).contiguous()")
            self.expose(var, "[:n, :n]")
        return var

    def gather(
        self,
        hint: str,
        rows: list,
        comment: str,
        index: str,
        dtype: str = "torch.long",
        var: str | None = None,
    ) -> str:
        """Source of `table[index]` for a table of `rows` (entry per code); assigned to `var`
        when given. Where `index` is itself a lookup of codes, the two tables are composed
        here, at generation time: one gather at run time instead of two."""
        inner = self._lookups.get((self.in_init, index))
        if inner is not None:
            inner_rows, index = inner
            rows = [rows[code] for code in inner_rows]
            comment += ", composed with the lookup that gave its index"
        if dtype == "torch.long":
            table = self.long_table(hint, rows, comment)
        else:
            table = self.float_table(hint, rows, comment, dtype=dtype)
        if var is None:
            return f"_gather({table}, {index})"
        var = self.let(var, f"_gather({table}, {index})")
        if dtype == "torch.long":
            self._lookups[(self.in_init, var)] = (rows, index)
        return var

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
            var = name or self.fresh("t")
            if self.in_init or self.reads_input(node):
                cached = generator(self, node, var)
            else:  # position-only: computed once, in __init__
                self.in_init = True
                try:
                    cached = generator(self, node, var)
                finally:
                    self.in_init = False
            self._by_node[id(node)] = cached
        if not cached.batched and not self.in_init:
            self.expose(cached.var, "[:, :n, :n]" if cached.kind == "selector" else "[:, :n]")
        return cached

    def most_selected(self, selector: ast.Node) -> int | None:
        """The most keys a position-only selector selects for one query (None: not known)."""
        width = ast.Program(self.program.definitions, ast.SelectorWidth(selector))
        widths = dsl.evaluate(width, [[self.vocab[0]] * self.max_seq_len], undefined="mark")[0]
        return None if widths is None or None in widths else max(widths)

    def reads_input(self, node: ast.Node) -> bool:
        """Whether a node's value depends on the input (not on positions only)."""
        if id(node) not in self._reads_input:
            if isinstance(node, ast.Name):
                if node.id not in self.lookup:
                    raise EmitError(f"undefined name {node.id!r}")
                reads = self.reads_input(self.lookup[node.id])
            elif isinstance(node, (ast.Tokens, ast.Aggregate, ast.SelectorWidth)):
                reads = True
            else:
                reads = any(self.reads_input(child) for child in node.children)
            self._reads_input[id(node)] = reads
        return self._reads_input[id(node)]

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
        return _Tensor(
            var,
            "codes",
            values,
            maybe_undefined=True,
            batched=value.batched,
            pad_undefined=value.pad_undefined,
        )

    def codes_of(self, expression: str, values: tuple, hint: str) -> str:
        """Source of an expression turning floats into codes of `values` (undefined if absent)."""
        numbers = sorted((float(v), code) for code, v in enumerate(values) if _is_number(v))
        if not numbers:
            return f"torch.full_like({expression}, {len(values)}, dtype=torch.long)"
        self.uses_codes_of = True
        sorted_values = [n for n, _ in numbers]
        return (
            f"_codes_of({expression}, "
            f"{self.float_table(f'{hint}_sorted', sorted_values, 'numbers, sorted')}, "
            f"{self.long_table(f'{hint}_code', [c for _, c in numbers], 'their codes')}, "
            f"{len(values)})"
        )

    def as_numbers(self, value: _Tensor, hint: str) -> str:
        """Source of a float64 tensor of the values (NaN where undefined or not a number)."""
        if value.kind == "numbers":
            return value.var
        rows = [_as_number(v) for v in value.values] + [None]
        return self.gather(hint, rows, "code -> number (NaN: none)", value.var, "torch.float64")

    # -- the output --------------------------------------------------------

    def emit_output(
        self, result: _Tensor, output_kind: str, output_values: tuple, label_sets=None
    ) -> None:
        # Masking and the BOS column are applied to [batch, n] values, before the output is
        # widened to [batch, pos, D_OUT]: each is then one cheap operation.
        if output_kind == "numerical":
            numbers = self.as_numbers(result, "output")
            self.line("# Numerical output: the value (NaN where the program is undefined).")
            self.line(
                f"values = torch.nn.functional.pad(torch.where(live, {numbers}, 0.0), (1, 0))"
                "  # position 0 (BOS): 0"
            )
            self.line("out = values.to(self.dtype)[:, :, None]")
            return
        result = self.as_codes(result, "output")
        undefined_code = len(result.values)
        index_of = {v: i for i, v in enumerate(output_values)}

        def switched_on(v) -> set:
            if label_sets is not None:
                return {index_of[x] for x in label_sets.get(v, ()) if x in index_of}
            return {index_of.get(v, -1)}

        one_hot = [
            [float(column in switched_on(v)) for column in range(len(output_values))]
            for v in result.values
        ] + [[0.0] * len(output_values)]
        index = result.var
        if (False, result.var) in self._lookups:  # one gather: the one-hot table composed in
            rows, index = self._lookups[(False, result.var)]
            one_hot = [one_hot[code] for code in rows] + [one_hot[-1]]
            undefined_code = len(rows)
        table = self.float_table(
            "output", one_hot, "code -> one-hot over OUTPUT_VALUES", dtype="dtype"
        )
        self.line(
            "# Categorical output: one-hot of the value in OUTPUT_VALUES order (zeros: undefined)."
        )
        if not result.pad_undefined:  # PAD positions: undefined, all-zero scores
            index = f"torch.where(live, {index}, {undefined_code})"
        self.line(
            f"codes = torch.nn.functional.pad({index}, (1, 0), value={undefined_code})"
            "  # position 0 (BOS): undefined"
        )
        self.line(f"out = _gather({table}, codes)")


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
        var = em.let(var, f"{table}[tokens]")
        undefined = not all(map(_is_number, em.vocab))
        return _Tensor(var, "numbers", em.vocab, maybe_undefined=undefined, pad_undefined=True)
    var = em.let("token_codes", f"tokens.clamp(max={len(em.vocab)})")
    return _Tensor(var, "codes", em.vocab, pad_undefined=True)


def _gen_indices(em: _Emitter, node: ast.Indices, var: str) -> _Tensor:
    if node.encoding is ast.NUMERICAL:
        var = em.let(var, "positions.to(torch.float64)")
        return _Tensor(var, "numbers", tuple(range(em.max_seq_len)), batched=False)
    return _Tensor("positions", "codes", tuple(range(em.max_seq_len)), batched=False)


def _gen_full(em: _Emitter, node: ast.Full, var: str) -> _Tensor:
    if node.encoding is ast.NUMERICAL:
        literal = _float_literal(_as_number(node.value))
        var = em.let(var, f"torch.full((1, n), {literal}, dtype=torch.float64)")
        return _Tensor(
            var, "numbers", (node.value,), maybe_undefined=not _is_number(node.value), batched=False
        )
    values = _ordered({node.value})  # empty for full(None): code 0 is then "undefined"
    var = em.let(var, "torch.zeros((1, n), dtype=torch.long)")
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
    values = _results(em, node, outcomes)
    if node.encoding is ast.NUMERICAL:
        rows, dtype, kind = [_as_number(v) for v in outcomes], "torch.float64", "numbers"
    else:
        rows, dtype, kind = list(map(_code_of(values), outcomes)), "torch.long", "codes"
    var = em.gather(var, rows, comment, arg.var, dtype, var=var)
    return _Tensor(
        var,
        kind,
        values,
        maybe_undefined=undefined,
        batched=arg.batched,
        pad_undefined=arg.pad_undefined,
    )


def _gen_sequence_map(em: _Emitter, node: ast.SequenceMap, var: str) -> _Tensor:
    arithmetic = _elementwise_arithmetic(em, node, var)
    if arithmetic is not None:
        return arithmetic
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
    comment = f"sequence_map over {len(left.values)} x {len(right.values)} values, flattened"
    values = _results(em, node, flat)
    if node.encoding is ast.NUMERICAL:
        rows, dtype, kind = [_as_number(v) for v in flat], "torch.float64", "numbers"
    else:
        rows, dtype, kind = list(map(_code_of(values), flat)), "torch.long", "codes"
    # One lookup in the flattened [left, right] table (two advanced indices cost twice as much).
    index = f"{left.var} * {len(right.values) + 1} + {right.var}"
    var = em.gather(var, rows, comment, index, dtype, var=var)
    return _Tensor(
        var,
        kind,
        values,
        maybe_undefined=undefined,
        batched=batched,
        pad_undefined=left.pad_undefined or right.pad_undefined,
    )


# Operators whose float64 result is Python's float result for the same operands (IEEE).
_ELEMENTWISE = ("+", "-", "*")


def _elementwise_arithmetic(em: _Emitter, node: ast.SequenceMap, var: str) -> _Tensor | None:
    """`x OP y` on two numerical operands as one torch operation (NaN, undefined, propagates);
    None when the function is anything else (then it is a table lookup)."""
    fn = node.fn
    if node.encoding is not ast.NUMERICAL or not isinstance(fn, ast.Lambda):
        return None
    body = fn.body
    if not (
        isinstance(body, ast.BinOp)
        and body.op in _ELEMENTWISE
        and isinstance(body.left, ast.Var)
        and isinstance(body.right, ast.Var)
        and {body.left.name, body.right.name} == set(fn.params)
    ):
        return None
    left, right = em.sop(node.left), em.sop(node.right)
    if left.kind != "numbers" or right.kind != "numbers":
        return None
    operands = {fn.params[0]: left, fn.params[1]: right}
    a, b = operands[body.left.name], operands[body.right.name]
    function = make_callable(fn)
    values = _results(
        em, node, [_outcome(function, x, y) for x in left.values for y in right.values]
    )
    var = em.let(var, f"{a.var} {body.op} {b.var}")
    return _Tensor(
        var,
        "numbers",
        values,
        maybe_undefined=left.maybe_undefined or right.maybe_undefined,
        batched=left.batched or right.batched,
        pad_undefined=left.pad_undefined or right.pad_undefined,
    )


def _gen_select(em: _Emitter, node: ast.Select, var: str) -> _Tensor:
    keys = em.as_codes(em.sop(node.keys), f"{var}_keys")
    queries = em.as_codes(em.sop(node.queries), f"{var}_queries")
    predicate = make_callable(node.predicate)
    # outcome[q][k]: True / False, or None where the predicate raises; the last row and column
    # are the undefined code, which is None to the predicate. A batched select has one more key
    # column, all False: PAD keys are mapped to it, so they are never selected.
    batched = keys.batched or queries.batched
    # Keys undefined exactly at PAD: the undefined column is the PAD column, all False.
    undefined_is_pad = keys.pad_undefined and not keys.maybe_undefined
    outcome = [
        [_selects(predicate, k, q) for k in keys.values]
        + [False if undefined_is_pad else _selects(predicate, None, q)]
        + ([False] if batched and not undefined_is_pad else [])
        for q in (*queries.values, None)
    ]
    raises = any(o is None for row in outcome[:-1] for o in row[: len(keys.values)])
    key_codes = keys.var
    if batched and not undefined_is_pad:
        key_codes = em.let(
            f"{var}_key_codes", f"torch.where(live, {keys.var}, {len(keys.values) + 1})"
        )
    comment = f"select: [query value, key value] over {len(queries.values)} x {len(keys.values)}"

    def gathered(hint: str, rows: list[list[bool]], comment: str) -> str:
        # Each query's row of the table, then each key's entry in it: [batch, query, key].
        by_query = em.let(
            f"{hint}_rows", f"_gather({em.bool_table(hint, rows, comment)}, {queries.var})"
        )
        return (
            f"torch.gather({by_query}.expand({key_codes}.shape[0], n, -1), 2, "
            f"{key_codes}[:, None, :].expand(-1, n, -1))"
        )

    var = em.let(var, gathered(var, [[bool(o) for o in row] for row in outcome], comment))
    if not (raises or keys.maybe_undefined or queries.maybe_undefined):
        return _Tensor(var, "selector", batched=batched, live_keys=batched)
    undefined = gathered(
        f"{var}_undefined",
        [[o is None for o in row] for row in outcome],
        "where the predicate is undefined",
    )
    bad = f"{var}_bad"
    if batched:
        em.line(f"{bad} = {undefined}.any(-1)")
    else:
        em.line(f"{var}_undefined = {undefined}")
        em.expose(f"{var}_undefined", "[:, :n, :n]")
        em.forward_line(f"{bad} = ({var}_undefined & key_live).any(-1)")
    return _Tensor(var, "selector", bad=bad, batched=batched, live_keys=batched)


def _merged_bad(em: _Emitter, var: str, *parts: _Tensor) -> str | None:
    bads = [p.bad for p in parts if p.bad]
    if not bads:
        return None
    em.forward_line(f"{var}_bad = {' | '.join(bads)}")
    return f"{var}_bad"


def _gen_select_and(em: _Emitter, node: ast.SelectAnd, var: str) -> _Tensor:
    # Live keys if either side selects only live keys.
    return _combined_selector(em, node, var, "&", any)


def _gen_select_or(em: _Emitter, node: ast.SelectOr, var: str) -> _Tensor:
    # Live keys only if both sides select only live keys.
    return _combined_selector(em, node, var, "|", all)


def _combined_selector(em: _Emitter, node, var: str, operator: str, live_if) -> _Tensor:
    left, right = em.selector(node.left), em.selector(node.right)
    var = em.let(var, f"{left.var} {operator} {right.var}")
    return _Tensor(
        var,
        "selector",
        bad=_merged_bad(em, var, left, right),
        batched=left.batched or right.batched,
        live_keys=live_if((left.live_keys, right.live_keys)),
    )


def _gen_select_not(em: _Emitter, node: ast.SelectNot, var: str) -> _Tensor:
    inner = em.selector(node.inner)
    var = em.let(var, f"~{inner.var}")  # selects PAD keys: masked where the selector is used
    return _Tensor(var, "selector", bad=inner.bad, batched=inner.batched)


def _selected_total(em: _Emitter, selector: _Tensor, column: str) -> str:
    """Source of the float32 sum over each query's selected keys of a [batch, key] column
    (zero at PAD keys unless the selector never selects them): [batch, query]."""
    if selector.batched:
        return f"torch.matmul({selector.var}.to(torch.float32), {column}[:, :, None])[..., 0]"
    return f"torch.matmul({column}, {em.position_matrix(selector, 'torch.float32', True)})"


def _selected_sums(
    em: _Emitter, var: str, selector: _Tensor, columns: list[str], indent: str = ""
) -> str:
    """Emit float64 sums over each query's selected live keys of per-key columns; returns the
    variable [batch, query, column]. One matmul does every mean and count of an aggregate."""
    stacked = f"torch.stack([{', '.join(columns)}], -1)"
    if selector.batched:
        matrix = f"{selector.var}.to(torch.float64)"
    else:  # a position-only selector is never copied per input
        matrix = em.position_matrix(selector, "torch.float64", False)
    em.line(f"{indent}{var}_sums = torch.matmul({matrix}, {stacked})")
    return f"{var}_sums"


def _number_columns(em: _Emitter, var: str, source: _Tensor, indent: str = "") -> list[str]:
    """The column of a source's numbers, then, if some can be NaN (undefined, or not a number),
    a column counting those, which are zeroed in the first so they cannot spread to other queries."""
    numbers = em.as_numbers(source, f"{var}_numbers")
    always_numbers = all(map(_is_number, source.values)) and not source.maybe_undefined
    if always_numbers:
        return [f"torch.where(live, {numbers}, 0.0)"]
    em.line(f"{indent}{var}_numbers = {numbers}")
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
    if not selector.batched:
        width = f"torch.matmul(live_float, {em.position_matrix(selector, 'torch.float32', True)}).long()"
    elif selector.live_keys:
        width = f"{selector.var}.sum(-1, dtype=torch.int32).long()"
    else:
        width = f"({selector.var} & key_live).sum(-1, dtype=torch.int32).long()"
    em.line(f"{var}_width = {width}")
    if node.encoding is ast.NUMERICAL:
        em.line(f"{var} = {var}_width.to(torch.float64)")
        if selector.bad:
            em.line(f"{var} = {var}.masked_fill({selector.bad}, math.nan)")
        return _Tensor(
            var, "numbers", tuple(range(em.max_seq_len + 1)), maybe_undefined=bool(selector.bad)
        )
    values = _ordered(em.value_set(node) | set(range(em.max_seq_len + 1)))
    if values == tuple(range(em.max_seq_len + 1)):  # the width is its code
        em.line(f"{var} = {var}_width")
    else:
        code_of = _code_of(values)
        rows = [code_of(w) for w in range(em.max_seq_len + 1)]
        var = em.gather(var, rows, "width -> code", f"{var}_width", var=var)
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
    if source.kind == "numbers":
        _numbers_aggregate_codes(em, node, var, selector, source, values)
    else:
        _codes_aggregate_codes(em, node, var, selector, source, values)
    if selector.bad:
        em.line(f"{var} = {var}.masked_fill({selector.bad}, {len(values)})")
    return _Tensor(var, "codes", values, maybe_undefined=True)


def _numbers_aggregate_codes(em, node, var, selector, source, values) -> None:
    """A categorical aggregate of numbers: the mean of one selected number is that number, so
    one float path serves every count."""
    columns = _number_columns(em, var, source)
    sums = _selected_sums(em, var, selector, [*columns, "live_numbers"])
    count = f"{sums}[..., {len(columns)}]"
    means = em.codes_of(_mean(em, var, sums, columns, count), values, var)
    em.line(f"{var} = torch.where({count} == 0, {_code_of(values)(node.default)}, {means})")


def _codes_aggregate_codes(em, node, var, selector, source, values) -> None:
    """A categorical aggregate of codes, from one float32 sum per query.

    Each selected key adds `offset + code`, with offset more than any sum of codes, so a
    sum s is `count * offset + sum of codes` and gives both back exactly; one table, made
    here, maps every possible sum to the result's code: the default for none selected, the
    key's value for one, and for several the mean where the source's numbers are exactly an
    affine function of their codes with exact sums (their mean is then one of the sum of
    codes, see _affine_numbers), else undefined (then the float path below computes it).
    """
    code_of = _code_of(values)
    undefined_code = len(values)
    offset = em.max_seq_len * len(source.values) + 1
    numbers = _affine_numbers(source, em.max_seq_len)
    by_sum = [undefined_code] * (em.max_seq_len * (offset + len(source.values)) + 1)
    by_sum[0] = code_of(node.default)
    for code, value in enumerate(source.values):
        by_sum[offset + code] = code_of(value)
    for count in range(2, em.max_seq_len + 1) if numbers else ():
        for codes in range(count * len(source.values)):
            # The exact sum over the count, rounded once: tracr's float sum is exact here.
            mean = float((count * numbers[0] + numbers[1] * codes) / count)
            by_sum[count * offset + codes] = _nearest_code(mean, values)
    shifted = [float(offset + code) for code in range(len(source.values) + 1)]
    undefined_is_pad = source.pad_undefined and not source.maybe_undefined
    if undefined_is_pad:  # PAD keys add nothing: no live mask needed
        shifted[-1] = 0.0
    column = em.gather(
        f"{var}_shifted", shifted, "source code -> offset + code", source.var, "torch.float32"
    )
    if not (selector.batched and selector.live_keys) and not undefined_is_pad:
        column = f"torch.where(live, {column}, 0.0)"
    em.line(f"{var}_sum = {_selected_total(em, selector, column)}")
    em.gather(f"{var}_by_sum", by_sum, "sum -> code", f"{var}_sum.long()", var=var)
    # A position-only selector may be known to select at most one key for every query.
    several = selector.batched or em.most_selected(node.selector) != 1
    if several and not numbers and any(_is_number(v) for v in source.values):
        # Several selected: their mean, a value of the table (tracr raises for non-numbers).
        # Computed only when some query selects several keys: compiled programs rarely do.
        em.line(f"{var}_several = {var}_sum >= {2 * offset}")
        em.line(f"if bool({var}_several.any()):")
        columns = _number_columns(em, var, source, indent="    ")
        sums = _selected_sums(
            em, var, selector, [*columns, "live.to(torch.float64)"], indent="    "
        )
        mean = _mean(em, var, sums, columns, f"{sums}[..., {len(columns)}]", indent="    ")
        means = em.codes_of(mean, values, var)
        em.line(f"    {var} = torch.where({var}_several, {means}, {var})")


def _affine_numbers(source: _Tensor, max_seq_len: int) -> tuple[Fraction, Fraction] | None:
    """(first, step) where every live position holds a number, the numbers (as the floats tracr
    sums) are exactly `first + step * code`, and every sum of up to max_seq_len of them is
    exact in float64: a sum of codes then gives the exact sum, and the mean tracr computes is
    that sum over the count, rounded once. Else None (means then come from the float path).

    Nearly affine is not enough: a mean computed from the formula can differ from tracr's in
    the last bit, and a table may hold both neighbours."""
    if source.maybe_undefined or not source.values or not all(map(_is_number, source.values)):
        return None
    try:
        exact = [Fraction(float(v)) for v in source.values]
    except (OverflowError, ValueError):  # past float range, inf, NaN
        return None
    step = exact[1] - exact[0] if len(exact) > 1 else Fraction(0)
    if any(x != exact[0] + step * code for code, x in enumerate(exact)):
        return None
    # Every partial sum is a multiple of 1 / denominator (a power of two) below this bound.
    denominator = max(x.denominator for x in exact)
    if max(abs(x) for x in exact) * max_seq_len * denominator >= 2**53:
        return None
    return exact[0], step


def _nearest_code(number: float, values: tuple) -> int:
    """The code of the table number nearest `number` if within MATCH_TOLERANCE (else undefined),
    as the module's _codes_of finds it for a mean computed at run time: a table may hold numbers
    a few ulps apart (means summed in different orders), and an exact match must win."""
    candidates = [
        (abs(number - float(value)), -float(value), code)
        for code, value in enumerate(values)
        if _is_number(value) and abs(number - value) <= MATCH_TOLERANCE * (1.0 + abs(number))
    ]
    return min(candidates)[2] if candidates else len(values)


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

_GATHER = '''
def _gather(table, index):
    """table[index]: index_select on the flattened index is several times faster on CPU."""
    return table.index_select(0, index.reshape(-1)).view(*index.shape, *table.shape[1:])
'''

_CODES_OF = '''
def _codes_of(x, sorted_values, codes, undefined_code):
    """Floats -> codes of a value table: the nearest table number, if within tolerance.

    The nearer of the two table numbers around x, compared directly: the midpoint of two
    adjacent floats rounds onto one of them, and would hide an exact match."""
    above = torch.searchsorted(sorted_values, x.contiguous()).clamp(max=len(sorted_values) - 1)
    below = (above - 1).clamp(min=0)
    closer_below = (x - sorted_values[below]).abs() < (sorted_values[above] - x).abs()
    nearest = torch.where(closer_below, below, above)
    found = (x - sorted_values[nearest]).abs() <= MATCH_TOLERANCE * (1.0 + x.abs())
    return torch.where(found, codes[nearest], undefined_code)
'''


_SHARED_LOCALS = (
    ("key_live", "key_live = live[:, None, :]  # [batch, 1, key]: PAD is never selected"),
    ("live_numbers", "live_numbers = live.to(torch.float64)"),
    ("live_float", "live_float = live.to(torch.float32)"),
)


def _without_unused(lines: list[str], kept: str) -> list[str]:
    """`lines` less the top-level assignments to a variable no other line (nor `kept`) reads:
    what a generator emitted for a consumer that found a cheaper way (each costs a kernel)."""
    while True:
        text = "\n".join(lines) + "\n" + kept
        unused = []
        for number, line in enumerate(lines):
            target = re.match(r"(\w+) = ", line)
            if target and len(re.findall(rf"(?<!\.)\b{target.group(1)}\b", text)) == 1:
                unused.append(number)
        if not unused:
            return lines
        lines = [line for number, line in enumerate(lines) if number not in unused]


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
    forward_lines = _without_unused(emitter.slice_lines + emitter.lines, kept="return out")
    init_lines = _without_unused(emitter.init_lines, kept="\n".join(forward_lines))
    body = "\n".join("        " + line for line in forward_lines)
    # Locals that only some programs read: defined only where used (each costs a kernel launch).
    shared = "".join(
        f"        {text}\n" for name, text in _SHARED_LOCALS if re.search(rf"\b{name}\b", body)
    )
    positions_only = ""
    if init_lines:
        positions_only = (
            "\n        # What depends on positions only, for MAX_SEQ_LEN positions (forward slices it).\n"
            "        n = MAX_SEQ_LEN\n"
            "        positions = torch.arange(n)[None, :]  # [1, n]\n"
            + "\n".join("        " + line for line in init_lines)
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
{_GATHER}{_CODES_OF if emitter.uses_codes_of else ""}

class {CLASS_NAME}(torch.nn.Module):
    def __init__(self, dtype=torch.float32):
        """dtype: of the output scores / values (the model's dtype; float32 by default)."""
        super().__init__()
        self.dtype = dtype
{buffers}{positions_only}

    def forward(self, ids, mask=None):
        if mask is None:
            mask = ids != PAD_ID
        batch, n = ids.shape[0], ids.shape[1] - 1
        if n == 0:
            return torch.zeros(batch, 1, D_OUT, dtype=self.dtype, device=ids.device)
        if n > MAX_SEQ_LEN:
            raise ValueError(f"at most MAX_SEQ_LEN={{MAX_SEQ_LEN}} tokens after BOS, got {{n}}")
        tokens = ids[:, 1:]  # [batch, n]: the input after BOS
        live = mask[:, 1:]  # [batch, n]: positions that hold a token
{shared}{body}
        return out
'''
