"""What every column of the lake means: one description per column name.

The market tables (daily_bars, option_chains, market_truth, universe) carry their columns'
descriptions in ``core.market.schemas``; this module describes the columns of every other
lake table, so that the Dagster UI's column schemas (``dagster/column_schema``) and anyone
reading a table see one meaning per name. A name that appears in a market table too reuses
the market schema's text (imported, never copied).

``GLOSSARY[name]`` is a name's meaning in every table that has it. A name that genuinely
means different things in different tables has no single entry; its meaning in a table is
``OVERRIDES[(table, name)]``, which also refines a glossary entry for one table where a
trader would otherwise misread it (a total where elsewhere it is per combo, a feature
clipped where the candidate's column is not). ``describe(table, column)`` reads both and
raises :class:`UndescribedColumn` (a ``KeyError``) naming the table and the column when
there is no description: every column gets one.

Units, once: prices are dollars per share of one combo (one butterfly: 4 contracts of 100
shares), negative for a credit (the iron fly); "per combo" dollars are x100; "per $1,000"
is dollars per $1,000 of capital at risk; a fraction is 0..1 unless said; vols are
annualised fractions (0.25 = 25 %); days are calendar days, sessions are NYSE sessions.
Expected-fill basis: ``core.options.costs.COST_BASIS`` (mid + 0.25 x (natural - mid), IB fees).
"""

from __future__ import annotations

from butterquant_dagster.core.market.schemas import (
    DAILY_BARS,
    MARKET_TRUTH,
    OPTION_CHAINS,
    UNIVERSE,
    TableSchema,
)
from butterquant_dagster.core.monitoring.health import STATUSES
from butterquant_dagster.core.trading.portfolio import EXIT_PRECEDENCE
from butterquant_dagster.core.trading.vocabulary import (
    Intent,
    OrderStatus,
    Origin,
    Structure,
    Track,
    choices,
)

MARKET_SCHEMAS: dict[str, TableSchema] = {
    schema.name: schema for schema in (DAILY_BARS, OPTION_CHAINS, MARKET_TRUTH, UNIVERSE)
}
# Every lake table that is not a market table (the assets stored by the lake IO manager).
TABLES = (
    "ai_probabilities",
    "backtest",
    "butterfly_candidates",
    "candidate_features",
    "candidate_outcomes",
    "daily_report",
    "drift_report",
    "fills",
    "iv_surface",
    "market_regime",
    "monthly_report",
    "orders",
    "performance_report",
    "positions",
    "probability_model",
    "probability_model_champion",
    "regime_model",
    "scan_rankings",
    "scan_skips",
    "signal_ensemble",
    "system_health",
    "target_orders",
    "trade_journal",
    "trading_decisions",
    "training_set",
    "weekly_report",
)
# The tables of the probability model's features (core/ml/features.py, one pipeline).
FEATURE_TABLES = ("candidate_features", "training_set")
# Tables whose rows are one scanned candidate of its entry session.
CANDIDATE_TABLES = (
    "butterfly_candidates",
    "scan_rankings",
    "candidate_features",
    "ai_probabilities",
    "candidate_outcomes",
    "training_set",
)
REPORT_TABLES = ("daily_report", "weekly_report", "monthly_report")


def _market(schema: TableSchema, name: str) -> str:
    return schema.column(name).description


_SESSION = _market(MARKET_TRUTH, "session")  # "NYSE session"
_TICKER = _market(UNIVERSE, "symbol")  # "ticker, e.g. AAPL or BRK.B"
_VERDICTS = "STRONG_BUY | BUY | NEUTRAL | AVOID"

GLOSSARY: dict[str, str] = {
    # ------------------------------------------------------------------ keys and names
    "session": f"{_SESSION} the row belongs to (its partition)",
    "symbol": f"underlying {_TICKER}",
    "ticker": f"underlying {_TICKER}",
    "sector": _market(UNIVERSE, "sector"),
    "expiry": f"{_market(OPTION_CHAINS, 'expiry')} (all legs of the butterfly share it)",
    "dte": _market(OPTION_CHAINS, "dte"),
    "structure": f"the combo: {choices(Structure)} (unknown: legs placed elsewhere)",
    "strategy": "display name of the structure, e.g. Long Call Butterfly, Iron Butterfly",
    "lower": "lower wing strike, dollars",
    "center": "centre (body) strike, dollars",
    "upper": "upper wing strike, dollars",
    "width": "wing width, centre - lower = upper - centre, dollars per share",
    "width_steps": "wing width in listed strike steps of the expiry (1..3)",
    "is_credit": "true for a credit structure (iron fly: paid to open), false for a debit fly",
    "is_credit_strategy": "same as is_credit (the original scanner's column name)",
    "legs": "JSON list of the combo's legs: expiry, strike, right, action (BUY/SELL), ratio",
    "date": "same as session: the scanned session (the original scanner's column name)",
    # ------------------------------------------------------------------ pricing (scan)
    "spot": "underlying close at the session's chain snapshot, dollars",
    "rate": _market(OPTION_CHAINS, "rate"),
    "dividend_yield": _market(OPTION_CHAINS, "dividend_yield"),
    "debit_mid": "net debit at the legs' mids, dollars per share, before fees; negative = credit",
    "debit_natural": "net debit buying at asks, selling at bids (worst case), $/share, no fees",
    "debit_fill": "net debit the order is expected to fill at (mid + 0.25 to natural), $/share",
    "cost": "$/share paid at the expected fill, entry fee included; negative = net credit",
    "max_profit": "most the combo can make at expiry, $/share at expected fill, after entry fee",
    "max_loss": "most the combo can lose at expiry, $/share at expected fill, after entry fee",
    "breakeven_low": "lower expiry price where P/L is 0 after entry fee, dollars",
    "breakeven_high": "upper expiry price where P/L is 0 after entry fee, dollars",
    "profit_zone_width": "breakeven_high - breakeven_low, dollars",
    "reward_risk": "max_profit / max_loss (both after entry fee at the expected fill)",
    "capital_at_risk": "max loss of one combo in dollars (max_loss x 100), entry fee included",
    "iv_center": "implied vol of the centre strike, annualised fraction (0.25 = 25 %)",
    "iv_atm": "ATM implied vol of the expiry (mean of call and put nearest spot), annualised",
    "expected_move": "one-sigma move to expiry, spot x iv_atm x sqrt(dte/365), dollars",
    "prob_profit_rn": "risk-neutral P(expiry between breakevens), lognormal at iv_center, 0..1",
    "net_delta": "combo delta per share (sum of leg quantity x leg delta)",
    "net_gamma": "combo gamma per share per dollar of the underlying",
    "net_vega": "combo vega per share per volatility point (negative: short vega)",
    "net_theta": "combo theta per share per calendar day",
    "spread_pct": "|natural - mid| / |mid| of the combo, fraction (0.15 = 15 %); mid floor 1 cent",
    "min_volume": "least session volume of any leg, contracts",
    "min_open_interest": "least open interest of any leg, contracts",
    # ------------------------------------------------------------------ signals and forecast
    "forecast_price": "underlying price forecast at expiry from trend and cycle signals, dollars",
    "forecast_low": "forecast price minus one sigma at expiry, dollars",
    "forecast_high": "forecast price plus one sigma at expiry, dollars",
    "vol_forecast": "GARCH forecast of realized vol averaged to expiry, annualised fraction",
    "trend_r2": "trend strength 0..1: R² of a line on log closes, discounted unless significant",
    "cycle_power_share": "share 0..1 of detrended log-price variance explained by the main cycle",
    "return_20d": "underlying's simple return over the last 20 sessions, fraction",
    "vol_ewma": "RiskMetrics EWMA (0.94) vol of daily log returns, annualised fraction",
    "vol_long": "standard deviation of daily log returns over the lookback, annualised",
    # ------------------------------------------------------------------ rule score
    "price_match": "0..1: how close the forecast price is to the centre, in forecast sigmas",
    "vol_edge": "0..1: centre IV rich vs forecast vol (0.5 at parity; >0.5 favours short vega)",
    "stability": "0..1: how calm and range-bound the underlying has been (1 = calm, no trend)",
    "alignment": "0..1: whether the forecast moves the price toward the centre strike",
    "delta_penalty": "0..1: |net_delta| x expected move / max loss (directional risk)",
    "score": "rule score 0..100 (price match, vol edge, stability, alignment - delta penalty)",
    "ev_per_share": "expected value at expiry under the forecast, $/share; entry fee in, exit not",
    "ev_per_1000": "rule EV per $1,000 at risk (ev_per_share / max_loss x 1000); raw, uncalibrated",
    "prob_profit_forecast": "P(expiry between breakevens) under the forecast distribution, 0..1",
    "recommendation": f"{_VERDICTS}: score thresholds, a buy needs rule EV > 0",
    "confidence": "HIGH | MEDIUM | LOW: signal strength (trend + cycle) and liquidity",
    "risk_level": "HIGH | MEDIUM | LOW from centre IV, reward/risk and dte; sets exit shares",
    "stop_loss_pnl": "P/L at mid that triggers the stop loss, dollars per combo (negative)",
    "take_profit_pnl": "P/L at mid that triggers the take profit, dollars per combo",
    "tags": "comma-separated flags: credit, iv_rich, at_the_money, wide_spread, short_dated, ...",
    # ------------------------------------------------------------------ rankings
    "rank": "overall rank of the session, 1 = best (by ranking_value, score breaks ties)",
    "ticker_rank": "rank among the same ticker's kept candidates, 1 = best",
    "ranked_by": "model (champion's expected yield) or rule:<measure> (rule measure used)",
    "ev_calibrated_per_1000": "realized yield per $1,000 of settled candidates with that rule EV",
    "baseline_rank_by": "rule measure the baseline track ranks by (validated before the session)",
    # ------------------------------------------------------------------ surface
    "iv_atm_30": "30-day ATM implied vol, interpolated in total variance, annualised",
    "iv_atm_near": "ATM implied vol of the nearest expiry at least 7 days out, annualised",
    "iv_atm_far": "ATM implied vol of the farthest listed expiry, annualised",
    "term_slope": "iv_atm_far - iv_atm_near, vol as a fraction (positive: upward term curve)",
    "skew_25d": "25-delta put IV - 25-delta call IV at the ~30-day expiry, fraction",
    "near_dte": "calendar days to the near expiry of iv_atm_near (0: none listed)",
    "far_dte": "calendar days to the farthest listed expiry",
    # ------------------------------------------------------------------ skips
    "stage": "where the ticker was skipped: signals (price history) or candidates (chain)",
    "detail": "more on the reason, e.g. the dte window or 'candidates not built'",
    # ------------------------------------------------------------------ features
    "is_call_fly": "1.0 for a call butterfly, else 0.0",
    "is_put_fly": "1.0 for a put butterfly, else 0.0",
    "is_iron_fly": "1.0 for an iron butterfly, else 0.0",
    "moneyness": "centre / spot - 1, fraction (positive: centre above spot)",
    "center_in_moves": "(centre - spot) / expected_move: centre distance in one-sigma moves",
    "width_in_moves": "wing width / expected_move",
    "cost_to_width": "cost / width, both per share (negative for an iron fly's credit)",
    "iv_vs_forecast": "iv_center / vol_forecast - 1, fraction",
    "iv_rank": "30-day ATM IV in its past-252-session min..max (not today), 0..1; 0.5 if none",
    "iv_percentile": "share 0..1 of the past 252 sessions with lower 30-day ATM IV; 0.5 if none",
    "log_min_open_interest": "ln(1 + min_open_interest)",
    "log_min_volume": "ln(1 + min_volume)",
    "rule_score": "score / 100, 0..1",
    "view_alignment": "sign(centre - spot) x ensemble action (+1 buy, -1 sell, 0 hold or none)",
    # ------------------------------------------------------------------ regime and decisions
    "market_regime": "bear | neutral | bull: most likely regime, filtered point in time",
    "regime_confidence": "probability 0..1 of market_regime (the largest of p_bear/neutral/bull)",
    "p_bear": "P(bear = stressed state) given index returns up to the session, 0..1",
    "p_neutral": "P(neutral: calm, flat or falling trend) given returns up to the session, 0..1",
    "p_bull": "P(bull: calm, rising trend) given returns up to the session, 0..1",
    "p_up": "ensemble P(close 21 sessions later above today's close); NaN without a model",
    "reasoning": "text: the regime, the model or signal vote, and the signals behind the action",
    "model_train_start": "first session the labelling regime model was fitted on (YYYY-MM-DD)",
    "model_train_end": "last session the labelling regime model was fitted on, before the month",
    # ------------------------------------------------------------------ model estimates
    "ml_success_prob": "champion model's P(win) at entry, 0..1; NaN without a gated champion",
    "ml_expected_roi": "model expected yield, a FRACTION of max loss (x1000 = per $1,000); NaN if"
    " unvalidated",
    "yield_model_validated": "true when the paired expected-yield model passed its own gates",
    "model_version": "P(win) model version behind the row; none: no champion, rule: baseline",
    "model_status": "champion | fallback, or why no estimate was written (e.g. no champion)",
    # ------------------------------------------------------------------ outcomes (labels)
    "settle_price": "underlying close on the expiry session, dollars",
    "expiry_value": "combo value at expiry, $/share (iron fly negative: owed back)",
    "exit_fee": "exit order fee if any leg finishes in the money, dollars per share",
    "pnl_per_share": "expiry value - cost - exit fee, $/share; expected-fill basis, all fees",
    "pnl_per_contract": "pnl_per_share x 100: dollars per combo, all fees",
    "roi": "pnl_per_share / max_loss, fraction of capital at risk; expected-fill basis",
    "yield_per_1000": "candidate held to expiry: P/L per $1,000 at risk, expected fill, all fees",
    "win": "settled inside the breakevens with P/L > 0 after all fees (the model's label)",
    "cost_natural": "cost bought at natural (every leg across its spread) plus entry fee, $/share",
    "max_loss_natural": "max loss bought at natural, dollars per share, after entry fee",
    "pnl_per_share_natural": "P/L at expiry bought at natural, $/share, all fees (worst case)",
    "yield_per_1000_natural": "P/L per $1,000 at risk bought at natural, all fees (worst case)",
    "win_natural": "win when bought at natural: inside natural breakevens, P/L > 0 after fees",
    # ------------------------------------------------------------------ orders and fills
    "order_ref": "deterministic order reference (session, ticker, legs, track, intent)",
    "intent": f"what the order does to a position: {choices(Intent)}",
    "track": f"who chose the trade: {choices(Track)}",
    "action": "BUY or SELL of the combo as quoted (BUY opens; an iron fly BUY is a credit)",
    "quantity": "number of combos (butterflies), not contracts or shares",
    "limit_price": "limit, dollars per share of one combo; negative = credit (iron fly)",
    "position_id": "ledger position of the row; empty on an entry (its fill names it by order_ref)",
    "status_reason": "why the order has its status (refusal, broker message, unfilled limit)",
    "broker_order_id": "the broker's id of the order (e.g. P1 on the paper broker)",
    "filled": "combos filled so far",
    "avg_fill_price": "quantity-weighted fill price, $/share of one combo, before commission",
    "origin": f"who placed the order: {choices(Origin)} (broker: found there, not ours)",
    "created_at": "when the ledger recorded the order, UTC (naive timestamp)",
    "updated_at": "when the order row last changed, UTC (naive timestamp)",
    "exec_id": "the broker's execution id (each recorded once)",
    "price": "fill price, net dollars per share of one combo, before commission; negative = credit",
    "commission": "broker commission of the execution, dollars (all legs, all combos)",
    "time": "execution time at the broker, UTC (naive timestamp)",
    "recorded_at": "when the ledger recorded the execution, UTC (naive timestamp)",
    "ghost": "true for an execution this system never sent (or the position it opened)",
    "natural_low": "best price for a buyer: legs bought at bid, sold at ask, $/share of one combo",
    "natural_high": "natural price of a buy: legs bought at ask, sold at bid, $/share",
    "order_max_loss": "most the order can lose if filled, dollars (0 for a close)",
    "source_rank": "the entry's rank in the previous session's scan_rankings (NaN if not ranked)",
    # ------------------------------------------------------------------ positions and journal
    "entry_session": "session the position's first opening fill was recorded",
    "exit_session": "session of the last close or expiry settlement",
    "entry_price": "average opening fill, dollars per share of one combo, before fees",
    "exit_price": "average closing fill or intrinsic settlement value, $/share, before fees",
    "mark": "combo value at the session's close: mid, intrinsic at expiry; NaN if unquoted",
    "unrealized_pnl": "(mark - entry_price) x quantity x 100, dollars at mid, fees excluded",
    "market_value": "mark x quantity x 100, dollars (last mark, else entry price, if unquoted)",
    "fees": "all commissions of the position's fills, dollars",
    "pnl": "realized P/L, dollars: all cash flows of the position, after every fee",
    "days_held": "calendar days from entry_session to exit_session",
    "exit_reason": "exit rule that closed it: " + ", ".join(EXIT_PRECEDENCE),
    "won": "true when pnl > 0 after all fees",
    # ------------------------------------------------------------------ models
    "win_model_version": "registry version of the P(win) model trained by this run",
    "yield_model_version": "registry version of the paired expected-yield model",
    "forced": "trained with too little data on request: registered, never promoted",
    "checks_passed": "true when P(win) passed every promotion gate, incl. beating the champion",
    "yield_gates_passed": "true when P(win) passed and the yield model passed its own gates",
    "gates_reason": "why the gates passed or which gate failed, with its value",
    "yield_gates_reason": "why the yield model's gates passed or which failed",
    "brier": "walk-forward out-of-fold Brier score of P(win), 0..1, lower is better",
    "roc_auc": "walk-forward out-of-fold ROC AUC, 0..1 (0.5 = no skill)",
    "ece": "walk-forward expected calibration error of P(win), 10 bins, 0..1",
    "training_samples": "rows of the training set the model was trained on",
    "compared_with": "champion version the new model was compared with ('' if none)",
    "model_json": "the regime HMM's fitted parameters, JSON",
    "train_start": "first session the regime model was fitted on (YYYY-MM-DD)",
    "train_end": "last session the regime model was fitted on (YYYY-MM-DD)",
    "requested_start": "first session asked for ('' = every stored session)",
    "requested_end": "last session asked for (YYYY-MM-DD)",
    "n_samples": "sessions of index returns the regime model was fitted on",
    "gates_passed": "true when the model passed every one of its gates",
    "gates_json": "each gate with its value, threshold and verdict, JSON",
    "fitted_at": "when the model was fitted, UTC ISO-8601 text",
    "run_id": "Dagster run id that produced the row",
    "version": "model registry version ('' when no model was trained)",
    "accuracy": "walk-forward out-of-fold accuracy of up/down at P = 0.5, 0..1",
    "brier_skill": "1 - Brier / base-rate variance, out of fold; > 0 beats the base rate",
    "model": "registry name of the model",
    "promoted_at": "when it was promoted to champion, UTC ISO-8601 text",
    # ------------------------------------------------------------------ monitoring
    "scope": "to_date (track record up to the session) or session (the session alone)",
    "figure": "name of the performance figure, e.g. win_rate, total_pnl, sharpe",
    "value": "the figure's value, in its own unit (dollars, fraction, ratio or count)",
    "bin": "P(win) bucket, 0..9 (tenths of probability)",
    "mean_predicted": "mean predicted P(win) of the bucket's rows, 0..1",
    "hit_rate": "share 0..1 of the bucket's rows that won",
    "period": "daily | weekly | monthly",
    "path": "where the HTML report was written",
    "check": "name of the health check, e.g. models, data_freshness, broker, disk",
    "message": "what the check found, in words",
    # ------------------------------------------------------------------ backtest
    "equity": "account value at the session's close: cash + positions at mid, dollars",
    "drawdown": "fall from the running equity peak, fraction of the peak (0.12 = 12 %)",
    "return": "equity's simple return over the previous session, fraction (NaN first)",
    "benchmark": "buy-and-hold of the index from the same capital, dollars (NaN if none)",
    "exposed": "true when any position was open at the close",
    "cash": "cash at the session's close, dollars",
    "positions_value": "open positions at their marks, dollars",
    "open_positions": "positions open at the close",
}

# A name whose meaning depends on the table: no GLOSSARY entry, one override per table.
OVERRIDES: dict[tuple[str, str], str] = {
    # count: candidates not built vs predictions in a bucket.
    ("scan_skips", "count"): "candidates not built for the reason (1: ticker w/o expiry; 0: n/a)",
    ("drift_report", "count"): "resolved predictions in the bucket",
    # status: an order's state vs a health check's verdict.
    ("orders", "status"): "order status: " + ", ".join(OrderStatus),
    ("system_health", "status"): " | ".join(STATUSES) + " (mildest first)",
    # reason: why a ticker was skipped vs why an order exists.
    ("scan_skips", "reason"): "why the ticker or its candidates were skipped",
    ("target_orders", "reason"): "why the order: track and its figures, or exit rule and detail",
    ("orders", "reason"): "why the order: track and its figures, or exit rule and detail",
    # action: the combo's side vs a stock view.
    ("trading_decisions", "action"): "buy | hold | sell: the stock view (not an order)",
    # confidence: a label vs a number.
    ("trading_decisions", "confidence"): "|P(up) - 0.5| x 2, 0..1 (P(up) or the signal vote)",
    # The market tables' names used for something else here.
    ("target_orders", "mid"): "combo mid at the previous close, $/share (exits: the mark)",
    ("drift_report", "low"): "lower edge of the P(win) bucket, 0..1",
    ("drift_report", "high"): "upper edge of the P(win) bucket, 0..1",
    ("drift_report", "source"): "candidates (settled scan candidates) or trades (closed trades)",
    ("signal_ensemble", "rows"): "training rows of the regime's model (0: none)",
    ("backtest", "positions"): "stocks held at the close (signals strategy)",
    ("signal_ensemble", "regime"): "bull | neutral | bear: the regime whose sessions it learned",
    # Totals where elsewhere it is per combo.
    ("target_orders", "capital_at_risk"): "max loss of the whole order, dollars (all combos)",
    ("trade_journal", "capital_at_risk"): "max loss x combos opened x 100, dollars",
    ("backtest", "capital_at_risk"): "max loss of all open positions, dollars",
    ("fills", "quantity"): "combos filled by this execution",
    ("positions", "quantity"): "combos held at the close (net)",
    ("trade_journal", "quantity"): "combos opened",
    # A realized trade vs a candidate held to expiry.
    ("trade_journal", "roi"): "pnl / capital_at_risk, fraction; realized, after every fee",
    ("trade_journal", "yield_per_1000"): "realized P/L per $1,000 at risk, after every fee",
    ("trade_journal", "session"): f"{_SESSION} the position closed (exit_session)",
    ("positions", "session"): f"{_SESSION} whose close the positions are marked at",
    # What the row's figures are known at.
    ("target_orders", "session"): f"{_SESSION} the order is for; planned on the previous close",
    ("orders", "session"): f"{_SESSION} the order was sent in",
    ("fills", "session"): f"{_SESSION} the execution was collected in",
    ("orders", "limit_price"): "latest limit, $/share of one combo (repriced toward the plan)",
    ("target_orders", "limit_price"): "planned limit = expected fill, $/share (settle: intrinsic)",
    ("target_orders", "iv_center"): "centre-strike IV at planning (entry quote or exit mark)",
    ("scan_rankings", "recommendation"): f"{_VERDICTS}: a buy needs calibrated EV > 0",
    ("scan_rankings", "ranking_value"): "value ranked by: model yield per $1,000 or rule measure",
    ("target_orders", "ranking_value"): "track value: expected yield per $1,000 (model or rule EV)",
    ("target_orders", "score"): "the candidate's rule score 0..100 (NaN for exits)",
}
for _table in CANDIDATE_TABLES:
    OVERRIDES[(_table, "session")] = f"{_SESSION} the candidate was priced on (entry), at its close"
for _table in ("iv_surface", "scan_skips"):
    OVERRIDES[(_table, "session")] = f"{_SESSION} of the closing chain summarised"
# The features are the candidate's columns clipped, or a neutral value without context.
for _table in FEATURE_TABLES:
    OVERRIDES |= {
        (_table, "reward_risk"): "max_profit / max_loss clipped to 0..50",
        (_table, "spread_pct"): "combo |natural - mid| / |mid| clipped to 0..5",
        (_table, "p_bear"): "P(bear) of the session; 1/3 without a market_regime row",
        (_table, "p_neutral"): "P(neutral) of the session; 1/3 without a market_regime row",
        (_table, "p_bull"): "P(bull) of the session; 1/3 without a market_regime row",
        (_table, "p_up"): "ensemble P(up) of the ticker; 0.5 without a decision or model",
        (_table, "dte"): f"{_market(OPTION_CHAINS, 'dte')} (as a float)",
    }
OVERRIDES[("training_set", "win")] = "the label: " + GLOSSARY["win"]
for _table in REPORT_TABLES:
    OVERRIDES[(_table, "session")] = f"{_SESSION} the report was written for"


class UndescribedColumn(KeyError):
    """A column with no description, or a table this module does not know."""

    def __str__(self) -> str:  # KeyError would print the message in quotes
        return str(self.args[0])


def describe(table: str, column: str) -> str:
    """The description of ``column`` in ``table``; raises :class:`UndescribedColumn` naming
    both when there is none (an unknown table included)."""
    if table in MARKET_SCHEMAS:
        schema = MARKET_SCHEMAS[table]
        if column in schema.names and schema.column(column).description:
            return schema.column(column).description
        raise UndescribedColumn(
            f"column {column!r} of market table {table!r} has no description: add it to "
            "core/market/schemas.py"
        )
    if table not in TABLES:
        raise UndescribedColumn(
            f"table {table!r} (column {column!r}) is not a lake table core/glossary.py knows: "
            "add it to TABLES"
        )
    text = OVERRIDES.get((table, column)) or GLOSSARY.get(column)
    if not text:
        raise UndescribedColumn(
            f"column {column!r} of table {table!r} has no description: add it to GLOSSARY in "
            "core/glossary.py (or OVERRIDES[(table, column)] if it means something else there)"
        )
    return text


def names_with_several_meanings() -> dict[str, list[str]]:
    """Each name described per table (no GLOSSARY entry), with the tables that describe it."""
    out: dict[str, list[str]] = {}
    for table, name in OVERRIDES:
        if name not in GLOSSARY:
            out.setdefault(name, []).append(table)
    return {name: sorted(tables) for name, tables in sorted(out.items())}
