"""The HTML page of a report: one self-contained file (inline CSS, SVG and a little script).

Layout, top to bottom: the verdict (level, domain, precondition) and any
counterexamples, the program beside the circuit graph (hovering a line lights
up the components that compute it, and the reverse), one card per attention
head (heatmap beside the selector table), then the model summary, timings and
score.
"""

from __future__ import annotations

from html import escape

from distill.report.schema import HeadEvidence, Report, Verification, component_kind
from distill.report.svg import KIND_COLOURS, circuit_svg, dom_id, heatmap_svg, legend_svg

# Verification levels, strongest first, each with a colour and a sentence a reader can trust.
_LEVELS = {
    "proved": (
        "#15803d",
        "Z3 proved the program equal to the reference on every input of the domain.",
    ),
    "certified": (
        "#166534",
        "Every component was checked on every combination of its input values, with error "
        "bounds from the weights carried to the read-out: program and model agree on every "
        "input of the domain (see the certificate).",
    ),
    "exhaustive": ("#0f766e", "Program and model agree on every input of the domain."),
    "sampled": ("#b45309", "Program and model agree on random inputs (not a proof)."),
    "refuted": ("#b91c1c", "Program and model disagree: see the counterexamples."),
}

_CSS = """
:root { --ink:#0f172a; --muted:#64748b; --line:#e2e8f0; --paper:#ffffff; --wash:#f8fafc; }
* { box-sizing: border-box; }
body { margin:0; background:var(--wash); color:var(--ink);
  font: 15px/1.5 -apple-system, "Segoe UI", "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1240px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 24px; margin: 0 0 4px; letter-spacing: -0.01em; }
h2 { font-size: 13px; text-transform: uppercase; letter-spacing: .08em; color: var(--muted);
  margin: 0 0 12px; }
.subtitle { color: var(--muted); margin: 0 0 18px; }
.panel { background: var(--paper); border: 1px solid var(--line); border-radius: 12px;
  padding: 18px 20px; margin-bottom: 20px; }
.verdict { display:flex; gap:22px; align-items:center; border-left: 6px solid var(--level); }
.badge { font-weight: 700; font-size: 18px; color: #fff; background: var(--level);
  border-radius: 999px; padding: 6px 16px; white-space: nowrap; }
.verdict dl { display:grid; grid-template-columns: max-content 1fr; gap: 2px 14px;
  margin: 0; flex: 1; }
.verdict dt { color: var(--muted); }
.verdict dd { margin: 0; }
.grid { display:grid; grid-template-columns: fit-content(58%) minmax(0, 1fr); gap: 20px;
  margin-bottom: 20px; }
.grid > .panel { margin-bottom: 0; }
.program { font: 14px/1.7 "JetBrains Mono", "DejaVu Sans Mono", Menlo, Consolas, monospace;
  margin: 0; overflow-x: auto; }
.line { display:flex; align-items: baseline; gap: 10px; padding: 0 6px; border-radius: 6px; }
.line:hover, .line.lit { background: #eff6ff; }
.lineno { color: #94a3b8; width: 2.2em; text-align: right; flex: none; user-select: none; }
.code { white-space: pre; flex: 1; }
.chips { flex: none; display:flex; gap: 4px; }
.chip { font: 600 11px/1 -apple-system, "Segoe UI", Arial, sans-serif; padding: 3px 7px;
  border-radius: 999px; text-decoration: none; border: 1.5px solid; }
svg.circuit { width: 100%; height: auto; }
svg text { font-family: -apple-system, "Segoe UI", Arial, sans-serif; }
.row-header { font-size: 11px; fill: var(--muted); text-transform: uppercase; letter-spacing: .06em; }
.node-id { font-size: 13px; font-weight: 700; }
.node-label { font-size: 11px; fill: #334155; font-family: "DejaVu Sans Mono", Menlo, monospace; }
.node { cursor: pointer; }
.node.lit rect { stroke-width: 4; }
.node.lit rect + rect { fill-opacity: .3; }
.edge.lit { stroke: #0f172a; stroke-width: 2.4; }
.legend-text { font-size: 12px; fill: #334155; }
.legend-row { margin-top: 18px; padding-top: 12px; border-top: 1px solid var(--line); }
h2.with-scale { display:flex; gap: 24px; align-items:center; }
.scale { text-transform: none; letter-spacing: 0; display:flex; align-items:center; gap: 8px; font-size: 12px; color:#334155; }
.scale-bar { width: 120px; height: 12px; border-radius: 3px;
  background: linear-gradient(90deg, #f8fafc, #1d4ed8); border: 1px solid var(--line); }
#heads { margin-bottom: 20px; }
.heads { display:grid; grid-template-columns: repeat(auto-fill, minmax(560px, 1fr)); gap: 20px; }
.head { margin-bottom: 0; scroll-margin-top: 16px; }
.head.lit { box-shadow: 0 0 0 3px #93c5fd; }
.head h3 { margin: 0 0 2px; font-size: 17px; color: #1d4ed8; }
.head .computes { color: var(--muted); margin: 0 0 12px; font-size: 13px; }
.head .computes code { color: var(--ink); }
.head-body { display:flex; gap: 22px; align-items:flex-start; flex-wrap: wrap; }
.figure-caption { font-size: 12px; color: var(--muted); margin-top: 4px; }
.tick { font-size: 11px; fill: #334155; font-family: "DejaVu Sans Mono", Menlo, monospace; }
.axis-title { font-size: 11px; fill: var(--muted); }
table { border-collapse: collapse; font-size: 13px; }
th, td { padding: 3px 8px; text-align: center; border: 1px solid var(--line); }
th { background: var(--wash); font-weight: 600; }
table.selector td.on { background: #1d4ed8; color: #fff; }
table.selector td.off { background: #fff; color: #cbd5e1; }
table.selector caption, table.facts caption { caption-side: top; text-align: left; font-size: 12px;
  color: var(--muted); padding-bottom: 4px; }
table.facts td, table.facts th { text-align: left; }
.counterexamples td.bad { background: #fee2e2; color: #991b1b; font-weight: 700; }
.muted { color: var(--muted); }
.bar { height: 10px; background: #94a3b8; border-radius: 3px; display:inline-block; }
.bottom { display:grid; grid-template-columns: 1fr 1fr 1fr; gap: 20px; }
.bottom > .panel { margin-bottom: 0; }
"""

# Hovering a program line lights its components (graph nodes, head cards) and the reverse.
_SCRIPT = """
(function () {
  const byComponent = (id) => document.querySelectorAll('[data-component="' + id + '"]');
  function light(components, on) {
    components.forEach((id) => {
      byComponent(id).forEach((el) => el.classList.toggle('lit', on));
      document.querySelectorAll('.line').forEach((line) => {
        if ((line.dataset.components || '').split(' ').includes(id)) line.classList.toggle('lit', on);
      });
    });
  }
  document.querySelectorAll('.line[data-components]').forEach((line) => {
    const ids = line.dataset.components.split(' ').filter(Boolean);
    line.addEventListener('mouseenter', () => light(ids, true));
    line.addEventListener('mouseleave', () => light(ids, false));
  });
  document.querySelectorAll('svg.circuit .node').forEach((node) => {
    const id = node.dataset.component;
    node.addEventListener('mouseenter', () => light([id], true));
    node.addEventListener('mouseleave', () => light([id], false));
    node.addEventListener('click', () => {
      const card = document.getElementById('head-' + node.id.slice(5));
      if (card) card.scrollIntoView({behavior: 'smooth'});
    });
  });
})();
"""


def render_html(report: Report) -> str:
    sections = [
        f"<h1>{escape(report.title)}</h1>",
        f'<p class="subtitle">{escape(_model_line(report.model))}</p>',
        _verdict(report.verification),
        _counterexamples(report.verification),
        _certificate(report.verification),
        '<div class="grid">',
        _program(report),
        _circuit(report),
        "</div>",
        _heads(report.heads),
        '<div class="bottom">',
        _model_table(report.model),
        _timings(report.timings),
        _score(report),
        "</div>",
    ]
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(report.title)}: distillation report</title>"
        f"<style>{_CSS}</style></head><body><main>"
        + "\n".join(s for s in sections if s)
        + f"</main><script>{_SCRIPT}</script></body></html>\n"
    )


def _model_line(model) -> str:
    parts = []
    if "n_layers" in model:
        parts.append(f"{model['n_layers']} layers")
    if "n_heads" in model:
        parts.append(f"{model['n_heads']} heads per layer")
    if "vocab" in model:
        parts.append("vocab {" + ", ".join(map(str, model["vocab"])) + "}")
    if "max_seq_len" in model:
        parts.append(f"inputs up to length {model['max_seq_len']}")
    if "output_kind" in model:
        parts.append(f"{model['output_kind']} output")
    return " · ".join(parts) or "distillation report"


def _level_style(level: str) -> tuple[str, str]:
    return _LEVELS.get(level.split("(")[0].strip(), ("#475569", "Verification level as reported."))


def _verdict(verification: Verification | None) -> str:
    if verification is None:
        return (
            '<section class="panel verdict" style="--level:#475569"><span class="badge">'
            "not verified</span><p>No verification was run.</p></section>"
        )
    colour, meaning = _level_style(verification.level)
    # "exhaustive(5); readable = table program proved(5)": the level in the badge, the rest beside it.
    level, _, more = verification.level.partition(";")
    facts = [("meaning", escape(meaning))]
    if more.strip():
        facts.append(("also", escape(more.strip())))
    facts.append(("domain", escape(verification.domain)))
    facts.append(
        ("precondition", escape(verification.precondition or "none (every input of the domain)"))
    )
    if verification.inputs_checked:
        facts.append(("inputs checked", f"{verification.inputs_checked:,}"))
    if verification.agreement is not None:
        facts.append(("agreement", f"{100 * verification.agreement:.2f}% of inputs"))
    if verification.seed is not None:
        facts.append(("seed", str(verification.seed)))
    rows = "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in facts)
    return (
        f'<section class="panel verdict" id="verification" style="--level:{colour}">'
        f'<span class="badge">{escape(level.strip())}</span><dl>{rows}</dl></section>'
    )


def _certificate(verification: Verification | None) -> str:
    if verification is None or not verification.certificate:
        return ""
    rows = "".join(
        f"<tr><td>{_chip(line.component)}</td><td>{line.checked:,}</td>"
        f"<td>{line.margin:.4g}</td><td>{line.bound:.3g}</td>"
        f"<td>{escape(line.failed or line.note)}</td></tr>"
        for line in verification.certificate
    )
    return (
        '<section class="panel" id="certificate"><h2>Certificate</h2>'
        f"<p>{escape(verification.certificate_status)}</p>"
        "<table><tr><th>component</th><th>combinations checked</th><th>worst margin</th>"
        f"<th>bound</th><th>failed condition (or note)</th></tr>{rows}</table></section>"
    )


def _chip(component: str) -> str:
    colour = KIND_COLOURS.get(component_kind(component), KIND_COLOURS["embed"])
    target = f"#head-{dom_id(component)}" if component_kind(component) == "head" else "#circuit"
    return (
        f'<a class="chip" href="{target}" data-component="{escape(component)}" '
        f'style="color:{colour};border-color:{colour}">{escape(component)}</a>'
    )


def _program(report: Report) -> str:
    by_line = {item.line: item for item in report.lines}
    rows = []
    for number, text in enumerate(report.program_source.rstrip("\n").split("\n"), start=1):
        item = by_line.get(number)
        components = item.components if item else ()
        attributes = f' id="line-{number}"'
        if item:
            attributes += (
                f' data-name="{escape(item.name)}" data-components="{escape(" ".join(components))}"'
            )
        chips = "".join(_chip(c) for c in components)
        rows.append(
            f'<div class="line"{attributes}><span class="lineno">{number}</span>'
            f'<span class="code">{escape(text) or " "}</span><span class="chips">{chips}</span></div>'
        )
    return (
        '<section class="panel" id="program"><h2>Program · hover a line to see what computes it</h2>'
        f'<div class="program">{"".join(rows)}</div>'
        f'<div class="legend-row">{legend_svg()}</div></section>'
    )


def _circuit(report: Report) -> str:
    return (
        '<section class="panel" id="circuit"><h2>Circuit · components and what they read</h2>'
        f"{circuit_svg(report.circuit)}</section>"
    )


def _heads(heads: tuple[HeadEvidence, ...]) -> str:
    if not heads:
        return ""
    cards = "".join(_head_card(head) for head in heads)
    scale = '<span class="scale">attention 0 <span class="scale-bar"></span> 1</span>'
    return (
        f'<section id="heads"><h2 class="with-scale">Attention heads {scale}</h2>'
        f'<div class="heads">{cards}</div></section>'
    )


def _head_card(head: HeadEvidence) -> str:
    computes = (
        f'<p class="computes">computes <code>{escape(head.line)}</code></p>'
        if head.line
        else '<p class="computes">not mapped to a program line</p>'
    )
    example = " ".join(map(str, head.example_input))
    heatmap = (
        f'<figure style="margin:0">{heatmap_svg(head.component, head.example_input, head.attention)}'
        f'<figcaption class="figure-caption">attention on <code>{escape(example)}</code></figcaption>'
        "</figure>"
    )
    return (
        f'<article class="panel head" id="head-{dom_id(head.component)}" '
        f'data-component="{escape(head.component)}"><h3>{escape(head.component)}</h3>{computes}'
        f'<div class="head-body">{heatmap}{_selector_table(head)}</div></article>'
    )


def _selector_table(head: HeadEvidence) -> str:
    table = head.selector
    if table is None:
        return '<p class="muted">No selector table was inferred for this head.</p>'
    header = "".join(f"<th>{escape(repr(k))}</th>" for k in table.key_values)
    rows = []
    for query, selected in zip(table.query_values, table.selected):
        cells = "".join(
            f'<td class="{"on" if s else "off"}">{"●" if s else "·"}</td>' for s in selected
        )
        rows.append(f"<tr><th>{escape(repr(query))}</th>{cells}</tr>")
    predicate = f" · predicate <code>{escape(table.predicate)}</code>" if table.predicate else ""
    return (
        f'<div><table class="selector"><caption>selector: query (rows) selects key (columns)'
        f"{predicate}</caption><tr><th>q \\ k</th>{header}</tr>{''.join(rows)}</table>"
        f'<p class="figure-caption">selects nothing → default <code>{escape(repr(table.default))}'
        "</code></p></div>"
    )


def _counterexamples(verification: Verification | None) -> str:
    if verification is None or not verification.counterexamples:
        return ""
    rows = []
    for example in verification.counterexamples:
        rows.append(
            f"<tr><th>input</th>{_cells(example.input, example.position)}</tr>"
            f"<tr><th>model</th>{_cells(example.expected, example.position)}</tr>"
            f"<tr><th>program</th>{_cells(example.got, example.position)}</tr>"
            f'<tr><td colspan="99" class="muted">first difference at position {example.position}</td></tr>'
        )
    return (
        '<section class="panel" id="counterexamples"><h2>Counterexamples</h2>'
        f'<table class="counterexamples">{"".join(rows)}</table></section>'
    )


def _cells(values, marked: int) -> str:
    """Table cells of a sequence, the one at position `marked` highlighted."""
    return "".join(
        f'<td class="{"bad" if i == marked else ""}">{escape(repr(v))}</td>'
        for i, v in enumerate(values)
    )


def _model_table(model) -> str:
    rows = "".join(
        f"<tr><th>{escape(str(key))}</th><td>{escape(_short_value(value))}</td></tr>"
        for key, value in model.items()
    )
    return f'<section class="panel"><h2>Model</h2><table class="facts">{rows}</table></section>'


def _short_value(value) -> str:
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return str(value)


def _timings(timings) -> str:
    if not timings:
        return ""
    longest = max(seconds for _, seconds in timings) or 1.0
    rows = "".join(
        f'<tr><th>{escape(stage)}</th><td style="text-align:right">{seconds:.2f} s</td>'
        f'<td style="width:130px;text-align:left"><span class="bar" '
        f'style="width:{max(2, round(120 * seconds / longest))}px"></span></td></tr>'
        for stage, seconds in timings
    )
    return f'<section class="panel"><h2>Time per stage</h2><table class="facts">{rows}</table></section>'


def _score(report: Report) -> str:
    score = report.score
    if score is None:
        return ""
    facts = []
    if score.reference:
        facts.append(("compared with", escape(score.reference)))
    if score.equivalent is not None:
        facts.append(("equivalent (Z3)", "yes" if score.equivalent else "no"))
    if score.size_ratio is not None:
        facts.append(("size ratio", f"{score.size_ratio:.2f}×"))
    if score.recall is not None:
        facts.append(("comparison recall", f"{100 * score.recall:.0f}%"))
    rows = "".join(f"<tr><th>{name}</th><td>{value}</td></tr>" for name, value in facts)
    return f'<section class="panel"><h2>Score</h2><table class="facts">{rows}</table></section>'
