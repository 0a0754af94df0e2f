"""Suite-wide settings: the suite runs as `pytest -n 2` on 2 cores."""

import os
import sys
from pathlib import Path

import torch

# Two workers on two cores: more threads per worker only contend.
torch.set_num_threads(1)

# Compiled tracr models are shared between workers and runs through jax's disk cache.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(Path(__file__).parent.parent / ".jax-cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

sys.path.insert(0, str(Path(__file__).parent))
