"""Where a held butterfly is cut or taken, by the risk level the scan gave it at entry.

A riskier fly is cut sooner and taken earlier: its payoff decays faster and its tails are
fatter, so waiting for the full target costs more often than it earns. The table is part of
the trading rules (``PortfolioRules.exit_shares`` starts from it); the scan reads it only to
show each candidate's stop-loss and take-profit before it is entered.
"""

from __future__ import annotations

import numpy as np

# risk level -> (stop-loss share of max loss, take-profit share of max profit)
EXIT_RULES: dict[str, tuple[float, float]] = {
    "LOW": (0.50, 0.70),
    "MEDIUM": (0.40, 0.60),
    "HIGH": (0.30, 0.50),
}


def exit_shares(
    risk_levels, table: dict[str, tuple[float, float]] = EXIT_RULES
) -> tuple[np.ndarray, np.ndarray]:
    """The stop-loss and take-profit shares of each risk level. An unknown level raises:
    a position with no exit rule must not be held on a guessed one."""
    levels = np.asarray(risk_levels, dtype=object)
    unknown = sorted({str(level) for level in levels} - set(table))
    if unknown:
        raise ValueError(f"no exit rule for risk level(s) {unknown}; known levels: {sorted(table)}")
    stop = np.array([table[level][0] for level in levels], dtype=float)
    take = np.array([table[level][1] for level in levels], dtype=float)
    return stop, take
