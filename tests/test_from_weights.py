"""Reading a selector width's ties with BOS off its scores (hand-computed cases)."""

from __future__ import annotations

import numpy as np

from distill.circuit.from_weights import _width_tie

TIE = 1e-5


def test_selected_keys_a_little_behind_bos_still_tie_with_it():
    # Scores behind BOS: selected keys 0 to 4e-5 (an upstream MLP's error), the others 12.2.
    behind = np.array([[0.0, 4e-5, 12.2], [3e-5, 12.2, 12.2]])
    tie = _width_tie(behind, TIE)
    assert 4e-5 < tie < 12.2
    assert ((behind <= tie) == np.array([[1, 1, 0], [1, 0, 0]], dtype=bool)).all()


def test_without_two_clean_clusters_the_fixed_tie_stays():
    # Three levels: which gap separates selected from not is not clear from the scores.
    assert _width_tie(np.array([[0.0, 5.0, 12.0]]), TIE) == TIE
    # Every key ties with BOS: nothing to split.
    assert _width_tie(np.zeros((2, 3)), TIE) == TIE


def test_keys_that_all_lose_to_bos_are_not_selected():
    behind = np.array([[12.2, 12.2000001], [12.2, 12.2]])
    assert not (behind <= _width_tie(behind, TIE)).any()
