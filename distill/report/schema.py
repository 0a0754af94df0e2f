"""The report of one distillation: a frozen record the pipeline fills, written as JSON and HTML.

`Report` holds plain data only (strings, numbers, token values, tuples), so it
round-trips through JSON (`write_json` / `read_json`) without losing anything
and the HTML page (`write_html`, drawn by `distill.report_html`) needs nothing
but the report. Both writers go through a temporary file and `os.replace`, so
a reader never sees half a report.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from distill.errors import BadInputError
from distill.files import write_text_atomically

FORMAT_VERSION = 1

# A component id names a part of the network: "embed", "L0.H1", "L1.MLP", "L1.MLP[2]", "output".
_HEAD_ID = re.compile(r"^L(\d+)\.H(\d+)$")
_MLP_ID = re.compile(r"^L(\d+)\.MLP(\[\d+\])?$")


def component_kind(component: str) -> str:
    """ "head", "mlp", "embed" or "output", read off a component id."""
    if _HEAD_ID.match(component):
        return "head"
    if _MLP_ID.match(component):
        return "mlp"
    if component == "output":
        return "output"
    return "embed"


def component_layer(component: str) -> int | None:
    """The layer of "L2.H0" / "L2.MLP" (2); None for the embedding and the output."""
    match = _HEAD_ID.match(component) or _MLP_ID.match(component)
    return int(match.group(1)) if match else None


@dataclass(frozen=True)
class LineComponents:
    """Which network components compute one line of the program."""

    name: str
    """The definition name (or "return" for the output line)."""
    line: int
    """1-based line number in `Report.program_source`."""
    components: tuple[str, ...]
    """Component ids, e.g. ("L0.H1",) or ("L1.MLP", "L1.MLP[2]")."""


@dataclass(frozen=True)
class CircuitNode:
    id: str
    """The component id ("embed", "L0.H1", "L1.MLP", "output")."""
    kind: str
    """"embed", "head", "mlp" or "output": sets the colour in the picture."""
    layer: int | None
    """The transformer layer; None for the embedding and the output."""
    label: str = ""
    """What the component computes, e.g. the program line's name."""


@dataclass(frozen=True)
class Circuit:
    """The components that matter and which reads from which (edges point downstream)."""

    nodes: tuple[CircuitNode, ...]
    edges: tuple[tuple[str, str], ...]

    @classmethod
    def from_graph(cls, graph) -> Circuit:
        """From a networkx DiGraph whose nodes are component ids.

        Node attributes `kind`, `layer` and `label` are used when present;
        otherwise kind and layer are read off the id.
        """
        nodes = tuple(
            CircuitNode(
                id=str(node),
                kind=attrs.get("kind", component_kind(str(node))),
                layer=attrs.get("layer", component_layer(str(node))),
                label=str(attrs.get("label", "")),
            )
            for node, attrs in graph.nodes(data=True)
        )
        edges = tuple((str(a), str(b)) for a, b in graph.edges())
        return cls(nodes=nodes, edges=edges)


@dataclass(frozen=True)
class SelectorTable:
    """The selector a head implements, read off its behaviour: which keys a query attends to."""

    query_values: tuple
    key_values: tuple
    selected: tuple[tuple[bool, ...], ...]
    """[query value][key value] -> does the query select the key."""
    default: object = None
    """The value the head outputs when a query selects nothing (tracr: attend to BOS)."""
    predicate: str = ""
    """The predicate in program syntax, e.g. "==" or "lambda k, q: k == q + 1" ("" if unknown)."""


@dataclass(frozen=True)
class HeadEvidence:
    """One attention head: its pattern on an example input beside the selector it implements."""

    component: str
    """The head's id, "L0.H1"."""
    example_input: tuple
    """The example's tokens as the head sees them, BOS first."""
    attention: tuple[tuple[float, ...], ...]
    """The attention pattern on the example, [query position][key position], rows sum to 1."""
    selector: SelectorTable | None = None
    """The inferred selector table; None when none was inferred."""
    line: str = ""
    """The program definition the head computes ("" if none)."""


@dataclass(frozen=True)
class Counterexample:
    input: tuple
    """The input tokens (without BOS)."""
    expected: tuple
    """The model's output on it."""
    got: tuple
    """The program's output on it."""
    position: int
    """The first position (0-based, without BOS) where they differ."""


@dataclass(frozen=True)
class Verification:
    level: str
    """The level reached: "certified(5)", "exhaustive(5)", "sampled(1000)" or "refuted",
    then "; " and the other levels reached."""
    domain: str
    """The input domain checked, e.g. "vocab {'a', 'b'}, lengths 1..5"."""
    precondition: str = ""
    """What restricts the inputs beyond the domain ("" when nothing does)."""
    inputs_checked: int = 0
    """How many inputs were compared."""
    agreement: float | None = None
    """The fraction of checked inputs where program and model agree (1.0 = all)."""
    seed: int | None = None
    """The sampling seed when the level is sampled."""
    counterexamples: tuple[Counterexample, ...] = ()
    certificate: tuple[CertificateLine, ...] = ()
    """Per component, the conditions of certified(n) (empty when not read off the weights)."""
    certificate_status: str = ""
    """ "certified(n)", or "not certified: " and the reason."""


@dataclass(frozen=True)
class CertificateLine:
    """One component's part of certified(n): what was checked and with what room."""

    component: str
    checked: int
    """Combinations of its input values (or query x key value pairs) checked."""
    margin: float
    """Its worst margin (score gap to BOS, pre-activation gap, or decoding gap)."""
    bound: float
    """How far its output may be from the tabulated value (inf when a condition failed)."""
    failed: str = ""
    """The condition that failed here, if any."""
    note: str = ""
    """Conditions set aside, and why (e.g. an output value no input reaches)."""


@dataclass(frozen=True)
class Score:
    """How the distilled program compares with a known source program (optional)."""

    reference: str = ""
    """What it was compared with, e.g. the tracr case name."""
    equivalent: bool | None = None
    """Z3's verdict against the source program; None when not checked."""
    size_ratio: float | None = None
    """Distilled program size / source program size (nodes)."""
    recall: float | None = None
    """The fraction of the source program's named comparisons found again."""


@dataclass(frozen=True)
class Report:
    title: str
    """What was distilled, e.g. the model file name."""
    model: Mapping[str, object]
    """The model summary: its config as plain values (vocab, bos, max_seq_len, sizes...)."""
    program_source: str
    """The distilled program, as `dsl.to_source` prints it."""
    lines: tuple[LineComponents, ...] = ()
    """Each program line mapped to the components that compute it."""
    circuit: Circuit = field(default_factory=lambda: Circuit(nodes=(), edges=()))
    """The circuit (a networkx DiGraph of component ids is converted with Circuit.from_graph)."""
    heads: tuple[HeadEvidence, ...] = ()
    verification: Verification | None = None
    timings: tuple[tuple[str, float], ...] = ()
    """(stage name, seconds) in pipeline order."""
    score: Score | None = None

    def __post_init__(self):
        # The pipeline builds its circuit as a networkx DiGraph; accept it as it is.
        if not isinstance(self.circuit, Circuit):
            object.__setattr__(self, "circuit", Circuit.from_graph(self.circuit))


def model_summary(config) -> dict:
    """A model config (a dataclass or a mapping) as a JSON-ready dict."""
    items = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config)
    return {key: _plain(value) for key, value in items.items()}


def _plain(value):
    # JSON has lists, not tuples or sets; enum members are written by value.
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((_plain(v) for v in value), key=repr)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, enum.Enum):
        return value.value
    return value


# --------------------------------------------------------------------------
# JSON
# --------------------------------------------------------------------------


def to_dict(report: Report) -> dict:
    """The report as JSON-ready data (the layout `write_json` writes)."""
    data = dataclasses.asdict(report)
    data["model"] = _plain(dict(report.model))
    return {"format_version": FORMAT_VERSION, **data}


def from_dict(data: Mapping) -> Report:
    """The inverse of `to_dict`; a missing or malformed field is a BadInputError naming it."""
    version = data.get("format_version")
    if version != FORMAT_VERSION:
        raise BadInputError(f"report: format_version: expected {FORMAT_VERSION}, got {version!r}")
    try:
        return Report(
            title=data["title"],
            model=dict(data["model"]),
            program_source=data["program_source"],
            lines=tuple(
                LineComponents(item["name"], item["line"], tuple(item["components"]))
                for item in data["lines"]
            ),
            circuit=Circuit(
                nodes=tuple(CircuitNode(**node) for node in data["circuit"]["nodes"]),
                edges=tuple((a, b) for a, b in data["circuit"]["edges"]),
            ),
            heads=tuple(_head_from_dict(item) for item in data["heads"]),
            verification=_verification_from_dict(data["verification"]),
            timings=tuple((stage, seconds) for stage, seconds in data["timings"]),
            score=Score(**data["score"]) if data["score"] is not None else None,
        )
    except (KeyError, TypeError, ValueError) as error:
        raise BadInputError(f"report: malformed field: {error!r}") from error


def _rows(rows, kind):
    return tuple(tuple(kind(v) for v in row) for row in rows)


def _head_from_dict(item: Mapping) -> HeadEvidence:
    table = item["selector"]
    selector = None
    if table is not None:
        selector = SelectorTable(
            query_values=tuple(table["query_values"]),
            key_values=tuple(table["key_values"]),
            selected=_rows(table["selected"], bool),
            default=table["default"],
            predicate=table["predicate"],
        )
    return HeadEvidence(
        component=item["component"],
        example_input=tuple(item["example_input"]),
        attention=_rows(item["attention"], float),
        selector=selector,
        line=item["line"],
    )


def _verification_from_dict(item: Mapping | None) -> Verification | None:
    if item is None:
        return None
    return Verification(
        level=item["level"],
        domain=item["domain"],
        precondition=item["precondition"],
        inputs_checked=item["inputs_checked"],
        agreement=item["agreement"],
        seed=item["seed"],
        counterexamples=tuple(
            Counterexample(
                input=tuple(c["input"]),
                expected=tuple(c["expected"]),
                got=tuple(c["got"]),
                position=c["position"],
            )
            for c in item["counterexamples"]
        ),
        certificate=tuple(CertificateLine(**line) for line in item.get("certificate", ())),
        certificate_status=item.get("certificate_status", ""),
    )


def write_json(report: Report, path) -> None:
    write_text_atomically(path, json.dumps(to_dict(report), indent=2, allow_nan=True) + "\n")


def read_json(path) -> Report:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise BadInputError(
            f"{path}:{error.lineno}:{error.colno}: not JSON: {error.msg}"
        ) from error
    return from_dict(data)


def write_html(report: Report, path) -> None:
    """A self-contained page (inline SVG, CSS and script; nothing fetched)."""
    from distill.report.html import render_html

    write_text_atomically(path, render_html(report))
