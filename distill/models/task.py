"""The task interface: how a model is used, which its weights alone don't say.

A task names the input alphabet and the special tokens, the input domain, and
the read-out (which positions are outputs and how an output is read). It comes
from a TOML file (data: parsed with `tomllib`, never run; `.rasp` programs in it
are parsed with `dsl.parse`, never evaluated as Python) and is stored in the
model file as the record "task", a JSON object:

    alphabet = ["a", "b"]               # input tokens, a subset of the model's vocab
    name = "tomita1"                    # optional: what the task is called, and what it is
    description = "per prefix: 1 if in 1*, else 0"
    tokens = ["a", "b", "BOS"]          # optional, for importers: checkpoint id -> token
    [special]                           # optional names: bos, sep, eos, pad
    bos = "BOS"
    [domain]
    kind = "strings"                    # or "bos_x_sep_y"
    min_len = 1
    max_len = 10
    membership = "...rasp source..."    # optional (strings): the last position says yes/no
    reference = "...rasp source..."     # bos_x_sep_y with y = "reference": y = reference(x)
    y = "reference"                     # or "greedy": the model's own greedy continuation
    [readout]
    positions = "all"                   # "all" | "last" | "after_sep" | [1-based positions]
    kind = "argmax"                     # "argmax" | "subset_argmax" | "multilabel"
    subset = ["0", "1"]                 # subset_argmax: the values it picks from;
                                        # multilabel: the values a set may hold (default:
                                        # every output value but BOS)

In a TOML file `membership_file` / `reference_file` may name a `.rasp` file
relative to the TOML file instead; its text is stored in the record.

`tokens` maps a checkpoint's integer ids to token names: a list whose index is
the id, or a table `{name = id}`. Without it, ids follow the family's order: the
vocab (the alphabet, then SEP and EOS), then BOS, then PAD if named, then the
output-only tokens (see `family_tokens`, `output_only_tokens`). Output-only
tokens are the `subset` tokens that are no input token: a checkpoint scores them
(a classifier's labels, e.g. "open" and "balanced" for a Dyck model) but never
reads them.

Positions are 1-based over the input tokens (BOS, at position 0, is never read
out). "after_sep" reads the outputs at SEP and after it, except at the last
token: with teacher forcing on `x sep y`, exactly the predictions of y.
"""

from __future__ import annotations

import itertools
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from distill.errors import BadInputError
from distill.models import limits

DOMAIN_KINDS = ("strings", "bos_x_sep_y")
Y_SOURCES = ("reference", "greedy")
POSITION_NAMES = ("all", "last", "after_sep")
READOUT_KINDS = ("argmax", "subset_argmax", "multilabel")
SPECIAL_NAMES = ("bos", "sep", "eos", "pad")
TRAINED_SOURCES = ("hf", "tl", "trained")
TOP_KEYS = ("name", "description", "alphabet", "tokens", "special", "domain", "readout")
NOTE_KEYS = ("name", "description")
DOMAIN_KEYS = ("kind", "min_len", "max_len", "membership", "reference", "y")
READOUT_KEYS = ("positions", "kind", "subset")


class TaskError(BadInputError):
    """A task file or record with a bad field, or one that does not match its model."""


@dataclass(frozen=True)
class Task:
    """A validated task; build it with `from_toml` or `from_record`."""

    alphabet: tuple
    """Input tokens (strings or integers)."""
    special: dict
    """Names of the special tokens present: a subset of bos, sep, eos, pad."""
    token_ids: dict | None
    """Checkpoint id of each named token, or None (ids in the family's order)."""
    domain: dict
    """kind, min_len, max_len, and membership / reference source text and y where given."""
    readout: dict
    """positions ("all", "last", "after_sep" or a tuple of positions), kind, subset (a tuple)."""
    notes: dict = field(default_factory=dict)
    """name and description where given: for people, no part of the task's meaning."""
    _programs: dict = field(default_factory=dict, compare=False, repr=False)

    # --- building ------------------------------------------------------------------------------

    @classmethod
    def from_toml(cls, path, model_config=None) -> Task:
        """Read a task file; with `model_config`, also refuse a task that doesn't match it."""
        path = Path(path)
        try:
            raw = path.read_bytes()
        except OSError as error:
            raise TaskError(f"{path}: cannot read the task file ({error.strerror})") from None
        if len(raw) > limits.MAX_CONFIG_BYTES:
            raise TaskError(
                f"{path}: {len(raw)} bytes, over the limit {limits.MAX_CONFIG_BYTES} "
                f"({limits.limit_name('MAX_CONFIG_BYTES')})"
            )
        try:
            record = tomllib.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
            raise TaskError(
                f"{path}: expected a TOML task file, got invalid TOML ({error})"
            ) from None
        try:
            _read_program_files(record, path.parent)
            task = cls.from_record(record)
            if model_config is not None:
                task.check_matches(model_config)
        except TaskError as error:
            raise TaskError(f"{path}: {error}") from None
        return task

    @classmethod
    def from_record(cls, record) -> Task:
        """Validate a task record (a dict as stored in the model file)."""
        problems = _record_problems(record)
        if problems:
            raise TaskError("; ".join(problems))
        special = dict(record.get("special", {}))
        tokens = record.get("tokens")
        if isinstance(tokens, list):
            tokens = {name: i for i, name in enumerate(tokens)}
        domain = {"min_len": 1, **record["domain"]}
        if domain["kind"] == "bos_x_sep_y":
            domain.setdefault("y", "reference")
        readout = {"positions": "all", "kind": "argmax", **record.get("readout", {})}
        if isinstance(readout["positions"], list):
            readout["positions"] = tuple(readout["positions"])
        readout["subset"] = tuple(readout.get("subset", ()))
        notes = {key: record[key] for key in NOTE_KEYS if key in record}
        task = cls(tuple(record["alphabet"]), special, tokens, domain, readout, notes)
        for key in ("membership", "reference"):
            if key in domain:
                task._programs[key] = _parse(domain[key], f"domain.{key}")
        return task

    def to_record(self) -> dict:
        """The JSON object stored as the model's "task" record (`from_record` reads it back)."""
        record: dict = {**self.notes, "alphabet": list(self.alphabet)}
        if self.token_ids is not None:
            record["tokens"] = dict(self.token_ids)
        if self.special:
            record["special"] = dict(self.special)
        record["domain"] = dict(self.domain)
        readout = dict(self.readout)
        if isinstance(readout["positions"], tuple):
            readout["positions"] = list(readout["positions"])
        readout["subset"] = list(readout["subset"])
        if not readout["subset"]:
            del readout["subset"]
        record["readout"] = readout
        return record

    def to_toml(self) -> str:
        """The task as a task file (`from_toml` reads it back to an equal task)."""
        record = self.to_record()
        tables = {key: record.pop(key) for key in ("tokens", "special", "domain", "readout")
                  if isinstance(record.get(key), dict)}  # fmt: skip
        lines = [f"{key} = {_toml_value(value)}" for key, value in record.items()]
        for name, table in tables.items():
            lines += ["", f"[{name}]"]
            lines += [f"{_toml_value(str(key))} = {_toml_value(v)}" for key, v in table.items()]
        return "\n".join(lines) + "\n"

    # --- the model's tokens --------------------------------------------------------------------

    def family_tokens(self) -> tuple[tuple, str]:
        """(vocab, bos) of a family model for this task: the alphabet then SEP and EOS; BOS."""
        if "bos" not in self.special:
            raise TaskError(
                "special.bos: expected the name of the token every input starts with "
                "(the family puts BOS at position 0), got none"
            )
        extra = [self.special[n] for n in ("sep", "eos") if n in self.special]
        vocab = tuple(self.alphabet) + tuple(t for t in extra if t not in self.alphabet)
        return vocab, self.special["bos"]

    def output_only_tokens(self) -> tuple:
        """The read-out subset's tokens that are no input token (scored, never read)."""
        vocab, bos = self.family_tokens()
        read = (*vocab, bos, *([self.special["pad"]] if "pad" in self.special else []))
        return tuple(v for v in self.readout["subset"] if v not in read)

    def checkpoint_ids(self, n_ids: int) -> dict:
        """Checkpoint id of each token of the family model (vocab, BOS and, if named, PAD)
        and of each output-only token; the tokens read must have ids below `n_ids`."""
        vocab, bos = self.family_tokens()
        names = [*vocab, bos] + ([self.special["pad"]] if "pad" in self.special else [])
        extra = list(self.output_only_tokens())
        if self.token_ids is None:
            if len(names) > n_ids:
                specials = len(names) - len(self.alphabet)
                raise TaskError(
                    f"alphabet: expected at most {n_ids - specials} tokens (the checkpoint has "
                    f"{n_ids} token ids, {specials} of them for special tokens), got "
                    f"{len(self.alphabet)}: {_shown(self.alphabet)}"
                )
            ids = {name: i for i, name in enumerate(names + extra)}
        else:
            by_text = {str(name): i for name, i in self.token_ids.items()}
            missing = [name for name in names + extra if str(name) not in by_text]
            if missing:
                raise TaskError(
                    f"tokens: expected an id for every token of the task, got none for "
                    f"{', '.join(map(repr, missing))}"
                )
            ids = {name: by_text[str(name)] for name in names + extra}
        over = {name: ids[name] for name in names if ids[name] >= n_ids}
        if over:
            name, i = next(iter(over.items()))
            raise TaskError(
                f"tokens: expected ids below the checkpoint's {n_ids} embedding rows, "
                f"got {i} for {name!r}"
            )
        return ids

    # --- matching a model ----------------------------------------------------------------------

    def check_matches(self, config) -> None:
        """Refuse a task that doesn't fit the model `config` describes (before any work)."""
        problems = []
        vocab = set(config.vocab)
        outside = [t for t in self.alphabet if t not in vocab]
        if outside:
            problems.append(
                f"alphabet: expected tokens of the model's vocab ({len(config.vocab)} tokens: "
                f"{_shown(config.vocab)}), got {_shown(outside)} not in it"
            )
        if "bos" in self.special and self.special["bos"] != config.bos:
            problems.append(
                f"special.bos: expected the model's BOS {config.bos!r}, got {self.special['bos']!r}"
            )
        for name in ("sep", "eos"):
            if name in self.special and self.special[name] not in vocab:
                problems.append(
                    f"special.{name}: expected a token of the model's vocab, "
                    f"got {self.special[name]!r}"
                )
        longest = self.longest_input()
        if longest > config.max_seq_len:
            problems.append(
                f"domain.max_len: expected inputs of at most the model's max_seq_len "
                f"{config.max_seq_len} tokens, got {self.domain['max_len']} "
                f"(inputs of up to {longest} tokens)"
            )
        positions = self.readout["positions"]
        if isinstance(positions, tuple):
            beyond = [p for p in positions if p > config.max_seq_len]
            if beyond:
                problems.append(
                    f"readout.positions: expected positions 1..{config.max_seq_len} (n_ctx "
                    f"{config.n_ctx} holds BOS and {config.max_seq_len} tokens), got {beyond[0]}"
                )
        if config.output_kind != "categorical" and self.readout["kind"] != "argmax":
            problems.append(
                f"readout.kind: expected 'argmax' (the model's output is numerical), "
                f"got {self.readout['kind']!r}"
            )
        outputs = set(config.output_values)
        strangers = [v for v in self.readout["subset"] if v not in outputs]
        if strangers:
            problems.append(
                f"readout.subset: expected output values of the model "
                f"({_shown(config.output_values)}), got {_shown(strangers)} not among them"
            )
        if problems:
            raise TaskError("; ".join(problems))

    def longest_input(self) -> int:
        """Tokens in the domain's longest input (x, SEP and y for bos_x_sep_y)."""
        n = self.domain["max_len"]
        return 2 * n + 1 if self.domain["kind"] == "bos_x_sep_y" else n

    # --- the domain ----------------------------------------------------------------------------

    def inputs(self, length: int, model=None) -> list[list]:
        """Every input of the domain whose x has `length` tokens (greedy y needs `model`).

        strings: the strings over the alphabet of that length that the membership
        program accepts (its output at the last position is true or 1). bos_x_sep_y:
        x + [SEP] + y for every such x, y from the reference program or greedy decoding.
        """
        from dsl import limits as dsl_limits

        if not self.domain["min_len"] <= length <= self.domain["max_len"]:
            return []
        count = len(self.alphabet) ** length
        if count > dsl_limits.MAX_ENUMERATED_INPUTS:
            raise TaskError(
                f"domain: {count:,} strings of length {length}, over the limit "
                f"{dsl_limits.MAX_ENUMERATED_INPUTS:,} (dsl.limits.MAX_ENUMERATED_INPUTS)"
            )
        xs = [list(x) for x in itertools.product(self.alphabet, repeat=length)]
        return self.inputs_of(xs, model)

    def inputs_of(self, xs: Sequence[Sequence], model=None) -> list[list]:
        """The domain's inputs made from the strings `xs` (see `inputs`): those the membership
        program accepts, or x + [SEP] + y; a sample of the domain from a sample of xs."""
        xs = [list(x) for x in xs]
        if not xs:
            return []
        if self.domain["kind"] == "strings":
            if "membership" not in self._programs:
                return xs
            import dsl

            verdicts = dsl.evaluate(self._programs["membership"], xs, undefined="mark")
            return [x for x, out in zip(xs, verdicts) if out is not None and out[-1] in (True, 1)]
        sep = self.special["sep"]
        if self.domain["y"] == "reference":
            import dsl

            ys = dsl.evaluate(self._programs["reference"], xs)
            return [x + [sep] + list(y) for x, y in zip(xs, ys)]
        if model is None:
            raise TaskError("domain.y: 'greedy' needs the model to continue x + [sep]")
        results: list = [None] * len(xs)
        for n in sorted({len(x) for x in xs}):
            rows = [i for i, x in enumerate(xs) if len(x) == n]
            done = _greedy(model, [xs[i] + [sep] for i in rows], n, self.special.get("eos"))
            for i, seq in zip(rows, done):
                results[i] = seq
        return results

    # --- the read-out --------------------------------------------------------------------------

    def positions_of(self, tokens: Sequence) -> list[int]:
        """The 1-based read-out positions of one input."""
        n = len(tokens)
        positions = self.readout["positions"]
        if positions == "all":
            return list(range(1, n + 1))
        if positions == "last":
            return [n] if n else []
        if positions == "after_sep":
            sep = self.special["sep"]
            start = next((i + 1 for i, t in enumerate(tokens) if t == sep), None)
            return [] if start is None else list(range(start, n))
        return [p for p in positions if p <= n]

    def read_out(self, model, inputs: Sequence[Sequence], batch_size: int = 4096) -> list[list]:
        """Per input, the decoded output at each read-out position: a value (argmax, subset
        argmax, or the number of a numerical model), or a tuple of values (multilabel)."""
        import torch

        results = []
        for start in range(0, len(inputs), batch_size):
            chunk = inputs[start : start + batch_size]
            ids, mask = model.encode(chunk)
            with torch.no_grad():
                out = model(ids, mask)  # [batch, pos, d_out]
            results.extend(self.decode(model, out, chunk))
        return results

    def read_columns(self, config) -> tuple[tuple, list[int]]:
        """(the output values the read-out decodes to, their columns in the model's output).
        Subset argmax: the subset. Multi-label: the values a set may hold, in the model's
        order: the subset, else every output value but BOS (an imported checkpoint scores
        BOS, but it never comes next and nobody trains it as a label: its sign is noise).
        Argmax: every output value."""
        values = self.readout["subset"] or tuple(config.output_values)
        if self.readout["kind"] == "multilabel":
            wanted = self.readout["subset"] or [v for v in values if v != config.bos]
            values = tuple(v for v in config.output_values if v in wanted)
        return values, [config.output_values.index(v) for v in values]

    def decode(self, model, out, inputs: Sequence[Sequence]) -> list[list]:
        """`read_out` of the model's outputs `out` [batch, pos, d_out] on `inputs`."""
        import torch

        config = model.config
        kind = self.readout["kind"]
        if config.output_kind == "numerical":
            decoded = out[..., 0].tolist()
        elif kind == "argmax":
            values = config.output_values
            decoded = [[values[i] for i in row] for row in model.output_indices(out).tolist()]
        else:
            values, columns = self.read_columns(config)
            out = out[..., torch.tensor(columns)]
            if kind == "subset_argmax":
                picked = model.output_indices(out).tolist()
                decoded = [[values[i] for i in row] for row in picked]
            else:
                on = (out > 0).tolist()
                decoded = [[tuple(v for v, yes in zip(values, at) if yes) for at in row]
                           for row in on]  # fmt: skip
        return [[row[p] for p in self.positions_of(tokens)] for tokens, row in zip(inputs, decoded)]


def is_trained(model) -> bool:
    """Whether `model` was trained by gradient descent (imported or trained here), as opposed
    to compiled by tracr: its source record says so, or it has LayerNorm (tracr has none)."""
    return trained_reason(model) is not None


def trained_reason(model) -> str | None:
    """Why `model` counts as trained (see `is_trained`), or None."""
    kind = model.records.get("source", {}).get("kind")
    if kind in TRAINED_SOURCES:
        return f"its source record says {kind!r}"
    if model.config.normalization == "LN":
        return "it has layer norm, which tracr never compiles"
    return None


# --- validation ------------------------------------------------------------------------------


def _record_problems(record) -> list[str]:
    """Every bad field of a task record, as `field: expected ..., got ...` lines."""
    if not isinstance(record, dict):
        return [f"task: expected a table (JSON object), got {type(record).__name__}"]
    problems = []

    def bad(name, expected, got):
        problems.append(f"{name}: expected {expected}, got {got!r}")

    for key in sorted(set(record) - set(TOP_KEYS)):
        bad(key, f"one of the keys {', '.join(TOP_KEYS)}", key)
    for key in NOTE_KEYS:
        if key in record and not isinstance(record[key], str):
            bad(key, "a string", record[key])
    alphabet = record.get("alphabet")
    if not (
        isinstance(alphabet, list)
        and 1 <= len(alphabet) <= limits.MAX_VOCAB
        and all(_is_token(t) for t in alphabet)
        and len(set(alphabet)) == len(alphabet)
    ):
        bad("alphabet", f"a list of 1 to {limits.MAX_VOCAB} distinct strings or integers", alphabet)
    special = record.get("special", {})
    if not isinstance(special, dict):
        bad("special", "a table of token names", special)
        special = {}
    for key, value in special.items():
        if key not in SPECIAL_NAMES:
            bad(f"special.{key}", f"one of the names {', '.join(SPECIAL_NAMES)}", key)
        elif not (isinstance(value, str) and value):
            bad(f"special.{key}", "a non-empty token name", value)
        elif isinstance(alphabet, list) and value in alphabet:
            bad(f"special.{key}", "a token outside the alphabet", value)
    names = [v for v in special.values() if isinstance(v, str)]
    if len(set(names)) != len(names):
        bad("special", "distinct names for distinct special tokens", special)
    _check_tokens(record.get("tokens"), bad)
    _check_domain(record.get("domain"), special, bad)
    _check_readout(record.get("readout", {}), record.get("domain"), special, bad)
    return problems


def _check_tokens(tokens, bad) -> None:
    if tokens is None:
        return
    if isinstance(tokens, list):
        ok = all(_is_token(t) for t in tokens) and len(set(map(str, tokens))) == len(tokens)
        if not ok:
            bad("tokens", "a list of distinct token names (index = checkpoint id)", tokens)
    elif isinstance(tokens, dict):
        ids = list(tokens.values())
        ok = all(_is_int(i) and 0 <= i for i in ids) and len(set(ids)) == len(ids)
        if not ok:
            bad("tokens", "a table of token name = distinct non-negative integer id", tokens)
    else:
        bad("tokens", "a list of token names or a table of name = id", tokens)


def _check_domain(domain, special, bad) -> None:
    if not isinstance(domain, dict):
        bad("domain", "a table with kind, min_len and max_len", domain)
        return
    for key in sorted(set(domain) - set(DOMAIN_KEYS)):
        bad(f"domain.{key}", f"one of the keys {', '.join(DOMAIN_KEYS)}", key)
    kind = domain.get("kind")
    if kind not in DOMAIN_KINDS:
        bad("domain.kind", _one_of(DOMAIN_KINDS), kind)
    min_len, max_len = domain.get("min_len", 1), domain.get("max_len")
    if not (_is_int(min_len) and min_len >= 0):
        bad("domain.min_len", "an integer 0 or more", min_len)
    if not (_is_int(max_len) and 1 <= max_len <= limits.MAX_SEQ_LEN):
        bad("domain.max_len", f"an integer from 1 to {limits.MAX_SEQ_LEN}", max_len)
    elif _is_int(min_len) and min_len > max_len:
        bad("domain.min_len", f"at most max_len {max_len}", min_len)
    for key in ("membership", "reference"):
        if key in domain and not isinstance(domain[key], str):
            bad(f"domain.{key}", "the text of a .rasp program", domain[key])
    if kind == "strings":
        for key in ("reference", "y"):
            if key in domain:
                bad(f"domain.{key}", "nothing for kind 'strings' (only for 'bos_x_sep_y')", key)
    if kind == "bos_x_sep_y":
        if "membership" in domain:
            bad("domain.membership", "nothing for kind 'bos_x_sep_y'", "membership")
        if "sep" not in special:
            bad("special.sep", "a separator token name for kind 'bos_x_sep_y'", None)
        y = domain.get("y", "reference")
        if y not in Y_SOURCES:
            bad("domain.y", _one_of(Y_SOURCES), y)
        elif y == "reference" and "reference" not in domain:
            bad("domain.reference", "a .rasp program computing y from x (y = 'reference')", None)


def _check_readout(readout, domain, special, bad) -> None:
    if not isinstance(readout, dict):
        bad("readout", "a table with positions and kind", readout)
        return
    for key in sorted(set(readout) - set(READOUT_KEYS)):
        bad(f"readout.{key}", f"one of the keys {', '.join(READOUT_KEYS)}", key)
    positions = readout.get("positions", "all")
    if isinstance(positions, list):
        if not (
            positions
            and all(_is_int(p) and 1 <= p <= limits.MAX_SEQ_LEN for p in positions)
            and len(set(positions)) == len(positions)
        ):
            bad("readout.positions", "distinct 1-based positions (BOS is position 0)", positions)
    elif positions not in POSITION_NAMES:
        bad("readout.positions", _one_of(POSITION_NAMES) + " or a list of positions", positions)
    elif positions == "after_sep" and "sep" not in special:
        bad("special.sep", "a separator token name for positions 'after_sep'", None)
    kind = readout.get("kind", "argmax")
    if kind not in READOUT_KINDS:
        bad("readout.kind", _one_of(READOUT_KINDS), kind)
    subset = readout.get("subset")
    if kind == "subset_argmax" or (kind == "multilabel" and subset is not None):
        if not (
            isinstance(subset, list)
            and subset
            and all(_is_token(v) for v in subset)
            and len(set(subset)) == len(subset)
        ):
            bad("readout.subset", "a non-empty list of distinct output values", subset)
    elif subset is not None:
        bad("readout.subset", "nothing unless kind is 'subset_argmax' or 'multilabel'", subset)


def _read_program_files(record, folder: Path) -> None:
    """Replace `domain.X_file` (a path relative to the task file) by the text it holds."""
    domain = record.get("domain")
    if not isinstance(domain, dict):
        return
    for key in ("membership", "reference"):
        name = domain.pop(f"{key}_file", None)
        if name is None:
            continue
        if key in domain:
            raise TaskError(f"domain.{key}_file: expected either {key} or {key}_file, got both")
        if not isinstance(name, str):
            raise TaskError(f"domain.{key}_file: expected a path to a .rasp file, got {name!r}")
        path = folder / name
        try:
            domain[key] = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            reason = getattr(error, "strerror", None) or str(error)
            raise TaskError(f"domain.{key}_file: cannot read {path} ({reason})") from None


def _parse(source: str, field_name: str):
    import dsl

    try:
        return dsl.parse(source, filename=field_name)
    except dsl.DSLError as error:
        raise TaskError(f"{field_name}: expected a valid .rasp program, got: {error}") from None


def _greedy(model, prefixes: list[list], steps: int, eos) -> list[list]:
    """Each prefix continued by `steps` argmax tokens (stopping after EOS, or at an output that
    is no input token, e.g. BOS)."""
    import torch

    vocab = set(model.config.vocab)
    sequences = [list(p) for p in prefixes]
    done = [False] * len(sequences)
    for _ in range(steps):
        ids, mask = model.encode(sequences)
        with torch.no_grad():
            indices = model.output_indices(model(ids, mask)).tolist()
        for row, seq in enumerate(sequences):
            if done[row]:
                continue
            value = model.config.output_values[indices[row][len(seq)]]
            if value not in vocab:
                done[row] = True
                continue
            seq.append(value)
            done[row] = value == eos
    return sequences


def _toml_value(value) -> str:
    """A string, integer or list of them as TOML (a JSON string is a TOML basic string, but
    for DEL, which TOML wants escaped)."""
    import json

    if isinstance(value, list):
        return "[" + ", ".join(map(_toml_value, value)) + "]"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if _is_int(value):
        return str(value)
    raise TaskError(f"cannot write {value!r} into a task file (strings and integers only)")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_token(value) -> bool:
    return (isinstance(value, str) and value != "") or _is_int(value)


def _one_of(names: tuple) -> str:
    quoted = [repr(name) for name in names]
    return ", ".join(quoted[:-1]) + " or " + quoted[-1]


def _shown(values, most: int = 8) -> str:
    values = list(values)
    text = ", ".join(map(repr, values[:most]))
    return text + (", ..." if len(values) > most else "")


__all__ = ["Task", "TaskError", "is_trained", "trained_reason"]
