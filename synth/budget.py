"""How much searching synthesis may do before it keeps a table as it is."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Budget:
    """Search limits of `synth.readable`; every search stops at them and keeps the table."""

    max_size_unary: int = 6
    """Largest lambda body (AST nodes) tried for one-input functions (`c if x == d else e` is 6)."""
    max_size_binary: int = 5
    """Largest lambda body tried for two-input functions and select predicates (`q == k + 1` is 5)."""
    max_candidates: int = 40_000
    """Behaviourally distinct expressions tried per search."""
    max_label_forms: int = 64
    """Closed forms tried as the meaning of one class of free labels."""

    def max_size(self, arity: int) -> int:
        return self.max_size_unary if arity == 1 else self.max_size_binary


DEFAULT_BUDGET = Budget()
