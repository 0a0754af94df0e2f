"""Distill small transformers into proved RASP programs.

Public names are imported on first use, so `import distill` stays cheap (torch
and the tracr importer load only when asked for).
"""

import importlib

_LAZY = {
    "Model": "distill.model",
    "ModelConfig": "distill.model",
    "from_tracr": "distill.tracr_import",
    "load_model": "distill.model_file",
    "distill": "distill.pipeline",
    "DistillConfig": "distill.pipeline",
    "DistillResult": "distill.pipeline",
    "run_tracr": "distill.groundtruth",
    "DistillError": "distill.errors",
}

__all__ = [*_LAZY]


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'distill' has no attribute {name!r}")
