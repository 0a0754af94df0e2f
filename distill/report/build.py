"""From a distillation result to its report: lines, circuit, heads, verification, timings."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np

import dsl
from distill.models.family import Model
from distill.report import schema as rpt
from dsl import ast
from dsl.printer import function

if TYPE_CHECKING:  # the compiled pipeline (and Z3) only where its result is reported
    from distill.pipeline import DistillResult


def build_report(
    result: DistillResult, model: Model, title: str, score: rpt.Score | None = None
) -> rpt.Report:
    source = dsl.to_source(result.program)
    return rpt.Report(
        title=title,
        model=rpt.model_summary(model.config),
        program_source=source,
        lines=_lines(source, result),
        circuit=rpt.Circuit.from_graph(_labelled_graph(result)),
        heads=_heads(result, model),
        verification=_verification(result),
        timings=tuple(result.timings.items()),
        score=score,
    )


def _lines(source: str, result: DistillResult) -> tuple[rpt.LineComponents, ...]:
    lines = []
    for number, text in enumerate(source.splitlines(), start=1):
        match = re.match(r"\s*([A-Za-z_]\w*)\s*=", text)
        if match:
            name = match.group(1)
            components = tuple(c for c in result.components.get(name, "").split(", ") if c)
            lines.append(rpt.LineComponents(name, number, components))
        elif text.strip().startswith("return"):
            lines.append(rpt.LineComponents("return", number, ("output",)))
    return tuple(lines)


def _labelled_graph(result: DistillResult):
    graph = result.circuit.graph.copy()
    by_component = _definition_of_component(result)
    for node in graph.nodes:
        graph.nodes[node]["label"] = by_component.get(node, graph.nodes[node].get("variable", ""))
    if "unembed" in graph:
        graph = _rename(graph, "unembed", "output")
        graph.nodes["output"]["kind"] = "output"
        graph.nodes["output"]["layer"] = None
    graph.nodes["embed"]["layer"] = None
    return graph


def _definition_of_component(result: DistillResult) -> dict[str, str]:
    """Component id -> the program definition it computes."""
    return {c: name for name, cs in result.components.items() for c in cs.split(", ") if c}


def _rename(graph, old: str, new: str):
    import networkx as nx

    return nx.relabel_nodes(graph, {old: new})


def _heads(result: DistillResult, model: Model) -> tuple[rpt.HeadEvidence, ...]:
    spec = model.config
    example = _example_input(spec)
    ids, mask = model.encode([example])
    names = {f"blocks.{layer}.attn.hook_pattern" for layer in range(spec.n_layers)}
    _, trace = model.run_with_trace(ids, mask, names=names)
    by_component = _definition_of_component(result)
    predicates = _select_predicates(result.program)
    heads = []
    for reading in result.circuit.heads:
        layer, head = (int(x) for x in re.match(r"L(\d+)\.H(\d+)", reading.component).groups())
        pattern = trace[f"blocks.{layer}.attn.hook_pattern"][0, head].double().numpy()
        query_values = tuple(reading.query.values)
        key_values = tuple(reading.key.values)
        labels = result.circuit.selector_labels(reading)
        selected = tuple(
            tuple(bool(labels.get((k, q), False)) for k in key_values) for q in query_values
        )
        line = by_component.get(reading.component, "")
        heads.append(
            rpt.HeadEvidence(
                component=reading.component,
                example_input=(spec.bos, *example),
                attention=tuple(
                    tuple(round(float(w), 4) for w in row) for row in np.asarray(pattern)
                ),
                selector=rpt.SelectorTable(
                    query_values=query_values,
                    key_values=key_values,
                    selected=selected,
                    default=reading.default,
                    predicate=predicates.get(
                        f"select_{reading.output.name.removeprefix('head_')}", ""
                    ),
                ),
                line=line,
            )
        )
    return tuple(heads)


def _example_input(spec) -> list:
    """A full-length input that shows the vocab: its values in order, repeated."""
    vocab = list(spec.vocab)
    return [vocab[(i * 2 + 1) % len(vocab)] for i in range(spec.max_seq_len)][::-1]


def _select_predicates(program: ast.Program) -> dict[str, str]:
    found = {}
    for definition in program.definitions:
        if isinstance(definition.node, ast.Select):
            predicate = definition.node.predicate
            if isinstance(predicate, ast.Comparison):
                found[definition.name] = predicate.op
            elif isinstance(predicate, ast.Lambda):
                found[definition.name] = function(predicate)
    return found


def _verification(result: DistillResult) -> rpt.Verification:
    check = result.check
    level = str(check).split(":")[0]
    if result.certified:
        level = f"{result.verification}; checked against the model {level}"
    if result.proof is not None and result.proof.ok:
        level = f"{level}; readable = table program {result.proof} ({result.proof.method})"
    certificate = result.certificate
    lines = ()
    if certificate is not None:
        lines = tuple(
            rpt.CertificateLine(c.component, c.checked, c.margin, c.bound, c.failed, c.note)
            for c in certificate.components
        )
    counterexamples = tuple(
        rpt.Counterexample(
            input=tuple(c.input),
            expected=tuple(c.expected or ()),
            got=tuple(c.got or ()),
            position=int(c.position or 0),
        )
        for c in check.counterexamples
    )
    return rpt.Verification(
        level=level,
        domain=check.domain,
        precondition=result.precondition,
        inputs_checked=check.inputs_covered or 0,
        agreement=1.0 if check.ok else None,
        seed=check.seed if check.level == "sampled" else None,
        counterexamples=counterexamples,
        certificate=lines,
        certificate_status=result.certificate_status,
    )


def score_for_report(run, reference: str) -> rpt.Score:
    """The report's summary of a ground-truth score (distill.groundtruth)."""
    score = run.score
    return rpt.Score(
        reference=reference,
        equivalent=None if score.proof is None else score.proof.ok,
        size_ratio=round(score.size_ratio, 3),
        recall=score.named_recall,
    )
