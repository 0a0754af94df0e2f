"""What `distill run` leaves in OUTDIR: the whole folder written beside it and swapped in at once.

program.rasp  the readable program            program.py   the same, standard library only
module.py     a torch nn.Module replacement   report.json  the evidence, for machines
report.html   the evidence, for people        config.json  the resolved run configuration
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING

import dsl
from distill.config import DistillConfig
from distill.emit.torch_module import torch_module_source
from distill.files import check_output_dir, replaced_directory, write_text_atomically
from distill.models.family import Model
from distill.report import schema as rpt
from distill.report.build import build_report

if TYPE_CHECKING:  # the compiled pipeline (and Z3) only where its result is written
    from distill.pipeline import DistillResult

OUTPUT_NAMES = (
    "program.rasp",
    "program.py",
    "module.py",
    "report.json",
    "report.html",
    "config.json",
)


def write_outputs(
    result: DistillResult,
    model: Model,
    outdir: Path,
    *,
    title: str,
    config: DistillConfig,
    score: rpt.Score | None = None,
) -> dict[str, Path]:
    """Write every artifact of `result` into `outdir`; return their paths.

    The artifacts are written into a new folder beside `outdir`, which then replaces it at
    once: a failure leaves `outdir` as it was. `outdir` must be absent or hold only files
    named in OUTPUT_NAMES (see `distill.files.check_output_dir`).
    """
    outdir = check_output_dir(outdir, OUTPUT_NAMES)
    with replaced_directory(outdir) as folder:
        _write_all(result, model, folder, title=title, config=config, score=score)
    return {name: outdir / name for name in OUTPUT_NAMES}


def _write_all(result, model, outdir: Path, *, title, config, score) -> None:
    spec = model.config
    domain_note = (
        f"Verified {result.check} against the model it replaces on {result.check.domain}; "
        f"claimed where {result.precondition}. On the whole domain: {result.whole_domain}."
    )
    paths = {name: outdir / name for name in OUTPUT_NAMES}
    write_text_atomically(paths["program.rasp"], dsl.to_source(result.program))
    write_text_atomically(paths["program.py"], dsl.to_python(result.program))
    write_text_atomically(
        paths["module.py"],
        torch_module_source(
            result.program,
            vocab=spec.vocab,
            bos=spec.bos,
            max_seq_len=spec.max_seq_len,
            output_kind=spec.output_kind,
            output_values=spec.output_values,
            domain_note=domain_note,
        ),
    )
    report = build_report(result, model, title, score)
    rpt.write_json(report, paths["report.json"])
    rpt.write_html(report, paths["report.html"])
    write_text_atomically(
        paths["config.json"], json.dumps(dataclasses.asdict(config), indent=2) + "\n"
    )
