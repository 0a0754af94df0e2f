"""Distill small transformers into proved RASP programs.

Public names are imported on first use, so `import distill` stays cheap (torch
and the tracr importer load only when asked for).
"""

import importlib

_LAZY = {
    "Model": "distill.models.family",
    "ModelConfig": "distill.models.family",
    "from_tracr": "distill.models.tracr_import",
    "load_model": "distill.models.file_format",
    "distill": "distill.pipeline",
    "DistillConfig": "distill.config",
    "DistillResult": "distill.pipeline",
    "run_tracr": "distill.groundtruth.scoring",
    "DistillError": "distill.errors",
}

__all__ = [*_LAZY]


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'distill' has no attribute {name!r}")
