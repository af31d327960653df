"""Where prices become money: the contract multiplier and the broker's fees.

Prices everywhere else are dollars per share; only code that turns them into cash (P/L,
capital at risk, fees) multiplies by ``CONTRACT_MULTIPLIER``, and only here.
"""

from __future__ import annotations

import numpy as np

CONTRACT_MULTIPLIER = 100  # shares per US equity option contract
# Interactive Brokers tiered schedule for US options (the conservative top tier).
FEE_PER_CONTRACT = 0.65
MIN_FEE_PER_ORDER = 1.00


def order_fee(contracts) -> np.ndarray:
    """Commission of one order of ``contracts`` option contracts (all legs of a combo)."""
    contracts = np.asarray(contracts, dtype=float)
    return np.where(contracts > 0, np.maximum(MIN_FEE_PER_ORDER, FEE_PER_CONTRACT * contracts), 0.0)


def per_share(dollars_per_contract) -> np.ndarray:
    return np.asarray(dollars_per_contract, dtype=float) / CONTRACT_MULTIPLIER


def per_contract(dollars_per_share) -> np.ndarray:
    return np.asarray(dollars_per_share, dtype=float) * CONTRACT_MULTIPLIER
