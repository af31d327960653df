"""The 20-slot portfolio: marks, exits first, then entries into free slots.

Everything here is a pure function of the positions held at the start of a session, that
session's chain and its rankings, so planning a session twice gives the same orders (and the
same ``order_ref``s, which is what makes a rerun send nothing new).

Exit rules, in precedence order (the first that holds is the reason):

1. ``expiry`` — the session is the expiry (or later): settled at intrinsic value from the
   underlying's close (paper trading; a real broker settles it itself);
1b. ``retry`` — a close sent in an earlier session did not fill: it goes out again first,
   as an urgent exit (``core.trading.order_policy``), whatever the marks say now;
2. ``stop_loss`` — P/L at mid ≤ −stop share × max loss (LOW 50 %, MEDIUM 40 %, HIGH 30 %;
   for a debit fly the max loss is the debit);
3. ``take_profit`` — P/L at mid ≥ take share × max profit (LOW 70 %, MEDIUM 60 %, HIGH 50 %);
4. ``vol_stop`` — the centre strike's implied vol rose 30 % or more since entry;
5. ``time_stop`` — fewer than 7 calendar days to expiry remain.

Entries: two tracks, the AI track by the champion model's expected yield and the baseline
track by the rule measure that validated on settled outcomes (the rule's EV by default; see
core.scan.ev_reliability), take turns picking, so neither gets first choice of every ticker; a
ticker is held at most once across both, and a ticker with a position at the start of the
session is not entered again that session, even when its exit is planned: the slot frees,
the ticker does not, until a later session starts with the close filled. See
docs/operations.md.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from butterquant_dagster.core.brokers.base import BUY, SELL, order_ref
from butterquant_dagster.core.options.butterfly import expiry_value
from butterquant_dagster.core.options.money import CONTRACT_MULTIPLIER
from butterquant_dagster.core.scan.ev_reliability import (
    DEFAULT_RULE_MEASURE,
    EV_CALIBRATED,
    baseline_measure,
)
from butterquant_dagster.core.trading.combos import (
    MissingQuote,
    combo_quote,
    legs_of,
    legs_to_json,
    limit_price,
)
from butterquant_dagster.core.trading.exit_rules import exit_shares
from butterquant_dagster.core.trading.rules import PortfolioRules
from butterquant_dagster.core.trading.vocabulary import Intent, Track

EXIT_PRECEDENCE = ("expiry", "retry", "stop_loss", "take_profit", "vol_stop", "time_stop")
# Why the AI track takes nothing: ai_probabilities leaves P(win) empty without such a champion.
NO_AI_CHAMPION = "no P(win) champion that passed its gates"
AI_BY_YIELD = "model expected yield"
AI_BY_PWIN = "P(win): yield model not validated"
FLOOR_REASON = "expected yield below floor"

TARGET_COLUMNS = [
    "session",
    "order_ref",
    "intent",  # an Intent: open | close | settle
    "track",
    "ticker",
    "sector",
    "structure",
    "expiry",
    "lower",
    "center",
    "upper",
    "width",
    "action",
    "quantity",
    "limit_price",
    "mid",
    "natural_low",
    "natural_high",
    "max_profit",
    "max_loss",
    "capital_at_risk",
    "order_max_loss",
    "risk_level",
    "iv_center",
    "reason",
    "position_id",
    "source_rank",
    "ranking_value",
    "ml_success_prob",
    "ml_expected_roi",
    "score",
    "model_version",
    "legs",
]


def mark_positions(positions: pd.DataFrame, chain: pd.DataFrame, session: dt.date) -> pd.DataFrame:
    """``positions`` with this session's marks: mid value, natural bounds, centre vol, P/L.

    A position at or past its expiry is valued at intrinsic from the underlying's close; one
    whose legs the chain lacks keeps ``mark`` NaN and ``marked`` False (no price, no P/L).
    """
    out = positions.copy()
    fields = {k: np.full(len(out), np.nan) for k in ("mark", "low", "high", "iv_center", "spot")}
    settled = np.zeros(len(out), dtype=bool)
    spots = _spots(chain)
    for i, row in enumerate(out.itertuples(index=False)):
        expiry = pd.Timestamp(row.expiry).date()
        spot = spots.get(row.ticker, np.nan)
        fields["spot"][i] = spot
        if session >= expiry and np.isfinite(spot):
            value = float(expiry_value(row.structure, spot, row.center, row.width))
            fields["mark"][i] = fields["low"][i] = fields["high"][i] = value
            settled[i] = True
            continue
        legs = legs_of(row.ticker, row.structure, row.expiry, row.lower, row.center, row.upper)
        try:
            quote = combo_quote(chain, legs)
        except MissingQuote:
            continue
        fields["mark"][i], fields["low"][i], fields["high"][i] = (
            quote["mid"],
            quote["low"],
            quote["high"],
        )
        fields["iv_center"][i] = quote["iv_center"]
    for name, values in fields.items():
        out[name] = values
    out["at_expiry"] = settled
    out["marked"] = np.isfinite(out["mark"])
    out["dte"] = [(pd.Timestamp(e).date() - session).days for e in out["expiry"]]
    out["pnl_per_share"] = out["mark"] - out["entry_price"]
    out["unrealized_pnl"] = out["pnl_per_share"] * out["quantity"] * CONTRACT_MULTIPLIER
    return out


def _spots(chain: pd.DataFrame) -> dict:
    if not len(chain):
        return {}
    return chain.groupby("symbol")["underlying_price"].first().astype(float).to_dict()


def exit_reasons(marked: pd.DataFrame, rules: PortfolioRules) -> pd.Series:
    """The exit reason of each marked position ("" to hold), by EXIT_PRECEDENCE."""
    stop_share, take_share = exit_shares(marked["risk_level"], rules.exit_shares)
    stop = pd.Series(stop_share, index=marked.index)
    take = pd.Series(take_share, index=marked.index)
    pnl = marked["pnl_per_share"]
    vol_rise = marked["iv_center"] / marked["iv_center_entry"] - 1.0
    eps = 1e-9  # a threshold hit to the cent counts, whatever the float rounding
    retry = (
        marked["unfilled_exit"].fillna("").astype(str) != ""
        if "unfilled_exit" in marked
        else pd.Series(False, index=marked.index)
    )
    conditions = {
        "expiry": marked["at_expiry"],
        "retry": retry,
        "stop_loss": marked["marked"] & (pnl <= -stop * marked["max_loss"] + eps),
        "take_profit": marked["marked"] & (pnl >= take * marked["max_profit"] - eps),
        "vol_stop": marked["marked"] & (vol_rise >= rules.vol_stop_rise - eps),
        "time_stop": marked["dte"] < rules.time_stop_dte,
    }
    reasons = pd.Series("", index=marked.index, dtype=object)
    for name in reversed(EXIT_PRECEDENCE):
        reasons = reasons.where(~conditions[name].fillna(False).astype(bool), name)
    return reasons


def plan_exits(marked: pd.DataFrame, session: dt.date, rules: PortfolioRules) -> pd.DataFrame:
    """One close (or settle) target per position an exit rule fires for."""
    reasons = exit_reasons(marked, rules)
    rows = []
    for row, reason in zip(marked.itertuples(index=False), reasons, strict=True):
        if not reason:
            continue
        legs = legs_of(row.ticker, row.structure, row.expiry, row.lower, row.center, row.upper)
        settle = reason == "expiry"
        intent = Intent.SETTLE if settle else Intent.CLOSE
        if not settle and not row.marked:
            continue  # time stop with no quote: nothing to price the close at
        limit = (
            row.mark
            if settle
            else limit_price(SELL, row.mark, row.low, row.high, rules.limit_concession)
        )
        rows.append(
            {
                "session": session,
                "order_ref": order_ref(
                    session,
                    row.ticker,
                    row.structure,
                    legs,
                    row.track,
                    intent,
                ),
                "intent": intent,
                "track": row.track,
                "ticker": row.ticker,
                "sector": getattr(row, "sector", ""),
                **_butterfly(row),
                "action": SELL,
                "quantity": int(row.quantity),
                "limit_price": float(limit),
                "mid": row.mark,
                "natural_low": row.low,
                "natural_high": row.high,
                "max_profit": row.max_profit,
                "max_loss": row.max_loss,
                "capital_at_risk": row.max_loss * row.quantity * CONTRACT_MULTIPLIER,
                "order_max_loss": 0.0,  # closing reduces risk
                "risk_level": row.risk_level,
                "iv_center": row.iv_center,
                "reason": _exit_text(reason, row),
                "position_id": row.position_id,
                "model_version": row.model_version,
                "ml_success_prob": row.ml_success_prob,
                "legs": legs_to_json(legs),
            }
        )
    return _frame(rows)


def _butterfly(row) -> dict:
    """The butterfly itself, as every target names it."""
    fields = ("structure", "expiry", "lower", "center", "upper", "width")
    return {name: getattr(row, name) for name in fields}


def _exit_text(reason: str, row) -> str:
    detail = {
        "expiry": f"expired; settled at intrinsic {row.mark:.2f} (spot {row.spot:.2f})",
        "stop_loss": f"P/L {row.pnl_per_share:+.2f}/share against max loss {row.max_loss:.2f}",
        "take_profit": f"P/L {row.pnl_per_share:+.2f}/share, max profit {row.max_profit:.2f}",
        "vol_stop": f"centre IV {row.iv_center:.1%} from {row.iv_center_entry:.1%} at entry",
        "time_stop": f"{row.dte} days to expiry",
        "retry": f"{getattr(row, 'unfilled_exit', '')}; sent again at a marketable limit",
    }[reason]
    return f"{reason}: {detail}"


def _frame(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=TARGET_COLUMNS)
    return frame


def rule_ev(rows: pd.DataFrame) -> pd.Series:
    """The rule's expected yield per $1,000 the floor judges: calibrated on settled
    outcomes where the plan had a curve (core.scan.ev_reliability.EvCurve), else raw."""
    if EV_CALIBRATED in rows and rows[EV_CALIBRATED].notna().any():
        return rows[EV_CALIBRATED]
    return rows["ev_per_1000"]


def eligible_entries(
    ranked: pd.DataFrame,
    track: str,
    rules: PortfolioRules,
    baseline_by: str = DEFAULT_RULE_MEASURE,
) -> tuple[pd.DataFrame, pd.Series]:
    """A track's candidates in its order of preference, and why the rest were passed over.

    The AI track ranks by the model's expected yield (only rows the champion scored for this
    session); the baseline by ``baseline_by``, the rule measure that validated (the rule
    score stays a displayed column: alone it does not rank realized yield). The expected-yield
    floor, liquidity and sizing floors apply to both.
    """
    rows = ranked.copy()
    if "ticker" not in rows:
        rows["ticker"] = rows["symbol"]  # scan candidates name the underlying "symbol"
    if track == Track.AI:
        # P(win) is present only from a champion that passed its gates (ai_probabilities);
        # the model's expected yield ranks only when its own gates passed, otherwise the
        # track ranks by P(win) and its yield floor judges the rule's ev_per_1000.
        scored = rows["ml_success_prob"].notna()
        validated = rows["ml_expected_roi"].notna()
        if "yield_model_validated" in rows:
            validated &= rows["yield_model_validated"].astype("boolean").fillna(False)
        by_yield = bool(scored.any() and validated[scored].all())
        rows["track_value"] = rows["ml_expected_roi"] * 1000.0 if by_yield else rule_ev(rows)
        rows["ai_ranked_by"] = AI_BY_YIELD if by_yield else AI_BY_PWIN
        floors = {
            NO_AI_CHAMPION: ~scored,
            "success probability below floor": rows["ml_success_prob"] < rules.min_success_prob,
        }
        order = ["track_value", "score"] if by_yield else ["ml_success_prob", "track_value"]
    else:
        # The floor judges the rule's own expected yield; the order is the rule measure that
        # validated on settled outcomes (core.scan.ev_reliability), the EV when none did.
        if baseline_by not in rows:
            raise ValueError(f"baseline track ranks by {baseline_by!r}, which the candidates lack")
        rows["track_value"] = rule_ev(rows)
        floors = {}
        order = list(dict.fromkeys([baseline_by, "track_value", "score"]))
    contracts = np.floor(rules.allocation / rows["capital_at_risk"].clip(lower=1e-9))
    floors |= {
        # Written as "not at or above" so an unknown (NaN) expected yield never passes.
        FLOOR_REASON: ~(rows["track_value"] >= rules.min_expected_yield),
        "spread too wide": rows["spread_pct"] > rules.max_spread_pct,
        "open interest too low": rows["min_open_interest"] < rules.min_open_interest,
        "one contract risks more than the allocation": contracts < 1,
    }
    reason = pd.Series("", index=rows.index, dtype=object)
    for name, mask in reversed(floors.items()):
        reason = reason.where(~mask.fillna(True).astype(bool), name)
    rows["contracts"] = contracts
    chosen = rows.loc[reason == ""].sort_values(order, ascending=False, kind="stable")
    return chosen, reason.loc[reason != ""]


def plan_entries(
    session: dt.date,
    candidates: dict[str, pd.DataFrame],
    held: pd.DataFrame,
    sectors: dict[str, str],
    chain: pd.DataFrame,
    rules: PortfolioRules,
    closing: frozenset[str] = frozenset(),
) -> pd.DataFrame:
    """Fill each track's free slots, the tracks taking turns; one position per ticker.

    ``closing`` are tickers whose position is being closed this session: their slot is
    free, the ticker is not (its close may not fill, and two positions in one underlying
    is what the rule forbids)."""
    held_tickers = (set(held["ticker"]) if len(held) else set()) | set(closing)
    sector_count = pd.Series([sectors.get(t, "") for t in held_tickers]).value_counts().to_dict()
    free = {
        track: rules.slots(track) - int((held["track"] == track).sum())
        if len(held)
        else rules.slots(track)
        for track in (Track.AI, Track.BASELINE)
    }
    queues = {track: list(candidates[track].itertuples(index=False)) for track in free}
    position = dict.fromkeys(free, 0)
    rows = []
    while any(free[t] > 0 and position[t] < len(queues[t]) for t in free):
        for track in (Track.AI, Track.BASELINE):
            while free[track] > 0 and position[track] < len(queues[track]):
                row = queues[track][position[track]]
                position[track] += 1
                sector = sectors.get(row.ticker, "")
                if row.ticker in held_tickers:
                    continue
                if sector_count.get(sector, 0) >= rules.max_sector_positions:
                    continue
                target = _entry(session, row, track, sector, chain, rules)
                if target is None:
                    continue
                rows.append(target)
                held_tickers.add(row.ticker)
                sector_count[sector] = sector_count.get(sector, 0) + 1
                free[track] -= 1
                break
    return _frame(rows)


def _entry(session, row, track, sector, chain, rules) -> dict | None:
    legs = legs_of(row.ticker, row.structure, row.expiry, row.lower, row.center, row.upper)
    try:
        quote = combo_quote(chain, legs)
    except MissingQuote:
        return None
    quantity = int(row.contracts)
    limit = limit_price(BUY, quote["mid"], quote["low"], quote["high"], rules.limit_concession)
    return {
        "session": session,
        "order_ref": order_ref(session, row.ticker, row.structure, legs, track, Intent.OPEN),
        "intent": Intent.OPEN,
        "track": track,
        "ticker": row.ticker,
        "sector": sector,
        **_butterfly(row),
        "action": BUY,
        "quantity": quantity,
        "limit_price": limit,
        "mid": quote["mid"],
        "natural_low": quote["low"],
        "natural_high": quote["high"],
        "max_profit": row.max_profit,
        "max_loss": row.max_loss,
        "capital_at_risk": row.capital_at_risk * quantity,
        "order_max_loss": row.max_loss * quantity * CONTRACT_MULTIPLIER,
        "risk_level": row.risk_level,
        "iv_center": quote["iv_center"],
        "reason": (
            f"{track} track: "
            + (
                f"model expected yield {row.track_value:+.0f} per $1,000, P(win) "
                f"{row.ml_success_prob:.2f}"
                if track == Track.AI and row.ai_ranked_by == AI_BY_YIELD
                else f"P(win) {row.ml_success_prob:.2f} (yield model not validated), rule "
                f"expected {row.track_value:+.0f} per $1,000"
                if track == Track.AI
                else f"rule score {row.score:.1f}, expected {row.track_value:+.0f} per $1,000"
            )
        ),
        "position_id": "",
        "source_rank": getattr(row, "rank", np.nan),
        "ranking_value": row.track_value,
        "ml_success_prob": getattr(row, "ml_success_prob", np.nan),
        "ml_expected_roi": getattr(row, "ml_expected_roi", np.nan),
        "score": row.score,
        "model_version": getattr(row, "model_version", "none") if track == Track.AI else "rule",
        "legs": legs_to_json(legs),
    }


def plan_session(
    session: dt.date,
    held: pd.DataFrame,
    chain: pd.DataFrame,
    rankings: pd.DataFrame,
    candidates: pd.DataFrame,
    sectors: dict[str, str],
    rules: PortfolioRules,
    unfilled_exits: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Every intended order of a session: exits of what is held, then entries.

    ``held`` are the positions open at the start of the session; ``unfilled_exits`` the
    closes of earlier sessions that did not fill (``Ledger.unfilled_exits``), retried first.
    Returns the targets, the marked positions and counts of the candidates each track
    passed over, by reason.
    """
    marked = mark_positions(_with_unfilled_exits(held, unfilled_exits), chain, session)
    exits = plan_exits(marked, session, rules)
    still_held = marked.loc[~marked["position_id"].isin(exits["position_id"])]
    per_track, passed = {}, {}
    baseline_by = baseline_measure(rankings)
    for track, source in ((Track.AI, rankings), (Track.BASELINE, candidates)):
        chosen, reasons = eligible_entries(source, track, rules, baseline_by=baseline_by)
        per_track[track] = chosen
        passed[track] = reasons.value_counts().to_dict()
    closing = frozenset(marked["ticker"]) if len(marked) else frozenset()
    entries = plan_entries(session, per_track, still_held, sectors, chain, rules, closing)
    parts = [x for x in (exits, entries) if len(x)]
    targets = pd.concat(parts, ignore_index=True) if parts else _frame([])
    return targets, marked, passed


def _with_unfilled_exits(held: pd.DataFrame, unfilled: pd.DataFrame | None) -> pd.DataFrame:
    """``held`` with ``unfilled_exit``: why an earlier close of the position is still owed
    ("" when none)."""
    out = held.copy()
    notes = {}
    if unfilled is not None and len(unfilled):
        notes = {
            row.position_id: (
                f"the {row.rule} close of {pd.Timestamp(row.session).date()} "
                f"ended {row.status} unfilled"
            )
            for row in unfilled.itertuples(index=False)
        }
    out["unfilled_exit"] = [notes.get(p, "") for p in out["position_id"]]
    return out


def entry_notes(
    rankings: pd.DataFrame, candidates: pd.DataFrame, rules: PortfolioRules
) -> list[str]:
    """One line for each track with slots that had nothing to enter, and why: an empty
    plan must say it was empty on purpose (plan_session's sources and floors)."""
    notes = []
    baseline_by = baseline_measure(rankings)
    for track, source in ((Track.AI, rankings), (Track.BASELINE, candidates)):
        if rules.slots(track) <= 0:
            continue
        if not len(source):
            notes.append(f"{track} track: nothing qualified: no candidates to rank.")
            continue
        chosen, reasons = eligible_entries(source, track, rules, baseline_by=baseline_by)
        if not len(chosen):
            notes.append(nothing_qualified(track, reasons.value_counts().to_dict(), rules))
    return notes


def nothing_qualified(track: str, passed: dict, rules: PortfolioRules) -> str:
    """The sentence a track with no eligible candidate reports, from its pass-over counts."""
    if passed and set(passed) == {NO_AI_CHAMPION}:
        return f"{track} track: off: {NO_AI_CHAMPION}; nothing is traded on this track."
    below = int(passed.get(FLOOR_REASON, 0))
    text = (
        f"{track} track: nothing qualified: {below} candidates below the expected-yield "
        f"floor of {rules.min_expected_yield:g} per $1,000"
    )
    others = [f"{int(n)} {reason}" for reason, n in passed.items() if reason != FLOOR_REASON]
    if others:
        text += " (and " + ", ".join(others) + ")"
    return text + "; nothing is traded on this track."
