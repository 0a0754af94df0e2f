"""What `distill run` writes for a trained model (the same files as for a compiled one).

program.rasp, program.py, module.py (a torch replacement with the model's interface),
report.json, report.html, config.json; written into a new folder that then replaces
OUTDIR at once. An approximate program (the model disagrees with every program from its
variables somewhere) says so in each file that states a domain.
"""

from __future__ import annotations

import json
from pathlib import Path

import dsl
from distill.emit.artifacts import OUTPUT_NAMES
from distill.emit.torch_module import torch_module_source
from distill.files import check_output_dir, replaced_directory, write_text_atomically
from distill.trained import report as trained_report
from distill.trained.program import labels_in


def domain_note(result) -> str:
    check = result.check
    beyond = ", ".join(
        f"length {a.length}: {a.agree:,} of {a.inputs:,} sampled inputs" for a in check.sampled
    )
    if result.verified:
        note = f"Equal to the model on every input up to length {check.equal_up_to} ({result.verification})."
    else:
        note = (
            f"APPROXIMATE, not verified: agrees with the model on {check.agreement:.2%} of the "
            f"inputs up to length {result.domain.exhaustive_up_to} ({result.verification})."
        )
    return note + (f" Beyond: {beyond}." if beyond else "")


def write_trained_outputs(result, model, outdir: Path, *, title: str, config: dict) -> dict:
    outdir = check_output_dir(outdir, OUTPUT_NAMES)
    with replaced_directory(outdir) as folder:
        _write_all(result, model, folder, title=title, config=config)
    return {name: outdir / name for name in OUTPUT_NAMES}


def _write_all(result, model, folder: Path, *, title: str, config: dict) -> None:
    spec = model.config
    note = domain_note(result)
    paths = {name: folder / name for name in OUTPUT_NAMES}
    header = f"# {note}\n"
    write_text_atomically(paths["program.rasp"], header + dsl.to_source(result.program))
    write_text_atomically(paths["program.py"], dsl.to_python(result.program))
    multilabel = result.domain.task.readout["kind"] == "multilabel"
    label_sets = None
    if multilabel:
        info = dsl.infer(result.program, list(spec.vocab), result.domain.longest)
        outputs = info.output.value_set or ()
        label_sets = {v: labels_in(v, spec.output_values) for v in outputs if isinstance(v, str)}
    write_text_atomically(
        paths["module.py"],
        torch_module_source(
            result.program,
            vocab=spec.vocab,
            bos=spec.bos,
            max_seq_len=result.domain.longest,  # the task's lengths: what the program is typed for
            output_kind=spec.output_kind,
            output_values=spec.output_values,
            domain_note=note,
            label_sets=label_sets,
        ),
    )
    report = trained_report.build_report(result, model, title)
    trained_report.write_json(report, paths["report.json"])
    trained_report.write_html(report, paths["report.html"])
    write_text_atomically(paths["config.json"], json.dumps(config, indent=2) + "\n")
