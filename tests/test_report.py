"""distill.report.schema: a hand-built report survives JSON, and its HTML page shows every part of it."""

import json
import re
from html.parser import HTMLParser

import networkx as nx
import pytest

from distill.errors import BadInputError
from distill.report.schema import (
    Circuit,
    Counterexample,
    HeadEvidence,
    LineComponents,
    Report,
    Score,
    SelectorTable,
    Verification,
    read_json,
    write_html,
    write_json,
)

REVERSE_SOURCE = """\
length = selector_width(select(tokens, tokens, true))
opp = length - indices - 1
flip = select(indices, opp, ==)
reverse = aggregate(flip, tokens)
return reverse
"""


def _reverse_attention(tokens):
    # L2.H0 of reverse on a length-n input: query i attends to key n-1-i (positions without BOS).
    n = len(tokens) - 1
    rows = [[1.0] + [0.0] * n]
    for i in range(n):
        row = [0.0] * (n + 1)
        row[1 + (n - 1 - i)] = 1.0
        rows.append(row)
    return tuple(tuple(r) for r in rows)


def _uniform_attention(tokens):
    n = len(tokens)
    return tuple(tuple(1.0 / n for _ in range(n)) for _ in range(n))


def sample_report(*, refuted: bool = False) -> Report:
    """The report of reverse on vocab {a, b, c}, length <= 4, as the pipeline would fill it."""
    example = ("BOS", "a", "b", "c", "a")
    graph = nx.DiGraph()
    graph.add_node("embed", label="tokens, indices")
    graph.add_node("L0.H0", label="length")
    graph.add_node("L0.MLP", label="length")
    graph.add_node("L1.MLP", label="opp")
    graph.add_node("L2.H0", label="reverse")
    graph.add_node("output", label="reverse")
    graph.add_edges_from(
        [
            ("embed", "L0.H0"),
            ("L0.H0", "L0.MLP"),
            ("L0.MLP", "L1.MLP"),
            ("embed", "L1.MLP"),
            ("L1.MLP", "L2.H0"),
            ("embed", "L2.H0"),
            ("L2.H0", "output"),
        ]
    )
    positions = (0, 1, 2, 3)
    flip = SelectorTable(
        query_values=positions,
        key_values=positions,
        selected=tuple(tuple(k == q for k in positions) for q in positions),
        default=None,
        predicate="==",
    )
    everything = SelectorTable(
        query_values=("a", "b", "c"),
        key_values=("a", "b", "c"),
        selected=((True,) * 3,) * 3,
        default=0,
        predicate="true",
    )
    counterexamples = ()
    level = "exhaustive(4)"
    if refuted:
        level = "refuted"
        counterexamples = (
            Counterexample(input=("a", "b"), expected=("b", "a"), got=("b", "b"), position=1),
        )
    return Report(
        title="reverse.safetensors",
        model={
            "n_layers": 3,
            "n_heads": 1,
            "d_model": 42,
            "vocab": ["a", "b", "c"],
            "bos": "BOS",
            "max_seq_len": 4,
            "output_kind": "categorical",
            "output_values": ["a", "b", "c"],
        },
        program_source=REVERSE_SOURCE,
        lines=(
            LineComponents("length", 1, ("L0.H0", "L0.MLP")),
            LineComponents("opp", 2, ("L1.MLP",)),
            LineComponents("flip", 3, ("L2.H0",)),
            LineComponents("reverse", 4, ("L2.H0",)),
        ),
        circuit=graph,  # the pipeline's DiGraph, converted by Report
        heads=(
            HeadEvidence("L0.H0", example, _uniform_attention(example), everything, "length"),
            HeadEvidence("L2.H0", example, _reverse_attention(example), flip, "reverse"),
        ),
        verification=Verification(
            level=level,
            domain="vocab {'a', 'b', 'c'}, lengths 1..4",
            precondition="",
            inputs_checked=120,
            agreement=1.0 if not refuted else 119 / 120,
            counterexamples=counterexamples,
        ),
        timings=(("trace", 0.41), ("decompose", 0.12), ("synthesize", 1.9), ("verify", 0.7)),
        score=Score(reference="lib.make_reverse", equivalent=True, size_ratio=1.0, recall=1.0),
    )


def test_json_round_trip_gives_an_equal_report(tmp_path):
    for report in (sample_report(), sample_report(refuted=True)):
        path = tmp_path / "report.json"
        write_json(report, path)
        assert read_json(path) == report
        assert json.loads(path.read_text())["verification"]["level"] == report.verification.level


def test_a_digraph_circuit_keeps_its_nodes_edges_and_labels():
    circuit = sample_report().circuit
    assert isinstance(circuit, Circuit)
    kinds = {node.id: (node.kind, node.layer, node.label) for node in circuit.nodes}
    assert kinds["L0.H0"] == ("head", 0, "length")
    assert kinds["L1.MLP"] == ("mlp", 1, "opp")
    assert kinds["embed"] == ("embed", None, "tokens, indices")
    assert kinds["output"] == ("output", None, "reverse")
    assert ("L1.MLP", "L2.H0") in circuit.edges and len(circuit.edges) == 7


def test_json_with_a_missing_field_names_it(tmp_path):
    path = tmp_path / "report.json"
    write_json(sample_report(), path)
    data = json.loads(path.read_text())
    del data["heads"][0]["attention"]
    path.write_text(json.dumps(data))
    with pytest.raises(BadInputError, match="attention"):
        read_json(path)


def test_json_of_another_version_is_rejected(tmp_path):
    path = tmp_path / "report.json"
    path.write_text(json.dumps({"format_version": 99}))
    with pytest.raises(BadInputError, match="format_version"):
        read_json(path)


def test_writers_leave_no_temporary_files(tmp_path):
    write_json(sample_report(), tmp_path / "report.json")
    write_html(sample_report(), tmp_path / "report.html")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html", "report.json"]


class _Elements(HTMLParser):
    """Every start tag with its attributes, and the page's text."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def _parse(html: str) -> _Elements:
    elements = _Elements()
    elements.feed(html)
    return elements


def test_html_shows_each_program_line_linked_to_its_components(tmp_path):
    report = sample_report()
    write_html(report, tmp_path / "report.html")
    page = _parse((tmp_path / "report.html").read_text())
    text = "".join(page.text)
    for line in REVERSE_SOURCE.splitlines():
        assert line in text
    lines = {a.get("id"): a for tag, a in page.tags if "line" in a.get("class", "").split()}
    for item in report.lines:
        assert lines[f"line-{item.line}"]["data-components"].split() == list(item.components)
        assert lines[f"line-{item.line}"]["data-name"] == item.name
    chip_targets = {
        a["href"] for tag, a in page.tags if tag == "a" and "chip" in a.get("class", "")
    }
    assert {"#head-L0-H0", "#head-L2-H0"} <= chip_targets
    ids = {a.get("id") for _, a in page.tags}
    assert {"head-L0-H0", "head-L2-H0"} <= ids  # the links lead somewhere


def test_html_has_one_heatmap_per_head_with_one_cell_per_attention_weight(tmp_path):
    report = sample_report()
    html_path = tmp_path / "report.html"
    write_html(report, html_path)
    html = html_path.read_text()
    heatmaps = re.findall(
        r'<svg class="heatmap" data-component="([^"]+)".*?</svg>', html, re.DOTALL
    )
    assert heatmaps == [head.component for head in report.heads]
    for head in report.heads:
        svg = re.search(
            rf'<svg class="heatmap" data-component="{re.escape(head.component)}".*?</svg>',
            html,
            re.DOTALL,
        )
        assert svg.group(0).count("<rect") == sum(len(row) for row in head.attention)
    # The selector table beside the heatmap: one filled cell per selected (query, key).
    assert html.count('<td class="on">') == sum(
        sum(map(sum, head.selector.selected)) for head in report.heads
    )


def test_html_draws_the_circuit_graph_with_every_node_and_edge(tmp_path):
    report = sample_report()
    write_html(report, tmp_path / "report.html")
    page = _parse((tmp_path / "report.html").read_text())
    circuit_svgs = [a for tag, a in page.tags if tag == "svg" and a.get("class") == "circuit"]
    assert len(circuit_svgs) == 1
    nodes = {
        a["data-component"] for tag, a in page.tags if tag == "g" and "node" in a.get("class", "")
    }
    assert nodes == {node.id for node in report.circuit.nodes}
    edges = {
        (a["data-source"], a["data-target"]) for tag, a in page.tags if a.get("class") == "edge"
    }
    assert edges == set(report.circuit.edges)


def test_html_states_verification_and_shows_counterexamples(tmp_path):
    write_html(sample_report(), tmp_path / "ok.html")
    write_html(sample_report(refuted=True), tmp_path / "bad.html")
    ok = (tmp_path / "ok.html").read_text()
    bad = (tmp_path / "bad.html").read_text()
    assert "exhaustive(4)" in ok and "lengths 1..4" in ok
    assert 'id="counterexamples"' not in ok
    assert "refuted" in bad and 'id="counterexamples"' in bad
    assert "first difference at position 1" in bad


def test_html_is_self_contained(tmp_path):
    write_html(sample_report(), tmp_path / "report.html")
    page = _parse((tmp_path / "report.html").read_text())
    for tag, attributes in page.tags:
        for name in ("src", "href"):
            value = attributes.get(name, "")
            assert not value or value.startswith("#"), (tag, name, value)


def test_html_escapes_program_text(tmp_path):
    report = sample_report()
    hostile = Report(
        title="<script>alert(1)</script>",
        model=report.model,
        program_source='x = map(lambda t: t < "<b>", tokens)\nreturn x\n',
    )
    write_html(hostile, tmp_path / "report.html")
    html = (tmp_path / "report.html").read_text()
    assert "<script>alert(1)" not in html and "&lt;b&gt;" in html
