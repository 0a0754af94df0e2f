"""A read-out that copies the token at one position, found from the model's answers.

A head that points at one key is read by `discover` (`select(indices, at, ==)`). A trained
model may move a token with attention spread over every head of every layer (a small
reverse model: no head puts half its weight on one key), so that no head points, yet its
answer at each position is the token at a position the query's variables determine (the
length less the index less one). `read_out_pointer` looks for that position as a function
of the query's index and at most one other variable (one pass over the variables, not
over their pairs: large domains have many): among the read-out positions with the same
values of them, exactly one position holds the answer on every traced input. Its aggregate is
credited to the heads whose own pointer is the same at every read-out position (a compiled
reverse: its flip head), else to every head, so that the interventions patch them all
together: the evidence is then what the heads jointly carry, not a claim about any one.

A model right on all but a few inputs leaves no position holding every answer of its
group. Then each group points at the position holding most of its answers, if that
holds the answer at APPROXIMATE_AT_LEAST of the read-out positions; only over the index
and variables with no more values than there are positions (one with more could single
out inputs and memorise them). The pipeline then treats it as any variable: the check
measures how far the program follows the model, and only an approximation uses it.

The pipeline offers the index of a separator (`landmarks`: a token every input holds once)
as a variable: a causal copy after it points i - k back, and a query can know k only from
the separator on. Positions nothing reads (before the separator) point where the read
positions' affine rule says, so that synthesis sees one rule, not a table.
"""

from __future__ import annotations

import itertools

import numpy as np

from distill.circuit.discovery import DEFAULT_LABEL
from distill.trained.candidates import Candidate
from distill.trained.discover import POINTER_HEAD
from distill.trained.program import Observations, group_ids, table_lines

TARGET = "at_out"
SAMPLE_STEP = 16  # every so many read-out positions rule variables out first
APPROXIMATE_AT_LEAST = 0.99  # share of read-out answers an approximate pointer holds
DENSER_STEP = 4  # then every so many: a quarter rules out pointers missing 4% or more


def read_out_pointer(
    obs: Observations, inputs: list[list], names: list[str], heads: list[str], causal: bool
) -> list[Candidate]:
    """Definitions of `tokens_at_out`, the token at the position `at_out` (a table of the
    index and at most one other of `names`), credited to `heads`; [] when no such position
    holds the model's answer at every traced read-out position (`causal`: a position up to
    the query's: teacher-forced, the next token also holds the answer), nor, approximately,
    at APPROXIMATE_AT_LEAST of them."""
    if "indices_" not in names or not obs.read.any():
        return []
    matches, tokens_only = _matches(obs, inputs, causal)
    sizes = {n: len(obs.values[n]) for n in names}
    others = sorted((n for n in names if n != "indices_"), key=sizes.get)
    sample = np.flatnonzero(obs.read)[::SAMPLE_STEP]

    def credit(pointed):
        return _credited(obs, pointed, inputs, names, heads)

    if tokens_only:
        for kept in [["indices_"], *(["indices_", n] for n in others)]:
            if _ruled_out(obs, matches, kept, sample):
                continue
            found = _pointer_table(obs, matches, kept)
            if found is not None:
                return _definitions(kept, found[0], credit(found[1]))
    if matches[obs.read].any(-1).mean() < APPROXIMATE_AT_LEAST:
        return []  # too few answers are tokens of the input
    positions = max(map(len, inputs))
    allowed = (1 - APPROXIMATE_AT_LEAST) * obs.read.sum()
    denser = np.flatnonzero(obs.read)[::DENSER_STEP]
    for kept in [["indices_"], *(["indices_", n] for n in others if sizes[n] <= positions)]:
        if any(_misses(obs, matches, kept, rows) > allowed for rows in (sample, denser)):
            continue
        found = _majority_table(obs, matches, kept)
        if found is not None and found[2] >= APPROXIMATE_AT_LEAST:
            return _definitions(kept, found[0], credit(found[1]))
    return []


def landmarks(inputs: list[list]) -> list[Candidate]:
    """For each token every traced input holds exactly once (a separator), its index from
    that position on (-1 before): a copy after it points `i - k` back, a function of the
    query's index and this. Keys up to the query's, so a causal model may read it too."""
    made = []
    for number, token in enumerate(sorted({t for x in inputs for t in x}, key=repr)):
        if not all(x.count(token) == 1 for x in inputs):
            continue
        literal = repr(token) if isinstance(token, str) else str(token)
        slug = str(token) if str(token).isidentifier() else f"t{number}"
        made += [
            Candidate(
                f"sel_at_{slug}",
                "select(indices_, indices_, <=) & "
                f"select(tokens_, tokens_, lambda k, q: k == {literal})",
                None,
            ),
            Candidate(f"index_of_{slug}", f"aggregate(sel_at_{slug}, indices_, default=-1)", None),
        ]
    return made


def _matches(obs: Observations, inputs: list[list], causal: bool) -> tuple[np.ndarray, bool]:
    """([position, key]: whether the key's token is the model's answer at the position
    (read-out positions; padding, and with `causal` keys after the query, never match; any
    key at a position not read), whether every answer is a token the query may read)."""
    width = max(map(len, inputs))
    code: dict = {}  # each distinct token or answer -> an int (1 and 1.0 kept apart)
    tokens = np.full((len(inputs), width), -1)
    for row, sequence in enumerate(inputs):
        tokens[row, : len(sequence)] = [code.setdefault(_key(t), len(code)) for t in sequence]
    answers = np.array([code.get(_key(a), -2) for a in obs.outputs])
    rows = np.repeat(np.arange(len(inputs)), [len(sequence) for sequence in inputs])
    matches = tokens[rows] == answers[:, None]
    if causal:
        queries = np.concatenate([np.arange(len(sequence)) for sequence in inputs])
        matches &= np.arange(width)[None, :] <= queries[:, None]
    matches[~obs.read] = True  # not read: any position will do
    return matches, bool(matches[obs.read].any(-1).all())


def _key(value) -> tuple:
    value = value.item() if isinstance(value, np.generic) else value
    return type(value), value


def _ruled_out(obs: Observations, matches: np.ndarray, kept: list[str], rows) -> bool:
    """Whether some group of `kept` leaves no position among the read-out positions `rows`
    alone: then none is left among all of them either (each group's positions in common
    only shrink as positions are added). A few positions rule out most variables."""
    _, _, common = _in_common(_groups_of(obs, kept, rows), matches[rows])
    return bool((~common.any(-1)).any())


def _misses(obs: Observations, matches: np.ndarray, kept: list[str], rows) -> int:
    """Read-out positions among `rows` whose answer their group's best position misses:
    no more than the whole data's misses (per group, the best position over all of them
    misses at least as many of these), so more than a pointer may miss rules `kept` out."""
    order, starts = _sorted(_groups_of(obs, kept, rows))
    counts = np.add.reduceat(matches[rows][order].astype(np.int64), starts, axis=0)
    return int(len(rows) - counts.max(-1).sum())


def _groups_of(obs: Observations, kept: list[str], rows) -> np.ndarray:
    """Group 0..G-1 of each of the positions `rows` by its values of `kept`."""
    key = np.zeros(len(rows), dtype=np.int64)
    for name in kept:
        key = key * len(obs.values[name]) + obs.codes[name][rows]
    return np.unique(key, return_inverse=True)[1].reshape(-1)


def _sorted(group: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(order, starts): positions sorted by group, and where each group starts."""
    order = np.argsort(group, kind="stable")
    return order, np.flatnonzero(np.diff(group[order], prepend=-1))


def _in_common(group: np.ndarray, matches: np.ndarray):
    """(order, starts, common): positions sorted by group, where each group starts, and
    the keys that hold the answer at every position of each group."""
    order, starts = _sorted(group)
    return order, starts, np.logical_and.reduceat(matches[order], starts, axis=0)


def _pointer_table(obs: Observations, matches: np.ndarray, kept: list[str]) -> dict | None:
    """({values of kept: the one position holding the answer at every read-out position
    with those values}, that position at each position), None where a group leaves no
    position or more than one. A group seen only where nothing is read points at
    position 0 (every input has it)."""
    group = group_ids(obs, kept)
    order, starts, common = _in_common(group, matches)
    read = np.logical_or.reduceat(obs.read[order], starts)
    counts = common.sum(-1)
    if (counts[read] != 1).any():
        return None
    position = np.where(read, common.argmax(-1), 0)
    return _table(obs, kept, order[starts], position, read), position[group]


def _majority_table(obs: Observations, matches: np.ndarray, kept: list[str]):
    """(table, pointed, share): per group of `kept`, the position holding the answer at the
    most of its read-out positions (as `_pointer_table`), and the share of all read-out
    positions whose answer it holds; None where two positions hold as many in a group
    (as `_pointer_table`, no choice between positions that say the same)."""
    group = group_ids(obs, kept)
    order, starts = _sorted(group)
    held = matches & obs.read[:, None]
    counts = np.add.reduceat(held[order].astype(np.int64), starts, axis=0)
    top_two = np.sort(counts, axis=-1)[:, -2:]
    if counts.shape[1] > 1 and ((top_two[:, 0] == top_two[:, 1]) & (top_two[:, 1] > 0)).any():
        return None
    position = counts.argmax(-1)
    share = counts.max(-1).sum() / obs.read.sum()
    read = np.logical_or.reduceat(obs.read[order], starts)
    return _table(obs, kept, order[starts], position, read), position[group], share


def _table(obs: Observations, kept: list[str], first, position, read) -> dict:
    """{values of `kept` at each group's `first` position: the group's position}; a group
    seen only where nothing is read points where the read ones' affine rule says (a copy
    after a separator: i - k, at the separator's own row too), else at position 0."""
    columns = [[obs.values[n][c] for c in obs.codes[n][first].tolist()] for n in kept]
    keys = list(zip(*columns))
    rule = _affine_rule([k for k, r in zip(keys, read) if r], position[read].tolist())
    return {
        key: int(p) if r or rule is None else rule(key)
        for key, p, r in zip(keys, position.tolist(), read.tolist())
    }


def _affine_rule(keys: list[tuple], positions: list[int]):
    """The rule a . key + c (a's entries -1, 0 or 1; c from -2 to 2) giving every position
    from its key, as a function of the key; None where none does (or a key is no int)."""
    if not keys or not all(isinstance(v, int) for key in keys for v in key):
        return None
    points = np.array(keys, dtype=np.int64)
    wanted = np.array(positions, dtype=np.int64)
    for a in itertools.product((1, -1, 0), repeat=points.shape[1]):
        for c in (0, -1, 1, -2, 2):
            if ((points @ np.array(a) + c) == wanted).all():
                return lambda key, a=a, c=c: int(np.dot(a, key) + c)
    return None


def _credited(obs, pointed: np.ndarray, inputs: list[list], names: list[str], heads: list[str]):
    """The heads whose own pointer (discover's POINTER_NAME) is this one at every
    read-out position where it points inside the input (where it points past either end
    the head selects nothing, and the answer comes another way): the token moves through
    them; with none, every head."""
    lengths = np.repeat([len(x) for x in inputs], [len(x) for x in inputs])
    same = []
    for name in names:
        head = POINTER_HEAD.match(name)
        if head:
            values = np.array(obs.values[name], dtype=object)[obs.codes[name]]
            inside = obs.read & np.array(
                [isinstance(v, int) and 0 <= v < n for v, n in zip(values, lengths)]
            )
            if inside.any() and (values[inside] == pointed[inside]).all():
                same.append(f"L{head[1]}.H{head[2]}")
    return same or heads


def _definitions(kept: list[str], table: dict, heads: list[str]) -> list[Candidate]:
    made = []
    for line in table_lines(TARGET, kept, table):
        name, source = line.split(" = ", 1)
        made.append(Candidate(name, source, None))
    made.append(Candidate("sel_at_out", f"select(indices_, {TARGET}, ==)", None))
    made.append(
        Candidate(
            "tokens_at_out",
            f"aggregate(sel_at_out, tokens_, default={DEFAULT_LABEL!r})",
            ", ".join(heads),
        )
    )
    return made
