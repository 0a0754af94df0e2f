"""The report of a trained model's distillation: JSON for machines, HTML for people.

What it holds: the program with the components credited per line and what each line
says in words where it is a named pattern; each head's attention on an example input
beside the selector it became; agreement per length (a plot); the interventions; the
tables left and why; counterexamples; timings.
"""

from __future__ import annotations

import json
import re
from html import escape

import dsl
from distill.report.svg import attention_colour, heatmap_svg
from distill.trained.interventions import (
    FLAG_BELOW,
    component_order,
    credited_components,
    needed_definitions,
)
from dsl import ast
from dsl.interpreter import evaluate_arrays

_COUNT = re.compile(
    r"selector_width\(select\(indices, indices, (?P<sel><=|true|<)\) & "
    r"select\(tokens, tokens, (?:lambda k, q: k == (?P<value>.+)|(?P<same>==)|(?P<cmp>[<>]))\)\)$"
)
_SCORE = re.compile(r"map\(lambda x: x \* \d+ \+ (?P<rank>\d+), (?P<variable>\w+)\)$")
_RANKED_LABEL = re.compile(r"(\S+) if s % \d+ == (\d+)")
_LEFT = re.compile(r"sequence_map\(lambda [ri], n: [ri] - n, (?P<before>\w+), (?P<count>\w+)\)$")
_LAST_RUN = re.compile(r"map\(lambda r: (?P<label>.+) if r < 0 else (?P<rest>.+), (?P<left>\w+)\)$")
_RUN = re.compile(
    r"sequence_map\(lambda r, p: (?P<label>.+) if r < 0 else p, (?P<left>\w+), (?P<later>\w+)\)$"
)
_SMALLER_OR_LARGER = {"<": "smaller than", ">": "larger than"}  # the key's token, the query's
_SCOPE = {"<=": "so far (itself included)", "<": "before it", "true": "in the input"}
_BALANCE = re.compile(
    r"sequence_map\(lambda x, y: 1 if x - y < (?P<bound>-?\d+) else 0, (?P<x>\w+), (?P<y>\w+)\)$"
)
_SIDE_COUNT = re.compile(
    r"selector_width\(select\(indices, indices, (?P<sel><=|true|<)\) & "
    r"select\((?P<var>\w+), (?P=var), lambda k, q: k == (?P<side>[01])\)\)$"
)
_COUNTED = re.compile(r"counts (.+) tokens (so far \(itself included\)|before it|in the input)$")
_BALANCE_WORDS = re.compile(
    r"(the count of .+ minus the count of .+?) (?:so far|before|in the).* is below (-?\d+)$"
)
_EVER = re.compile(r"map\(lambda x: 1 if x > 0 else 0, (?P<count>\w+)\)$")
_POSITION_FORM = re.compile(
    r"sequence_map\(lambda (?P<x>\w+), (?P<y>\w+): (?P<body>.+), (?P<a>\w+), (?P<b>\w+)\)$"
)
_POSITION_SUM = re.compile(r"(?P<a>\w+) (?P<op>[-+]) (?P<b>\w+)$")
_LANDMARK = re.compile(
    r"aggregate\(select\(indices, indices, <=\) & select\(tokens, tokens, lambda k, q: "
    r"k == (?P<token>.+)\), indices, default=-1\)$"
)
_WINDOW = re.compile(
    r"selector_width\(select\(indices, indices, (?P<sel><=|true|<)\)"
    r"(?P<tests>(?: & select\((\w+), \3, lambda k, q: k == [^()]+\))+)\)$"
)
_WINDOW_TEST = re.compile(r"select\((\w+), \1, lambda k, q: k == ([^()]+)\)")
_TOKENS_BACK = {"the previous token": 1, "the token two before": 2}
_EQUAL = re.compile(r"sequence_map\(lambda x, y: 1 if x == y else 0, (?P<x>\w+), (?P<y>\w+)\)$")
_POINTED_TOKEN = re.compile(r"aggregate\(select\(indices, (?P<at>\w+), ==\), tokens\b")


def in_words(program: ast.Program) -> dict[str, str]:
    """definition -> what it says in words, for the named patterns synthesis found."""
    words = {}
    selectors: dict[str, str] = {}  # a named selector's text, put back where it is used
    scores: dict[str, list] = {}  # an argmax read-out's (rank, variable) per score
    totals: dict[str, list] = {"indices": []}  # a sorting read-out's counts per remainder
    runs: dict[str, tuple] = {}  # its (label, counts) per run from here on, and the rest
    texts: dict[str, str] = {}  # each definition's right-hand side
    for definition in program.definitions:
        source = dsl.to_source(ast.Program((definition,), ast.Name(definition.name)))
        text = source.splitlines()[0].split(" = ", 1)[1]
        for name, selector in selectors.items():
            text = re.sub(rf"\b{re.escape(name)}\b", selector, text)
        texts[definition.name] = text
        if isinstance(definition.node, ast.Selector):
            selectors[definition.name] = text
            continue
        match = _COUNT.match(text)
        if (window := _window_words(text, words)) is not None:
            words[definition.name] = window
        elif match:
            scope = _SCOPE[match["sel"]]
            what = (
                "tokens equal to this one"
                if match["same"]
                else f"tokens {_SMALLER_OR_LARGER[match['cmp']]} this one"
                if match["cmp"]
                else f"{match['value']} tokens"
            )
            words[definition.name] = f"counts {what} {scope}"
        elif (balance := _balance_words(text, words)) is not None:
            words[definition.name] = balance
        elif (equal := _equality_words(text, words)) is not None:
            words[definition.name] = equal
        elif text.startswith("selector_width(select(indices, indices, true))"):
            words[definition.name] = "the length of the input"
        elif landmark := _LANDMARK.match(text):
            words[definition.name] = f"the index of {landmark['token']}, from there on"
        elif text.startswith("aggregate(select(indices, indices, lambda k, q: k == q - 1)"):
            words[definition.name] = "the previous token"
        elif text.startswith("aggregate(select(indices, indices, lambda k, q: k == q - 2)"):
            words[definition.name] = "the token two before"
        elif (pointed := _POINTED_TOKEN.match(text)) and pointed["at"] in texts:
            where = _position_words(texts[pointed["at"]], words)
            if where:
                words[definition.name] = f"the token at position {where}"
        score = _SCORE.match(text)
        if score and "_score_" in definition.name:
            scores.setdefault(definition.name.rsplit("_score_", 1)[0], []).append(
                (int(score["rank"]), score["variable"])
            )
        _sorting_words(definition.name, text, totals, runs, words)
        largest = scores.get(definition.name)
        if largest and text.startswith("map(lambda s: "):
            labels = dict((int(rank), label) for label, rank in _RANKED_LABEL.findall(text))
            labels.setdefault(0, text.rsplit(" else ", 1)[1].split(",")[0])
            ranked = sorted(largest, reverse=True)
            words[definition.name] = (
                "the one whose count is largest: "
                + ", ".join(f"{labels.get(r, '?')} ({v})" for r, v in ranked)
                + "; a tie goes to the one listed first"
            )
    return words


def _window_words(text: str, words: dict) -> str | None:
    """A count of the positions whose last few tokens are one combination ("000")."""
    match = _WINDOW.match(text)
    if not match:
        return None
    tests = _WINDOW_TEST.findall(match["tests"])
    if len(tests) < 2:
        return None  # one token: `_COUNT`'s words
    back = [0 if name == "tokens" else _TOKENS_BACK.get(words.get(name)) for name, _ in tests]
    if None in back or sorted(back) != list(range(len(tests))):
        return None  # not the token and the ones just before it
    oldest_first = [value for _, value in sorted(zip(back, (v for _, v in tests)), reverse=True)]
    return (
        f"counts positions {_SCOPE[match['sel']]} where the last {len(tests)} tokens are "
        + " ".join(oldest_first)
    )


def _position_words(text: str, words: dict) -> str | None:
    """A position written as a closed form of the index and the length ("n - i - 1") or a
    separator's index ("i - k")."""
    letters = {"indices": ("i", "this position")}
    for name, said in words.items():
        if said == "the length of the input":
            letters[name] = ("n", "the length")
        elif said.startswith("the index of ") and said.endswith(", from there on"):
            letters[name] = ("k", said.removesuffix(", from there on"))
    form, summed = _POSITION_FORM.match(text), _POSITION_SUM.match(text)
    if form:
        swap = {form["x"]: form["a"], form["y"]: form["b"]}
        body = form["body"]
    elif summed:
        swap, body = {}, f"{summed['a']} {summed['op']} {summed['b']}"
    else:
        return None
    used = [swap.get(w, w) for w in re.findall(r"\b[a-z_]\w*\b", body)]
    if not all(name in letters for name in used):
        return None
    body = re.sub(r"\b\w+\b", lambda m: letters.get(swap.get(m[0], m[0]), (m[0],))[0], body)
    legend = ", ".join(f"{letter}: {what}" for n, (letter, what) in letters.items() if n in used)
    return f"{body} ({legend})"


def _equality_words(text: str, words: dict) -> str | None:
    """Words for whether two variables agree at a position (the token and the one before
    it), and for how many positions they agree at; None for anything else."""
    equal, side = _EQUAL.match(text), _SIDE_COUNT.match(text)
    if equal:
        said = [words.get(v, "the token" if v == "tokens" else v) for v in (equal["x"], equal["y"])]
        return f"whether {said[0]} is {said[1]}"
    if side and words.get(side["var"], "").startswith("whether "):
        what = words[side["var"]].removeprefix("whether ")
        if side["side"] == "0":
            what = what.replace(" is ", " is not ", 1)
        return f"counts positions {_SCOPE[side['sel']]} where {what}"
    return None


def _balance_words(text: str, words: dict) -> str | None:
    """Words for where the balance of two counts stands (dyck's depth), for how many
    positions are on one side of it, and for whether any is; None for anything else."""
    balance, side, ever = _BALANCE.match(text), _SIDE_COUNT.match(text), _EVER.match(text)
    if balance:
        counted = [_COUNTED.match(words.get(balance[v], "")) for v in ("x", "y")]
        if not all(counted):
            return None
        (x, scope), (y, _) = (c.groups() for c in counted)
        return f"the count of {x} minus the count of {y} {scope} is below {balance['bound']}"
    stands = side and _BALANCE_WORDS.match(words.get(side["var"], ""))
    if stands:
        difference, bound = stands.groups()
        where = "below" if side["side"] == "1" else "at least"
        return f"counts positions {_SCOPE[side['sel']]} where {difference} is {where} {bound}"
    if ever and words.get(ever["count"], "").startswith("counts positions "):
        return "whether there is any position " + words[ever["count"]].removeprefix(
            "counts positions "
        )
    return None


def _sorting_words(name: str, text: str, totals: dict, runs: dict, words: dict) -> None:
    """Follow a sorting read-out (distill.trained.sorting): the position less each running
    total, then the runs from the last back; the first run's definition gets the words."""
    left, last, run = _LEFT.match(text), _LAST_RUN.match(text), _RUN.match(text)
    if left and left["before"] in totals:
        totals[name] = [*totals[left["before"]], left["count"]]
    elif last and last["left"] in totals:
        runs[name] = ([(last["label"], totals[last["left"]])], last["rest"])
    elif run and run["left"] in totals and run["later"] in runs:
        later, rest = runs[run["later"]]
        runs[name] = ([(run["label"], totals[run["left"]]), *later], rest)
        if len(totals[run["left"]]) == 1:  # the first run: the whole read-out
            words[name] = (
                "sorts by counting: "
                + ", then ".join(
                    f"{label} while the position is below {' + '.join(counts)}"
                    for label, counts in runs[name][0]
                )
                + f", then {rest}"
            )


def tables_left(program: ast.Program) -> list[dict]:
    """Definitions still holding a table: no closed form within synthesis's search budget."""
    left = []
    for definition in program.definitions:
        node = definition.node
        fn = getattr(node, "fn", None) or getattr(node, "predicate", None)
        if isinstance(fn, ast.Table):
            left.append(
                {
                    "definition": definition.name,
                    "entries": len(fn.entries),
                    "why": "no closed form within synthesis's search budget (synth.budget)",
                }
            )
    return left


def build_report(result, model, title: str, example: list | None = None) -> dict:
    """The report as a JSON-ready dict."""
    program = result.program
    source = dsl.to_source(program)
    needed = set(needed_definitions(program))
    example = example or _example(result)
    return {
        "title": title,
        "model": {
            "layers": model.config.n_layers,
            "heads": model.config.n_heads,
            "d_model": model.config.d_model,
            "layer_norm": model.config.normalization == "LN",
            "causal": model.config.causal,
        },
        "task": result.domain.task.to_record(),
        "verification": {
            "level": result.verification,
            "verified": result.verified,
            "equal_up_to": result.check.equal_up_to,
            "exhaustive_up_to": result.domain.exhaustive_up_to,
            "agreement": result.check.agreement,
            "lengths": [
                {
                    "length": a.length,
                    "inputs": a.inputs,
                    "agree": a.agree,
                    "exhaustive": a.exhaustive,
                }
                for a in result.check.lengths
            ],
            "counterexamples": [
                {
                    "input": list(c.input),
                    "position": c.position,
                    "model": c.model,
                    "program": c.program,
                }
                for c in result.check.counterexamples
            ],
        },
        "program": source,
        "lines": [
            {"definition": d.name, "components": _components(result, model, d.name)}
            for d in program.definitions
            if d.name in needed
        ],
        "in_words": in_words(program),
        "tables_left": tables_left(program),
        "heads": _heads(result, model, example),
        "interventions": [
            {
                "component": i.component,
                "variables": list(i.variables),
                "same_pairs": i.same_pairs,
                "unchanged": i.unchanged,
                "different_pairs": i.different_pairs,
                "follows": i.follows,
                "undefined": i.undefined,
                "failed_elsewhere": i.failed_elsewhere,
                "flagged": i.flagged,
                "alone_unchanged": i.alone_unchanged,
                "alone_follows": i.alone_follows,
                "alone_failed_elsewhere": i.alone_failed_elsewhere,
                "read_elsewhere": i.read_elsewhere,
            }
            for i in result.interventions
        ],
        "timings": result.timings,
    }


def _components(result, model, name: str) -> list[str]:
    """The components credited with a line; the read-out's table is what the MLPs (if the
    model has any) and the unembedding compute from the variables at the position."""
    if name == "output" or name.startswith("output_both_"):
        mlps = range(model.config.n_layers) if model.config.d_mlp else range(0)
        return [*(f"L{layer}.MLP" for layer in mlps), "unembed"]
    return sorted(credited_components(result.components.get(name)), key=component_order)


def _example(result) -> list:
    """An example input: the longest exhaustively checked length, first in the domain."""
    n = min(result.domain.exhaustive_up_to, 8)
    inputs = (
        result.domain.exhaustive(n, None) if result.domain.task.domain["kind"] == "strings" else []
    )
    return inputs[len(inputs) // 3] if inputs else []


def _heads(result, model, example) -> list[dict]:
    """Each head's reading; with an example input, its attention there beside the selector
    it became (one forward pass, one evaluation of the table program, for every head)."""
    if example:
        ids, mask = model.encode([example])
        _, trace = model.run_with_trace(ids, mask, names=lambda n: n.endswith("hook_pattern"))
        # The table program keeps each head's selector as a definition of its own.
        table_program = ast.Program(result.table_program.definitions, ast.Tokens())
        evaluated = evaluate_arrays(table_program, [example]).definitions
    heads = []
    for finding in result.heads:
        head = {
            "component": finding.component,
            "selector": finding.selector,
            "attention_left_out": finding.outside,
            "worst_row_left_out": finding.worst,
            "attention_on_tokens": finding.real_share,
            "variables": finding.variables,
            "note": finding.note,
        }
        if example:
            layer, number = (int(p[1:]) for p in finding.component.split("."))
            pattern = trace[f"blocks.{layer}.attn.hook_pattern"]
            head["example"] = [str(t) for t in example]
            head["attention"] = pattern[0, number, 1:, 1:].tolist()
            selector = _selector_of(result.table_program, finding.component, result.components)
            if selector is not None:
                head["selected"] = evaluated[selector].matrix[0].tolist()
                head["selector_definition"] = selector
        heads.append(head)
    return heads


def _selector_of(program: ast.Program, component: str, components: dict) -> str | None:
    for d in program.definitions:
        if isinstance(d.node, ast.Selector) and component in credited_components(
            components.get(d.name)
        ):
            return d.name
    return None


def write_json(report: dict, path) -> None:
    from distill.files import write_text_atomically

    write_text_atomically(path, json.dumps(report, indent=2, default=str) + "\n")


def render_html(report: dict) -> str:
    v = report["verification"]
    colour = "#166534" if v["verified"] else "#991b1b"
    parts = [
        f"<h1>{escape(report['title'])}</h1>",
        f'<p class="verdict" style="color:{colour}"><b>{escape(v["level"])}</b>; '
        f"equal to the model on every input up to length {v['equal_up_to']} "
        f"(checked exhaustively up to {v['exhaustive_up_to']})</p>",
        _agreement_plot(v["lengths"]),
        "<h2>Program</h2>",
        f"<pre>{escape(report['program'])}</pre>",
        _lines(report),
        _counterexamples(v["counterexamples"]),
        "<h2>Heads</h2>",
        *(_head_card(h) for h in report["heads"]),
        "<h2>Interventions</h2>",
        _interventions(report["interventions"]),
        _tables(report["tables_left"]),
        "<h2>Timings (s)</h2>",
        "<p>" + ", ".join(f"{escape(k)} {t:.1f}" for k, t in report["timings"].items()) + "</p>",
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(report['title'])}: distillation report</title>"
        "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px}"
        ".flag{color:#991b1b;font-weight:bold}.card{display:flex;gap:24px;margin:12px 0}"
        "pre{background:#f8fafc;padding:8px;overflow-x:auto}</style></head><body>"
        + "\n".join(p for p in parts if p)
        + "</body></html>\n"
    )


def write_html(report: dict, path) -> None:
    from distill.files import write_text_atomically

    write_text_atomically(path, render_html(report))


def _agreement_plot(lengths: list[dict]) -> str:
    """Agreement per length as bars: solid where exhaustive, hatched where sampled."""
    if not lengths:
        return ""
    width, height, bar = 40 * len(lengths) + 60, 160, 28
    parts = [
        f'<svg class="agreement" width="{width}" height="{height}" role="img" '
        'aria-label="agreement per length">'
    ]
    for i, a in enumerate(lengths):
        share = a["agree"] / a["inputs"] if a["inputs"] else 1.0
        h = 110 * share
        x = 50 + 40 * i
        fill = "#1d4ed8" if a["exhaustive"] else "#93c5fd"
        parts.append(
            f'<rect x="{x}" y="{120 - h}" width="{bar}" height="{h}" fill="{fill}">'
            f"<title>length {a['length']}: {a['agree']:,} of {a['inputs']:,} agree"
            f"{'' if a['exhaustive'] else ' (sampled)'}</title></rect>"
            f'<text x="{x + bar / 2}" y="135" text-anchor="middle" font-size="11">{a["length"]}</text>'
        )
    parts.append(
        '<text x="0" y="14" font-size="11">agreement</text>'
        '<text x="0" y="124" font-size="11">0</text>'
        '<text x="50" y="155" font-size="11">length (dark: every input; light: sampled)</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


def _lines(report: dict) -> str:
    words = report["in_words"]
    rows = "".join(
        f"<tr><td>{escape(line['definition'])}</td><td>{escape(', '.join(line['components']))}</td>"
        f"<td>{escape(words.get(line['definition'], ''))}</td></tr>"
        for line in report["lines"]
    )
    return f"<table><tr><th>line</th><th>components</th><th>in words</th></tr>{rows}</table>"


def _counterexamples(items: list[dict]) -> str:
    if not items:
        return ""
    rows = "".join(
        f"<tr><td>{escape(' '.join(map(str, c['input'])))}</td><td>{c['position']}</td>"
        f"<td>{escape(str(c['model']))}</td><td>{escape(str(c['program']))}</td></tr>"
        for c in items
    )
    return (
        "<h2>Counterexamples</h2><table><tr><th>input</th><th>position</th><th>model</th>"
        f"<th>program</th></tr>{rows}</table>"
    )


def _head_card(head: dict) -> str:
    text = (
        f"<div><b>{escape(head['component'])}</b>: selector {escape(head['selector'])}; "
        f"attention on tokens {head['attention_on_tokens']:.2f}, left out {head['attention_left_out']:.3f} "
        f"on average, {head['worst_row_left_out']:.3f} at worst. {escape(head['note'])}</div>"
    )
    if "attention" not in head:
        return f'<div class="card">{text}</div>'
    picture = heatmap_svg(
        head["component"], tuple(head["example"]), tuple(map(tuple, head["attention"]))
    )
    selected = ""
    if "selected" in head:
        cells = "".join(
            "<tr>"
            + "".join(
                f'<td style="background:{attention_colour(1.0 if s else 0.0)}">&nbsp;</td>'
                for s in row
            )
            + "</tr>"
            for row in head["selected"]
        )
        selected = (
            f"<div>{escape(head['selector_definition'])} on the same input"
            f"<table>{cells}</table></div>"
        )
    return f'<div class="card"><div>{text}{picture}</div>{selected}</div>'


def _interventions(items: list[dict]) -> str:
    def figure(value):
        if value is None:
            return "n/a"
        return f'<span class="flag">{value:.3f}</span>' if value < FLAG_BELOW else f"{value:.3f}"

    rows = "".join(
        f"<tr><td>{escape(i['component'])}</td><td>{escape(', '.join(i['variables']))}</td>"
        f"<td>{figure(i['unchanged'])} ({i['same_pairs']})</td>"
        f"<td>{figure(i['follows'])} ({i['different_pairs'] - i['undefined']})</td>"
        f"<td>{i['failed_elsewhere']}</td>"
        f"<td>{figure(i['alone_unchanged'])}</td><td>{figure(i['alone_follows'])}</td>"
        f"<td>{i['alone_failed_elsewhere']}</td></tr>"
        for i in items
    )
    notes = "".join(
        f"<p>{escape(i['component'])}: patched at one position alone, the read-out changes at "
        f"other positions in {i['alone_failed_elsewhere']} pairs where the program says it "
        "does not. Later components read this group's output at other positions, and the "
        "program does not model how.</p>"
        for i in items
        if i["read_elsewhere"] and i["alone_failed_elsewhere"]
    )
    return (
        "<p>A variable is a whole sequence. Each pair sets it to the first input's values with "
        "the second's at one position. <b>Variable set</b>: the group's components take the "
        "second input's output at that position and the first's own output wherever the "
        "program keeps their variables; this is the figure flagged. <b>Patched alone</b>: only "
        "that position is set and every other position is computed by the model, so a later "
        "component that reads the patched one elsewhere shows; the same where the group lies "
        "in one layer.</p>"
        "<table><tr><th rowspan=2>component</th><th rowspan=2>variables</th>"
        "<th colspan=3>variable set</th><th colspan=3>patched alone</th></tr>"
        "<tr><th>same value: read-out unchanged (pairs)</th>"
        "<th>other value: read-out as the program says (pairs)</th>"
        "<th>failing only at other positions</th><th>unchanged</th><th>as the program says</th>"
        "<th>failing only at other positions</th></tr>"
        f"{rows}</table><p>Figures below {FLAG_BELOW} are in red; those with the variable set "
        f"flag the group.</p>{notes}"
    )


def _tables(items: list[dict]) -> str:
    if not items:
        return "<p>No tables left: every map and selector has a closed form or a name.</p>"
    rows = "".join(
        f"<tr><td>{escape(t['definition'])}</td><td>{t['entries']}</td><td>{escape(t['why'])}</td></tr>"
        for t in items
    )
    return f"<h2>Tables left</h2><table><tr><th>definition</th><th>entries</th><th>why</th></tr>{rows}</table>"
