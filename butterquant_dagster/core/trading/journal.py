"""The journal's headline figures: what a trader asks first about a track record.

The trade figures (win rate, yield, P/L per track) are the closed trades' - realized P/L.
The account's value, its realized, unrealized and total P/L and its drawdown come from
``core.trading.account`` (pass ``account``), the same figures ``positions`` and the reports
show.
"""

from __future__ import annotations

import pandas as pd

from butterquant_dagster.core.monitoring.metrics import max_drawdown, win_rate, yield_per_1000
from butterquant_dagster.core.trading.account import AccountView

__all__ = ["max_drawdown", "summary"]


def summary(
    journal: pd.DataFrame,
    equity: pd.DataFrame | None = None,
    *,
    account: AccountView | None = None,
) -> dict:
    """Trades, win rate, P/L, yield per $1,000 at risk and drawdown, overall and per track.

    ``total_pnl`` (and ``realized_pnl``, the same figure by its name) is the closed trades'
    P/L after fees. With ``account`` the account's figures are added under ``account`` and
    ``equity`` and ``max_drawdown`` are the account's (from its opening capital); without
    it they come from the ``equity`` rows given, if any (older callers).

    Figures that need trades are ``None`` without any, never a made-up zero.
    """
    out: dict = {"trades": len(journal)}
    if len(journal):
        out |= {
            "win_rate": win_rate(journal["won"]),
            "total_pnl": float(journal["pnl"].sum()),
            "realized_pnl": float(journal["pnl"].sum()),
            "yield_per_1000": yield_per_1000(journal["pnl"], journal["capital_at_risk"]),
            "avg_days_held": float(journal["days_held"].mean()),
            "ghost_trades": int(journal["ghost"].sum()),
        }
        out["by_track"] = {
            track: {
                "trades": len(rows),
                "win_rate": win_rate(rows["won"]),
                "total_pnl": float(rows["pnl"].sum()),
                "yield_per_1000": yield_per_1000(rows["pnl"], rows["capital_at_risk"]),
            }
            for track, rows in journal.groupby("track")
        }
        out["by_exit_reason"] = journal["exit_reason"].value_counts().to_dict()
    else:
        out |= {"win_rate": None, "total_pnl": None, "realized_pnl": None, "yield_per_1000": None}
    if account is not None:
        out["account"] = account.to_dict()
        out["equity"] = account.account_value
        out["max_drawdown"] = account.max_drawdown
    elif equity is not None and len(equity):
        out["equity"] = float(equity["equity"].iloc[-1])
        out["max_drawdown"] = max_drawdown(equity["equity"])
    return out
