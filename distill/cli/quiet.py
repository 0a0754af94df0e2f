"""Keep libraries' log lines (absl's, jax's, torch's) and Python warnings off the terminal.

tracr logs through absl on import and while building programs ("Creating a
SequenceMap with both inputs being the same SOp is discouraged..."), jax logs
its platform choice, XLA's C++ side writes its own lines. None of it is for the
user of this command line, which reports what matters itself. Set
DISTILL_LIBRARY_LOGS=1 to see it all again when debugging.
"""

from __future__ import annotations

import logging
import os
import warnings

SHOW_LOGS = "DISTILL_LIBRARY_LOGS"


def silence_library_logs() -> None:
    if os.environ.get(SHOW_LOGS):
        return
    # Before jax or XLA load: their C++ logging reads these at start-up.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    # Every Python logger at once, including handlers that libraries add later (absl adds
    # its own to the root logger when it is imported); this program logs nothing itself.
    logging.disable(logging.CRITICAL)
    warnings.simplefilter("ignore")
