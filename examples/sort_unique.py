"""tracr's lib.make_sort_unique as a Python SOp, for `distill compile examples/sort_unique.py:program`.

Sorts the input tokens, which must be distinct.
"""

from tracr.compiler import lib
from tracr.rasp import rasp


def program() -> rasp.SOp:
    return lib.make_sort_unique(rasp.tokens, rasp.tokens)
