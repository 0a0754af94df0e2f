"""Inline SVG pictures for the HTML report: the circuit graph and attention heatmaps.

Drawn by hand (no plotting library, nothing fetched) so the page stays one
self-contained file. Colours carry meaning and are shared with the page's
legend through `KIND_COLOURS`.
"""

from __future__ import annotations

from html import escape

from distill.report.schema import Circuit, CircuitNode

# One colour per kind of component; the page's legend and chips use the same ones.
KIND_COLOURS = {
    "embed": "#64748b",
    "head": "#2563eb",
    "mlp": "#ea580c",
    "output": "#16a34a",
}
KIND_NAMES = {
    "embed": "embedding (tokens, indices)",
    "head": "attention head (select + aggregate)",
    "mlp": "MLP (map, sequence_map)",
    "output": "output",
}

_NODE_WIDTH = 104
_NODE_HEIGHT = 40
_ROW_GAP = 64
_COLUMN_GAP = 124
_LABEL_WIDTH = 112
_MARGIN = 14
_ARC_BASE = 18
_ARC_STEP = 16


def _row(node: CircuitNode, last_row: int) -> int:
    # Top to bottom in computation order: input | L0 attn | L0 MLP | L1 attn | ... | output.
    if node.kind == "embed":
        return 0
    if node.kind == "output":
        return last_row
    layer = node.layer or 0
    return 1 + 2 * layer + (1 if node.kind == "mlp" else 0)


def dom_id(component: str) -> str:
    """An id fit for HTML and CSS selectors: "L0.H1" -> "L0-H1", "L1.MLP[2]" -> "L1-MLP-2"."""
    return "".join(c if c.isalnum() else "-" for c in component).strip("-")


def circuit_svg(circuit: Circuit) -> str:
    """The circuit as a layered top-to-bottom graph; each node carries data-component."""
    if not circuit.nodes:
        return (
            '<svg class="circuit" role="img" aria-label="empty circuit" width="0" height="0"></svg>'
        )
    layers = [n.layer for n in circuit.nodes if n.kind in ("head", "mlp") and n.layer is not None]
    last_row = 1 + 2 * (max(layers) + 1) if layers else 1
    rows: dict[int, list[CircuitNode]] = {}
    for node in circuit.nodes:
        rows.setdefault(_row(node, last_row), []).append(node)
    used = sorted(rows)
    # Empty rows (a layer with no MLP in the circuit) are squeezed out.
    y_of_row = {row: _MARGIN + i * _ROW_GAP for i, row in enumerate(used)}
    widest = max(len(nodes) for nodes in rows.values())
    # Room on the right for the widest arc (an edge from the first row to the last).
    arc_room = _ARC_BASE + _ARC_STEP * len(used)
    width = _LABEL_WIDTH + (widest - 1) * _COLUMN_GAP + _NODE_WIDTH + arc_room
    height = 2 * _MARGIN + (len(used) - 1) * _ROW_GAP + _NODE_HEIGHT
    position = {}
    for row, nodes in rows.items():
        left = _LABEL_WIDTH + (widest - len(nodes)) * _COLUMN_GAP / 2
        for column, node in enumerate(sorted(nodes, key=lambda n: n.id)):
            position[node.id] = (left + column * _COLUMN_GAP, y_of_row[row])

    parts = [
        (
            '<svg class="circuit" role="img" aria-label="circuit graph" '
            f'xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
            f'style="max-width:{width}px">'
        ),
        (
            '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
            'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
            'fill="#94a3b8"/></marker></defs>'
        ),
    ]
    for row in used:
        y = y_of_row[row] + _NODE_HEIGHT / 2 + 4
        parts.append(
            f'<line x1="{_MARGIN}" x2="{width - _MARGIN}" y1="{y_of_row[row] + _NODE_HEIGHT / 2}" '
            f'y2="{y_of_row[row] + _NODE_HEIGHT / 2}" stroke="#f1f5f9" stroke-width="1"/>'
            f'<text class="row-header" x="{_MARGIN}" y="{y}">{_row_header(row, last_row)}</text>'
        )
    for source, target in circuit.edges:
        if source not in position or target not in position:
            continue
        parts.append(
            f'<path class="edge" data-source="{escape(source)}" data-target="{escape(target)}" '
            f'd="{_edge_path(position[source], position[target])}" fill="none" stroke="#94a3b8" '
            'stroke-width="1.6" marker-end="url(#arrow)"/>'
        )
    for node in circuit.nodes:
        x, y = position[node.id]
        colour = KIND_COLOURS.get(node.kind, KIND_COLOURS["embed"])
        title = escape(f"{node.id}: {node.label}" if node.label else node.id)
        label = escape(_shorten(node.label, 14))
        parts.append(
            f'<g class="node node-{escape(node.kind)}" data-component="{escape(node.id)}" '
            f'id="node-{dom_id(node.id)}"><title>{title}</title>'
            f'<rect x="{x}" y="{y}" width="{_NODE_WIDTH}" height="{_NODE_HEIGHT}" rx="8" '
            f'fill="#ffffff" stroke="{colour}" stroke-width="2"/>'
            f'<rect x="{x}" y="{y}" width="{_NODE_WIDTH}" height="{_NODE_HEIGHT}" rx="8" '
            f'fill="{colour}" fill-opacity="0.12"/>'
            f'<text x="{x + _NODE_WIDTH / 2}" y="{y + (17 if label else 25)}" text-anchor="middle" '
            f'class="node-id" fill="{colour}">{escape(node.id)}</text>'
            f'<text x="{x + _NODE_WIDTH / 2}" y="{y + 32}" text-anchor="middle" '
            f'class="node-label">{label}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _edge_path(source: tuple[float, float], target: tuple[float, float]) -> str:
    (x1, y1), (x2, y2) = source, target
    rows_apart = round((y2 - y1) / _ROW_GAP)
    if rows_apart == 1:  # next row: straight down, bottom to top
        start, end = (x1 + _NODE_WIDTH / 2, y1 + _NODE_HEIGHT), (x2 + _NODE_WIDTH / 2, y2)
        bend = (y2 - y1 - _NODE_HEIGHT) / 2
        return (
            f"M{start[0]},{start[1]} C{start[0]},{start[1] + bend} "
            f"{end[0]},{end[1] - bend} {end[0]},{end[1]}"
        )
    # Skipping rows (the residual stream carries it past a layer) or within a row: an arc out to
    # the right, wider the farther it reaches, so it never hides behind the nodes in between.
    reach = _ARC_BASE + _ARC_STEP * abs(rows_apart)
    start, end = (
        (x1 + _NODE_WIDTH, y1 + _NODE_HEIGHT / 2),
        (x2 + _NODE_WIDTH, y2 + _NODE_HEIGHT / 2),
    )
    return (
        f"M{start[0]},{start[1]} C{start[0] + reach},{start[1]} "
        f"{end[0] + reach},{end[1]} {end[0]},{end[1]}"
    )


def _row_header(row: int, last_row: int) -> str:
    if row == 0:
        return "input"
    if row == last_row:
        return "output"
    layer, is_mlp = divmod(row - 1, 2)
    return f"layer {layer} {'MLP' if is_mlp else 'attn'}"


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


_CELL = 26


def heatmap_svg(component: str, tokens: tuple, attention: tuple[tuple[float, ...], ...]) -> str:
    """The attention pattern [query, key] as a grid of blue cells labelled by the tokens."""
    labels = [escape(_shorten(str(token), 5)) for token in tokens]
    rows, columns = len(attention), len(attention[0]) if attention else 0
    left, top = 62, 58
    width, height = left + columns * _CELL + 8, top + rows * _CELL + 8
    parts = [
        (
            f'<svg class="heatmap" data-component="{escape(component)}" role="img" '
            f'aria-label="attention pattern of {escape(component)}" '
            f'xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
            f'width="{width}" height="{height}">'
        ),
        f'<text class="axis-title" x="{left + columns * _CELL / 2}" y="12" text-anchor="middle">key</text>',
        (
            f'<text class="axis-title" x="12" y="{top + rows * _CELL / 2}" text-anchor="middle" '
            f'transform="rotate(-90 12 {top + rows * _CELL / 2})">query</text>'
        ),
    ]
    for k in range(columns):
        x = left + k * _CELL + _CELL / 2
        label = labels[k] if k < len(labels) else str(k)
        parts.append(
            f'<text class="tick" x="{x}" y="{top - 8}" text-anchor="start" '
            f'transform="rotate(-50 {x} {top - 8})">{label}</text>'
        )
    for q, row in enumerate(attention):
        y = top + q * _CELL
        label = labels[q] if q < len(labels) else str(q)
        parts.append(
            f'<text class="tick" x="{left - 6}" y="{y + _CELL / 2 + 4}" text-anchor="end">{label}</text>'
        )
        for k, weight in enumerate(row):
            parts.append(
                f'<rect x="{left + k * _CELL}" y="{y}" width="{_CELL - 1}" height="{_CELL - 1}" '
                f'fill="{attention_colour(weight)}"><title>query {q} ({label}) → key {k}: '
                f"{weight:.2f}</title></rect>"
            )
    parts.append("</svg>")
    return "".join(parts)


def attention_colour(weight: float) -> str:
    """White (0) to deep blue (1): the head colour, so a heatmap reads as 'this head attends here'."""
    weight = min(1.0, max(0.0, float(weight)))
    low, high = (248, 250, 252), (29, 78, 216)
    red, green, blue = (round(a + (b - a) * weight) for a, b in zip(low, high))
    return f"#{red:02x}{green:02x}{blue:02x}"


def legend_svg() -> str:
    """Swatches for the component kinds, as drawn in the circuit graph."""
    items = list(KIND_COLOURS.items())
    width = 250
    height = 22 * len(items)
    parts = [
        (
            '<svg class="legend" role="img" aria-label="legend" xmlns="http://www.w3.org/2000/svg" '
            f'viewBox="0 0 {width} {height}" width="{width}" height="{height}">'
        )
    ]
    for i, (kind, colour) in enumerate(items):
        y = 4 + 22 * i
        parts.append(
            f'<rect x="2" y="{y}" width="22" height="14" rx="4" fill="{colour}" fill-opacity="0.12" '
            f'stroke="{colour}" stroke-width="2"/><text x="32" y="{y + 12}" class="legend-text">'
            f"{escape(KIND_NAMES[kind])}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)
