"""Variables of a trained network, read off its heads' attention and checked on its outputs.

A trained head rarely selects exactly; what it passes on is decided by which keys it
weighs (its selector) and what it reads there (its value). So each head becomes:

- a selector: the tightest named comparison (on indices, equality of a variable, or an
  earlier variable equal to the other side's index: sort's rank) holding all but a
  sliver of the attention the head puts on real tokens (attention on BOS is the head's
  "nothing here" default, as in tracr);
- a variable: where the selector picks at most one key, the value read there
  (a categorical aggregate), also where the keys it picks all hold one number; where
  it averages, the counts of each value among the selected keys (selector widths): for
  weights that depend on the value read, the average is a function of those counts and
  the query.

Nothing here is assumed to be exact: `discover` returns candidate variables (pointers,
key clusters and balances too, see below); the read-out's search keeps those that
determine the model's answers, and the program is checked against the model on every
input up to N (distill.trained.pipeline).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import torch

from distill.circuit.discovery import DEFAULT_LABEL
from distill.trained.candidates import Candidate, DefinitionValues
from distill.trained.classes import natural_classes
from distill.trained.comparisons import literal
from distill.trained.program import (
    MAX_SUBSET,
    Observations,
    determining_sets,
    group_ids,
    labelled,
    observations_of,
    output_tables,
    table_lines,
)

# A head whose attention on real tokens is below this share on average reads only BOS.
BOS_ONLY_SHARE = 0.02
# A selector fits when the attention it leaves out is at most this share, on average (the
# worst row is reported: a soft head leaks most where few keys compete).
OUTSIDE_MEAN = 0.02
# A row whose attention on real tokens is below this share points at no key (BOS: nothing).
POINTER_SHARE = 0.5
# A head's strongest key may be elsewhere than its variables say in this share of rows
# (a soft head); the read-out check decides whether the reading holds.
POINTER_MISSES = 0.05
# A head's keys are clustered only where the variables so far take at most this many
# combinations (the zoo's largest: 2,442; a vocab-10 sort: tens of thousands).
MAX_KEY_GROUPS = 5_000
# Where a pointing head's key is (`select(indices, at, ==)`), and the head read back from it.
POINTER_NAME = "at_l{layer}h{head}"
POINTER_HEAD = re.compile(r"at_l(\d+)h(\d+)$")
# A categorical variable with more values than this is not offered as a head's value;
# the tokens up to MAX_TOKEN_CLASSES (a vocabulary of 10-50 is what models are trained on,
# and what a head reads first).
MAX_VALUE_CLASSES = 12
MAX_TOKEN_CLASSES = 64
# A soft head carries what one key holds where a least-squares read-out of its output
# (one per query position) recovers that value at this share of the traced positions.
PROBE_ACCURACY = 0.999
# One-key selectors a head may carry a key's value through without pointing at it.
PROBED_KEYS = {
    "k == q - 1": "prev",
    "k == q - 2": "prev2",
    "k == q + 1": "next",
    "k == q + 2": "next2",
    "first": "first",
}

INDEX_COMPARISONS = (
    ("==", "=="),
    ("k == q - 1", "lambda k, q: k == q - 1"),
    ("k == q + 1", "lambda k, q: k == q + 1"),
    ("k == q - 2", "lambda k, q: k == q - 2"),
    ("k == q + 2", "lambda k, q: k == q + 2"),
    ("first", "lambda k, q: k == 0"),
    ("<", "<"),
    ("<=", "<="),
    (">", ">"),
    (">=", ">="),
    ("true", "true"),
)


@dataclass
class HeadFinding:
    component: str
    selector: str
    outside: float  # mean attention share on real tokens the selector leaves out
    real_share: float  # mean attention share on real tokens
    worst: float = 0.0  # the largest share the selector leaves out in one row
    variables: list[str] = field(default_factory=list)
    note: str = ""


@dataclass
class Discovery:
    definitions: list[Candidate]
    heads: list[HeadFinding]
    output: torch.Tensor  # the model's output on the traced inputs (program.observe reads it)
    evaluated: DefinitionValues  # the definitions' values on them, likewise


def traces(model, inputs: list[list]) -> tuple[dict, np.ndarray, torch.Tensor]:
    """(hook name -> array, mask [batch, pos], the model's output) over `inputs`, BOS at
    position 0."""
    ids, mask = model.encode(inputs)
    wanted = lambda name: name.endswith(("hook_pattern", "hook_k", "hook_v"))  # noqa: E731
    out, trace = model.run_with_trace(ids, mask, names=wanted)
    return {k: v.double().numpy() for k, v in trace.items()}, mask.numpy(), out


def discover(model, inputs: list[list]) -> Discovery:
    """Candidate variables, one or more per head, layer by layer (see the module doc)."""
    definitions = [
        Candidate("tokens_", "tokens", None),
        Candidate("indices_", "indices", None),
    ]
    trace, mask, output = traces(model, inputs)
    evaluated = DefinitionValues(inputs)
    config = model.config
    heads: list[HeadFinding] = []
    by_meaning: dict[str, Candidate] = {}  # what a head computes -> the first head's variable
    for layer in range(config.n_layers):
        reads = {}
        if layer > 0:
            values = evaluated.evaluate(definitions)
            coded = _coded(definitions, values, inputs)
            earlier = list(definitions)  # what `coded` holds: another head's class is not in it
            for head in range(config.n_heads):
                made = _key_class(layer, head, trace, earlier, coded, mask)
                if made:
                    definitions.extend(made)
                    reads[head] = made[-1].name
            if len(reads) < config.n_heads:
                definitions.extend(_balances(definitions, layer, values, mask))
                definitions.extend(_equalities(definitions, values, mask))
        values = evaluated.evaluate(definitions)
        coded = _coded(definitions, values, inputs)
        categorical = _value_variables(definitions, values, mask)
        windows = _windows(definitions, categorical, values, mask)
        ordered = frozenset({"tokens_"} if _sortable(config.vocab) else ())
        offered = _selector_candidates(categorical, config.causal, ordered)
        offered += _position_pointers(definitions, values, mask, config.causal)
        trial = definitions + [
            Candidate(f"sel_{i}", source, None) for i, (_, source) in enumerate(offered)
        ]
        matrices = evaluated.evaluate(trial, keep=False)
        selectors = [
            (label, source, matrices[f"sel_{i}"]) for i, (label, source) in enumerate(offered)
        ]
        new: list[Candidate] = []
        averaging: dict[str, np.ndarray] = {}  # component -> z of each head that averages
        for head in range(config.n_heads):
            component = f"L{layer}.H{head}"
            pattern = trace[f"blocks.{layer}.attn.hook_pattern"][:, head]
            pointer = _pointer(layer, head, pattern, definitions, coded, evaluated, mask)
            finding, made = _read_head(
                component,
                pattern,
                selectors + list(pointer[1:]),
                [v for v in categorical if not v.startswith("read_") or v == reads.get(head)],
                values,
                mask,
                ordered,
                windows,
            )
            heads.append(finding)
            extra = []
            if made and pointer[1:] and made[0].source == pointer[1][1]:
                made = pointer[0] + made  # the pointer's target definitions come first
            elif pointer[1:]:
                # A soft head whose strongest key is still where the variables say: its
                # aggregate there is offered too; the read-out decides which reading holds.
                extra = _pointer_reading(component, pointer, categorical)
            elif len(made) > 1 and made[1].source.startswith("selector_width("):
                z = np.einsum(
                    "bqk,bkd->bqd", pattern, trace[f"blocks.{layer}.attn.hook_v"][:, :, head]
                )
                averaging[component] = z
                extra = _probed(component, z, selectors, coded, mask, by_meaning)
                finding.variables += [c.name for c in extra[1:]]
            new.extend(_merge_duplicates(made, by_meaning, finding) + extra)
        new.extend(_probed_equalities(averaging, selectors, coded, mask, by_meaning))
        definitions.extend(new)
    definitions.extend(_ever(definitions))
    return Discovery(definitions, heads, output, evaluated)


def _ever(definitions: list[Candidate]) -> list[Candidate]:
    """Whether any position a head selects is on a side of a balance (a dyck word whose
    depth has ever been negative, or past its bound): its count of them above 0. The
    read-out then reads a yes or no where a count would make its table grow with every
    count the inputs reach."""
    return [
        Candidate(f"any_{c.name}", f"map(lambda x: 1 if x > 0 else 0, {c.name})", None)
        for c in definitions
        if c.component
        and c.source.startswith("selector_width(")
        and any(_is_balance(name) for name in re.findall(r"select\((\w+),", c.source))
    ]


def _coded(definitions: list[Candidate], values: dict, inputs) -> Observations:
    """Every variable of `definitions` at every position, coded once for the searches of
    a layer (each head's labels are put in with `labelled`)."""
    names = [c.name for c in definitions if not c.source.startswith("select(")]
    positions = sum(map(len, inputs))
    return observations_of(values, inputs, names, [0] * positions, np.ones(positions, bool))


def _pointer(layer, head, pattern, definitions, coded, evaluated, mask):
    """(definitions, (label, source, matrix)) of a head that points at one key: the key it
    picks as a function of the query's variables (`select(indices, at, ==)` with `at` a
    table of them), or of the key's (`select(at, indices, ==)`); ([],) when the head
    does not point, or no variables determine where."""
    rows = mask[:, 1:]
    real = pattern[:, 1:, 1:]
    share, top = real.sum(-1), real.argmax(-1)
    if share[rows].mean() < BOS_ONLY_SHARE:
        return ([],)
    names = [c.name for c in definitions if not c.source.startswith("select(")]
    preferred = [n for n in names if n not in ("tokens_", "indices_")]
    target = POINTER_NAME.format(layer=layer, head=head)
    pointed = np.where(share >= POINTER_SHARE, top, -1)  # mostly on BOS: no key
    chooser = np.full(pointed.shape, -1)  # at each key, the query that points at it
    unique = True
    for b, q in zip(*np.nonzero(rows & (pointed >= 0))):
        k = pointed[b, q]
        unique &= chooser[b, k] in (-1, q)
        chooser[b, k] = q
    sides = [(pointed, f"select(indices_, {target}, ==)", "query")]
    if unique:  # no key is pointed at by two queries: its variables may say by whom
        sides.append((chooser, f"select({target}, indices_, ==)", "key"))
    allowed = int(POINTER_MISSES * rows.sum())  # a soft head's strongest key may stray
    readings = []
    for keys, selector, side in sides:
        labels = keys[rows].tolist()
        obs = labelled(coded, labels)
        kept = _few(determining_sets(obs, names, preferred, allowed))
        if kept is not None:
            readings.append((kept, obs, selector, side))
    if not readings:
        return ([],)
    kept, obs, selector, side = min(readings, key=lambda r: len(r[0]))
    table = output_tables(obs, kept)  # each group's most common key
    made = []
    for line in table_lines(target, kept, table):
        name, source = line.split(" = ", 1)
        made.append(Candidate(name, source, None))
    trial = definitions + made + [Candidate("pointer_", selector, None)]
    matrix = evaluated.evaluate(trial, keep=False)["pointer_"]
    return (made, (f"pointer ({side} side)", selector, matrix))


def _probed(component, z, selectors, coded, mask, by_meaning) -> list[Candidate]:
    """The token a head that averages carries from one key it does not point at: for each
    one-key index selector (PROBED_KEYS) whose key's token a least-squares read-out of the
    head's output z [batch, pos, d_head] recovers on PROBE_ACCURACY of the traced
    positions, the selector and the token read there; [] if none. One read-out per query
    position: the weights of the head's mix depend on where the query is. A
    previous-token head whose weight on the key before spreads over the others still
    carries that token; the read-out's search and the check decide whether the program
    reads it, and a token an earlier head carries is credited to both."""
    tokens, targets = _probe_targets(selectors, coded, mask)
    features = probe_features(z[:, 1:], tokens)
    made = []
    for slug, source, there, has in targets:
        if not _decodable(features, there, has):
            continue
        meaning = f"aggregate({source}, tokens_)"
        earlier = by_meaning.get(meaning)
        if earlier is not None:  # an earlier head carries it too
            earlier.component += f", {component}"
            continue
        made += _probed_token(f"{component.replace('.', '').lower()}_{slug}", source, component)
        by_meaning[meaning] = made[-1]
    return made


def _probed_equalities(averaging: dict, selectors, coded, mask, by_meaning) -> list[Candidate]:
    """Whether the token at one key (PROBED_KEYS) is the query's own, where the outputs of
    a layer's heads that average (`averaging`: component -> z), read together, recover
    that yes or no on PROBE_ACCURACY of the traced positions and no head carries the key's
    token itself (`_probed`). A head whose weight on the key before depends on whether it
    holds the query's token carries the comparison, not the token; a later head counts
    where it holds. Credited to all those heads: each may carry part of it, and what the
    next layer reads is their sum."""
    if not averaging:
        return []
    group = ", ".join(averaging)
    tokens, targets = _probe_targets(selectors, coded, mask)
    features = probe_features(np.concatenate([z[:, 1:] for z in averaging.values()], -1), tokens)
    made = []
    for slug, source, there, has in targets:
        if f"aggregate({source}, tokens_)" in by_meaning or f"eq {source}" in by_meaning:
            continue  # the token itself is carried (`_equalities` compares it), or an
            # earlier layer carries the comparison: this one reads it
        tag = f"{group.split(',')[0].replace('.', '').lower()}_{slug}"
        if _decodable(features, there, has):  # the heads together carry the token
            made += _probed_token(tag, source, group)
            by_meaning[f"aggregate({source}, tokens_)"] = made[-1]
            continue
        if not _decodable(features, (there == tokens).astype(np.int64), has):
            continue
        made += _probed_token(tag, source, None)
        made.append(_equality(f"eq_tokens_{tag}", f"tokens_{tag}", group))
        by_meaning[f"eq {source}"] = made[-1]
    return made


def _probe_targets(selectors, coded, mask) -> tuple[np.ndarray, list[tuple]]:
    """(each position's own token [batch, pos], and per one-key index selector
    (PROBED_KEYS) offered to the layer's heads, a causal head being offered no later key:
    (slug, selector source, the token at its key [batch, pos], where the key exists
    [batch, pos]))."""
    rows = mask[:, 1:]
    offered = {label.removeprefix("indices "): (source, m) for label, source, m in selectors}
    tokens = np.zeros(rows.shape, dtype=np.int64)  # [batch, pos]: each real position's code
    tokens[rows] = coded.codes["tokens_"]
    targets = []
    for label, slug in PROBED_KEYS.items():
        if label in offered:
            source, matrix = offered[label]
            there = np.take_along_axis(tokens, matrix.argmax(-1), 1)
            targets.append((slug, source, there, rows & matrix.any(-1)))
    return tokens, targets


def _probed_token(tag: str, source: str, component) -> list[Candidate]:
    """The selector of one key and the token there, a hypothesis (`_probed`)."""
    return [
        Candidate(f"sel_{tag}", source, component),
        Candidate(
            f"tokens_{tag}",
            f"aggregate(sel_{tag}, tokens_, default={DEFAULT_LABEL!r})",
            component,
            hypothesis=True,
        ),
    ]


def probe_features(z: np.ndarray, own: np.ndarray) -> np.ndarray:
    """What a probe of a head reads [batch, pos, f]: its output z [batch, pos, d], the
    query's own token (codes `own` [batch, pos], one-hot: whatever reads the head has it
    too, and the head's mix holds the query's value with the same embedding) and 1."""
    tokens = np.eye(int(own.max()) + 1)[own]
    return np.concatenate([z, tokens, np.ones(own.shape + (1,))], -1)


def _decodable(features: np.ndarray, target: np.ndarray, has: np.ndarray) -> bool:
    """Whether codes `target` [batch, pos] are read back where `has` from `features`
    (`probe_features`) by a least-squares read-out of their one-hot per position, at
    PROBE_ACCURACY."""
    seen = np.unique(target[has])
    if len(seen) < 2:
        return False  # one value: nothing to carry
    one_hot = (target[..., None] == seen).astype(np.float64)
    allowed = (1 - PROBE_ACCURACY) * int(has.sum())
    wrong, fitted = 0, False
    for q in range(target.shape[1]):
        live = has[:, q]
        x, y = features[live, q], one_hot[live, q]
        if len(x) <= 2 * x.shape[1]:
            continue  # so few rows that any values fit: no evidence either way
        gram = x.T @ x  # the normal equations: a few dozen features, many rows
        weights = np.linalg.solve(gram + 1e-9 * np.trace(gram) * np.eye(len(gram)), x.T @ y)
        wrong += int(((x @ weights).argmax(1) != y.argmax(1)).sum())
        fitted = True
        if wrong > allowed:
            return False
    return fitted


def _few(sets) -> list[str] | None:
    """The first set of at most MAX_SUBSET variables: a table over more would only
    memorise the traced inputs (and grows past what a program may hold)."""
    return next((kept for kept in sets if len(kept) <= MAX_SUBSET), None)


def _pointer_reading(component: str, pointer, categorical: list[str]) -> list[Candidate]:
    made, (_, source, _) = pointer
    tag = component.replace(".", "").lower() + "_top"
    found = [Candidate(c.name, c.source, None) for c in made]
    found.append(Candidate(f"sel_{tag}", source, component))
    return found + _aggregates(tag, categorical, component)


def _aggregates(
    tag: str, categorical: list[str], component: str, where: bool = True
) -> list[Candidate]:
    """What a one-key selector `sel_{tag}` reads there: each categorical variable, and
    (`where`) where it points (indices)."""
    return [
        Candidate(
            f"{value.rstrip('_')}_{tag}",
            f"aggregate(sel_{tag}, {value}, default={DEFAULT_LABEL!r})",
            component,
        )
        for value in [*categorical, *(["indices_"] if where else [])]
    ]


def _is_balance(name: str) -> bool:
    """Whether `name` is one of `_balances`' 0/1 variables: read by counting the positions
    on each side, never compared between positions or pointed by."""
    return name.startswith("below")


def _balances(definitions: list[Candidate], layer: int, values: dict, mask) -> list[Candidate]:
    """Where the balance of two counts of one earlier head stands (the count of one token
    minus another's): below or above each value it takes, as 0/1 variables offered to
    the heads of `layer` whose key vectors form no clusters. A later head of a balance
    task (dyck: has the depth ever been negative, or past its bound) counts the positions
    on a side (`_ever`: whether any is); a variable nothing reads is dropped by the
    read-out's search, and one that is read is checked like any other."""
    families: dict[str, list[str]] = {}
    for c in definitions:
        if c.name.startswith("n_tokens_") and c.component and "_top" not in c.name:
            families.setdefault(c.name.rsplit("_", 1)[1], []).append(c.name)
    made = []
    rows = mask[:, 1:]
    for names in families.values():
        if len(names) != 2:
            continue
        left, right = names
        difference = values[left][rows].astype(np.int64) - values[right][rows].astype(np.int64)
        low, high = int(difference.min()), int(difference.max())
        base = f"{left.removeprefix('n_tokens_')}_minus_{right.split('_')[2]}"
        if any(c.name == f"below0_{base}" for c in definitions):
            continue
        for bound in range(low + 1, high + 1):
            tag = f"m{-bound}" if bound < 0 else str(bound)
            made.append(
                Candidate(
                    f"below{tag}_{base}",
                    f"sequence_map(lambda x, y: 1 if x - y < {bound} else 0, {left}, {right})",
                    None,
                )
            )
    return made


def _key_class(layer, head, trace, definitions, coded, mask) -> list[Candidate]:
    """What head (layer, head) reads at its keys, as a categorical variable over the program's
    variables (distill.trained.classes), with the definitions it needs; [] when its key
    and value vectors form no clear clusters."""
    rows = mask[:, 1:]
    parts = [trace[f"blocks.{layer}.attn.hook_{x}"][:, 1:, head][rows] for x in ("k", "v")]
    points = np.concatenate([p / max(np.sqrt((p**2).sum(-1).mean()), 1e-12) for p in parts], -1)
    names = [
        c.name for c in definitions if not c.source.startswith("select(") and c.name != "indices_"
    ]
    group_of = group_ids(coded, names)  # positions with the same values of every variable
    if group_of.max() + 1 > MAX_KEY_GROUPS:
        return []  # the spanning tree is quadratic in the groups
    means = np.zeros((group_of.max() + 1, points.shape[1]))
    np.add.at(means, group_of, points)
    means /= np.bincount(group_of)[:, None]
    labels = natural_classes(means)
    if labels is None:
        return []
    per_position = labels[group_of].tolist()
    obs = labelled(coded, per_position)
    preferred = [n for n in names if n != "tokens_"]
    kept = _few(determining_sets(obs, names, preferred))
    if kept is None:
        return []
    columns = [[obs.values[n][c] for c in obs.codes[n].tolist()] for n in kept]
    table = {tuple(col[i] for col in columns): label for i, label in enumerate(per_position)}
    target = f"read_l{layer}h{head}"
    component = ", ".join(f"L{earlier}.MLP" for earlier in range(layer))
    made = []
    for line in table_lines(target, kept, table):
        name, source = line.split(" = ", 1)
        made.append(Candidate(name, source, component if name == target else None))
    return made


def _sortable(values) -> bool:
    """Whether the vocab has an order the language can compare (all numbers, or all strings)."""
    kinds = {type(v) for v in values}
    return kinds <= {int, float} or kinds == {str}


def _merge_duplicates(made: list[Candidate], by_meaning: dict, finding: HeadFinding) -> list:
    """`made` less what an earlier head computes already: that candidate is credited to
    both heads (patched together, as two heads computing one variable are)."""
    if not made:
        return []
    selector = made[0]
    kept, merged = [], []
    for candidate in made[1:]:
        meaning = candidate.source.replace(selector.name, f"({selector.source})")
        earlier = by_meaning.get(meaning)
        if earlier is None:
            by_meaning[meaning] = candidate
            kept.append(candidate)
        else:
            earlier.component += f", {finding.component}"
            merged.append(earlier.name)
    if merged:
        finding.note = f"also computes {', '.join(merged)}"
    finding.variables = [c.name for c in kept]
    return [selector, *kept] if kept else []


def _value_variables(definitions, values, mask) -> list[str]:
    """Categorical variables a head may read at its keys: few values (the tokens: up to
    MAX_TOKEN_CLASSES), not indices."""
    live = mask[:, 1:]
    names = []
    for candidate in definitions:
        if candidate.name == "indices_" or candidate.source.startswith(
            ("select(", "selector_width")
        ):
            continue  # positions and counts: many values, read through selectors instead
        column = values[candidate.name][live]
        distinct = set(column.tolist())
        most = MAX_TOKEN_CLASSES if candidate.name == "tokens_" else MAX_VALUE_CLASSES
        if 1 < len(distinct) <= most and None not in distinct:
            names.append(candidate.name)
    return names


def _selector_candidates(
    categorical: list[str], causal: bool, ordered: frozenset = frozenset()
) -> list[tuple[str, str]]:
    """(label, source) of each selector offered to a head."""
    found = [
        (f"indices {label}", f"select(indices_, indices_, {source})")
        for label, source in INDEX_COMPARISONS
        if not causal or label not in ("k == q + 1", "k == q + 2", ">", ">=", "true")
    ]
    for name in categorical:
        if _is_balance(name):
            continue  # read by counting, not compared between positions
        for op in ("==", "<", ">") if name in ordered else ("==",):
            same = f"select({name}, {name}, {op})"
            found.append(
                (f"{name} {op}", f"{same} & select(indices_, indices_, <=)" if causal else same)
            )
    return found


def _one_number_selected(column: np.ndarray, matrix: np.ndarray, rows: np.ndarray) -> bool:
    """Whether `column` [batch, pos] holds numbers and, at every real query, the keys
    `matrix` [batch, query, key] selects (BOS excluded) hold one of them."""
    sample = column[rows][:1000].tolist()  # a variable's values share one type
    if not sample or not set(map(type, sample)) <= {int, float}:
        return False
    numbers = np.where(rows, column, 0).astype(np.float64)[:, None, :]
    selected = matrix[:, :, : numbers.shape[-1]]
    high = np.where(selected, numbers, -np.inf).max(-1)
    low = np.where(selected, numbers, np.inf).min(-1)
    return bool(((high == low) | ~selected.any(-1))[rows].all())


def _equalities(definitions: list[Candidate], values: dict, mask) -> list[Candidate]:
    """Whether the token at a position is the one an earlier head read (the token before
    it), as 0/1 variables offered to the heads of a layer whose key vectors form no
    clusters. A later head that counts the positions where they agree (repeats of the
    previous token) then has its variable; one nothing reads is dropped by the read-out's
    search."""
    live = mask[:, 1:]
    tokens = set(values["tokens_"][live].tolist())
    known = {c.name for c in definitions}
    made = []
    for c in definitions:
        if c.component is None or c.source.startswith(("select(", "selector_width")):
            continue
        name = f"eq_tokens_{c.name}"
        if name not in known and len(tokens & set(values[c.name][live].tolist())) >= 2:
            made.append(_equality(name, c.name, None))
    return made


def _equality(name: str, token_name: str, component) -> Candidate:
    """`name`: whether the token at a position is `token_name` there, 0/1, a hypothesis."""
    return Candidate(
        name,
        f"sequence_map(lambda x, y: 1 if x == y else 0, tokens_, {token_name})",
        component,
        hypothesis=True,
    )


def _position_pointers(definitions, values, mask, causal: bool) -> list[tuple[str, str]]:
    """Selectors that match a position held by an earlier variable with the other side's
    index: `select(v, indices, ==)` (the key whose v is the query's position: sort puts
    the token whose rank is i at i) and `select(indices, v, ==)` (the key at the query's
    v: reverse reads position length - i - 1). Offered for variables whose values are
    all positions of the inputs traced."""
    live = mask[:, 1:]
    width = int(live.sum(-1).max())
    found = []
    for candidate in definitions:
        if candidate.name in ("tokens_", "indices_") or candidate.source.startswith("select("):
            continue
        if _is_balance(candidate.name):
            continue  # read by counting, not as a position
        column = values[candidate.name][live].tolist()
        if set(map(type, column)) != {int} or len(set(column)) < 2:
            continue
        if min(column) < 0 or max(column) >= width:
            continue
        for label, source in (
            (f"{candidate.name} == q index", f"select({candidate.name}, indices_, ==)"),
            (f"k index == {candidate.name}", f"select(indices_, {candidate.name}, ==)"),
        ):
            found.append(
                (label, f"{source} & select(indices_, indices_, <=)" if causal else source)
            )
    return found


def _windows(definitions, categorical, values, mask) -> list[tuple[tuple, list[tuple]]]:
    """The last two and three tokens, where earlier heads carry the tokens one and two
    back: (the variables, tokens first, then the one before, ...; the combinations seen at
    positions that have them all), for at most MAX_VALUE_CLASSES combinations. A later head
    that counts the keys of one combination finds a pattern (Tomita 4: "000" anywhere)."""
    sources = {c.name: c.source for c in definitions}
    back = {}
    for c in definitions:
        match = _TOKEN_BACK.match(c.source)
        if match and c.name in categorical:
            offset = _OFFSET.search(sources.get(match["selector"], ""))
            if offset:
                back.setdefault(int(offset["d"]), c.name)
    rows = mask[:, 1:]
    found = []
    names = ["tokens_"]
    for d in (1, 2):
        if d not in back:
            break
        names.append(back[d])
        columns = [values[n][rows].tolist() for n in names]
        seen = sorted(
            {combo for combo in zip(*columns) if DEFAULT_LABEL not in combo and None not in combo},
            key=repr,
        )
        if 1 < len(seen) <= MAX_VALUE_CLASSES:
            found.append((tuple(names), seen))
    return found


_TOKEN_BACK = re.compile(r"aggregate\((?P<selector>\w+), tokens_")
_OFFSET = re.compile(r"select\(indices_, indices_, lambda k, q: k == q - (?P<d>[12])\)$")


def _read_head(
    component, pattern, selectors, categorical, values, mask, ordered=frozenset(), windows=()
):
    """(HeadFinding, new candidates) for one head; pattern [batch, query, key] incl. BOS.
    `windows` (`_windows`): the last few tokens, whose combinations it counts too."""
    rows = mask[:, 1:]  # [batch, query]: real query positions
    real = pattern[:, 1:, 1:]  # attention from real queries to real keys
    real_share = float(real.sum(-1)[rows].mean())
    if real_share < BOS_ONLY_SHARE:
        return HeadFinding(component, "BOS", 0.0, real_share, note="reads BOS only"), []
    best = None
    for label, source, matrix in selectors:
        outside = (real * ~matrix).sum(-1)[rows]
        mean, worst = float(outside.mean()), float(outside.max())
        width = float(matrix.sum(-1)[rows].mean())
        fits = mean <= OUTSIDE_MEAN
        key = (not fits, width if fits else mean, mean)
        if best is None or key < best[0]:
            best = (key, label, source, matrix, mean, worst)
    (_, label, source, matrix, outside, worst) = best
    finding = HeadFinding(component, label, outside, real_share, worst=worst)
    tag = component.replace(".", "").lower()
    made = [Candidate(f"sel_{tag}", source, component)]
    if int(matrix.sum(-1)[rows].max()) <= 1:  # one key at most: read what is there
        made += _aggregates(tag, categorical, component)
        finding.variables = [c.name for c in made[1:]]
        return finding, made
    # Several keys that all hold one number: the aggregate (their mean) is that number
    # (sort_unique's duplicates share their rank, hence their position and their token).
    uniform = [
        v
        for v in categorical
        if not _is_balance(v) and _one_number_selected(values[v], matrix, rows)
    ]
    made += _aggregates(tag, uniform, component, where=False)
    for value in categorical:  # the counts of each value among the selected keys
        seen = sorted(set(values[value][rows].tolist()), key=repr)
        if _is_balance(value):
            seen = [0, 1]  # how many positions are on each side
        for number, v in enumerate(seen):
            slug = str(v) if str(v).isidentifier() or str(v).isdigit() else f"v{number}"
            made.append(
                Candidate(
                    f"n_{value.rstrip('_')}_{slug}_{tag}",
                    f"selector_width(sel_{tag} & select({value}, {value}, lambda k, q: k == {literal(v)}))",
                    component,
                )
            )
    for names, seen in windows:  # the keys where the last few tokens are one combination
        for number, combination in enumerate(seen):
            named = all(str(v).isidentifier() or str(v).isdigit() for v in combination)
            slug = "_".join(map(str, combination)) if named else f"c{number}"
            tests = " & ".join(
                f"select({name}, {name}, lambda k, q: k == {literal(v)})"
                for name, v in zip(names, combination)
            )
            made.append(
                Candidate(
                    f"n_last{len(names)}_{slug}_{tag}",
                    f"selector_width(sel_{tag} & {tests})",
                    component,
                )
            )
    made.append(Candidate(f"n_{tag}", f"selector_width(sel_{tag})", component))
    for value in (v for v in categorical if not _is_balance(v)):
        # The keys holding the query's value; for an ordered vocabulary also those below
        # and above it (a rank: how many tokens are smaller than this one).
        comparisons = [("same", "==")] + [("less", "<"), ("more", ">")] * (value in ordered)
        for word, op in comparisons:
            made.append(
                Candidate(
                    f"n_{word}_{value.rstrip('_')}_{tag}",
                    f"selector_width(sel_{tag} & select({value}, {value}, {op}))",
                    component,
                )
            )
    finding.variables = [c.name for c in made[1:]]
    return finding, made
