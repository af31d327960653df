"""Every listed butterfly of a session, priced from its legs' real quotes.

For each ticker and each expiry in the window, every centre strike within the band around
spot and every symmetric wing of 1..3 listed strike steps, for each structure. Legs are
only ever listed strikes of that expiry (a wing is a step in the listed grid, never a
strike snapped on its own), and a candidate whose legs cannot be traded at a sane price
(a missing side, a zero bid on any leg, a debit at or above the wing width at the natural
price) is not built: it is counted against its ticker with the reason. A candidate's cost
and economics are at the price its order is expected to fill at (``core.options.costs``,
``debit_fill``), the natural price (``debit_natural``) on record beside it.

Everything is NumPy over all candidates at once, and a chain may hold many sessions (a
backtest builds a year in one call): the chain is ordered once by (session, symbol, expiry,
strike) into a strike table (a chain stored in key order needs no sort), groups are integer
codes, every leg is a gather of chain rows, and the frame is built once at the end.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from butterquant_dagster.core.options import butterfly as fly
from butterquant_dagster.core.options import costs
from butterquant_dagster.core.options.money import CONTRACT_MULTIPLIER

SKIP_COLUMNS = ["symbol", "reason", "detail", "count"]
NO_EXPIRY = "no listed expiry in the window"
ILLIQUID = "illiquid: no tradable candidate"
# The price rules in the order they are checked: a candidate is skipped for the first it fails.
_REASONS = (
    "missing strike or side in the chain",
    "a leg has a zero bid (one-sided quote)",
    "impossible price: no risk (max loss <= 0)",
    "impossible price: cost at or above the width",
    # A credit of the width or more is free money before fees; the invariant
    # ``credit_below_width`` rejects it, so it must not be built.
    "impossible price: credit at or above the width",
    # Being paid to buy a long fly (or to sell an iron fly) is not a price either.
    "impossible price: a debit structure for a credit, or the reverse",
)


@dataclass(frozen=True)
class CandidateRules:
    min_dte: int = 7
    max_dte: int = 60
    center_band: float = 0.10  # centre strikes within ±10 % of spot
    max_width_steps: int = 3
    structures: tuple[str, ...] = tuple(fly.STRUCTURES)


def build_candidates(
    chain: pd.DataFrame, session: dt.date | None = None, rules: CandidateRules | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(candidates, skips): the candidates of a chain and, per ticker, what was not built
    and why (columns symbol, reason, detail, count).

    With ``session`` the chain is that one session's (its own session column, if any, must
    hold one value) and every candidate is dated ``session``. Without it the chain may hold
    many sessions, read from its session column: the result is the concatenation of the
    per-session results, session by session; ``build_candidates_by_session`` also says which
    session each skip belongs to.
    """
    candidates, skips = _build(chain, session, rules or CandidateRules())
    return candidates, _skip_frame(skips, with_session=False)


def build_candidates_by_session(
    chain: pd.DataFrame, rules: CandidateRules | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(candidates, skips) of a chain of any number of sessions; the skips carry the session
    they belong to (columns session, symbol, reason, detail, count)."""
    candidates, skips = _build(chain, None, rules or CandidateRules())
    return candidates, _skip_frame(skips, with_session=True)


# ---------------------------------------------------------------------------- codes
def _ranked_codes(values) -> tuple[np.ndarray, np.ndarray]:
    """(codes, sorted uniques): each value's rank among the distinct values."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "iu" and len(values):
        change = values[1:] != values[:-1]
        if (values[1:] >= values[:-1]).all():  # already in order: no hashing, no sort
            codes = np.zeros(len(values), dtype=np.int64)
            np.cumsum(change, out=codes[1:])
            return codes, values[np.r_[True, change]]
    codes, uniques = pd.factorize(values)
    if (codes < 0).any():
        raise ValueError("the chain has rows without a symbol or a session")
    if not isinstance(uniques, np.ndarray):
        uniques = np.asarray(uniques, dtype=object)
    order = np.argsort(uniques, kind="stable")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return rank[codes], uniques[order]


def _stamps(column: pd.Series) -> np.ndarray:
    """A date column as datetime64 values."""
    values = column.to_numpy()
    return values if values.dtype.kind == "M" else pd.to_datetime(column).to_numpy()


def _session_codes(chain: pd.DataFrame, session) -> tuple[np.ndarray, np.ndarray | None]:
    """(code per row, session labels by code); no labels when ``session`` is given.

    Labels are in seconds, the dtype a session given as a date gets."""
    if session is not None:
        if "session" in chain.columns and len(chain):
            stamps = _stamps(chain["session"]).view("i8")
            if stamps.min() != stamps.max():
                raise ValueError(
                    "the chain holds several sessions: call build_candidates without a session"
                )
        return np.zeros(len(chain), dtype=np.int64), None
    if "session" not in chain.columns:
        raise ValueError("a chain without a session column needs the session argument")
    stamps = _stamps(chain["session"])
    codes, uniques = _ranked_codes(stamps.view("i8"))
    return codes, uniques.astype(np.int64).view(stamps.dtype).astype("datetime64[s]")


@dataclass
class _Pairs:
    """The (session, symbol) pairs of a chain, numbered in (session, symbol name) order."""

    code: np.ndarray  # pair of each chain row
    session: np.ndarray  # session code of each pair
    symbol: np.ndarray  # code of each pair's symbol in ``names``
    names: np.ndarray  # distinct symbol names (objects)


def _pairs(chain: pd.DataFrame, session_code: np.ndarray) -> _Pairs:
    column = chain["symbol"]
    if len(chain):
        # A chain stored in key order holds each symbol of a session as one run, the runs
        # in name order: numbering the runs needs no hashing and no sort of the rows.
        values = column.array
        differs = values[1:] != values[:-1]
        differs = (
            differs.to_numpy(dtype=bool, na_value=True)
            if hasattr(differs, "to_numpy")
            else np.asarray(differs, dtype=bool)
        )
        new_run = np.ones(len(chain), dtype=bool)
        new_run[1:] = differs | (session_code[1:] != session_code[:-1])
        starts = np.flatnonzero(new_run)
        names = np.asarray(values.take(starts), dtype=object)
        sessions = session_code[starts]
        try:
            in_order = bool(
                (sessions[1:] >= sessions[:-1]).all()
                and np.all((sessions[1:] != sessions[:-1]) | (names[1:] > names[:-1]))
            )
        except TypeError:  # a missing symbol: the general path says so
            in_order = False
        if in_order:
            symbol, distinct = pd.factorize(names)
            return _Pairs(np.cumsum(new_run) - 1, sessions, symbol, np.asarray(distinct))
    symbol_code, names = _ranked_codes(column)
    n_symbols = max(len(names), 1)
    key = session_code * n_symbols + symbol_code
    size = (int(session_code.max()) + 1 if len(chain) else 1) * n_symbols
    if size <= 4 * len(key) + 1024:
        present = np.bincount(key, minlength=size) > 0
        keys = np.flatnonzero(present)
        code = (np.cumsum(present) - 1)[key]
    else:
        keys, code = np.unique(key, return_inverse=True)
    return _Pairs(code, keys // n_symbols, keys % n_symbols, names)


# ---------------------------------------------------------------------------- table
@dataclass
class _Table:
    """One row per (session, symbol, expiry, strike) in that order; a group is one
    (session, symbol, expiry) strike ladder."""

    chain_row: np.ndarray  # the chain row of the key's first occurrence
    pair: np.ndarray  # (session, symbol) code of each row
    group: np.ndarray  # group of each row, 0.. in order
    starts: np.ndarray  # first row of each group
    strike: np.ndarray
    side_row: dict[str, np.ndarray]  # "C"/"P" -> chain row of that side, -1 if not listed


class _Chain:
    """The chain's columns as float arrays, read once (a view of a float column)."""

    def __init__(self, chain: pd.DataFrame):
        self._chain = chain
        self._columns: dict[str, np.ndarray] = {}

    def __getitem__(self, field: str) -> np.ndarray:
        if field not in self._columns:
            self._columns[field] = self._chain[field].to_numpy(float)
        return self._columns[field]


def _strike_table(chain: pd.DataFrame, rows: np.ndarray, pair: np.ndarray) -> _Table:
    """The strike table of chain ``rows`` given their (session, symbol) ``pair`` codes."""
    expiry = _stamps(chain["expiry"])[rows].view("i8")
    strike = chain["strike"].to_numpy()[rows]

    def changes(pair, expiry, strike):
        same_pair = pair[1:] == pair[:-1]
        same_group = same_pair & (expiry[1:] == expiry[:-1])
        return same_pair, same_group, strike[1:] == strike[:-1]

    same_pair, same_group, same_strike = changes(pair, expiry, strike)
    in_order = (
        (pair[1:] >= pair[:-1]).all()
        and (~same_pair | (expiry[1:] >= expiry[:-1])).all()
        and (~same_group | (strike[1:] >= strike[:-1])).all()
    )
    if not in_order:
        order = np.lexsort((strike, expiry, pair))  # stable: first occurrences stay first
        rows, pair, expiry, strike = rows[order], pair[order], expiry[order], strike[order]
        same_pair, same_group, same_strike = changes(pair, expiry, strike)
    new_key = np.ones(len(rows), dtype=bool)
    new_key[1:] = ~(same_group & same_strike)
    first = np.flatnonzero(new_key)
    new_group = np.ones(len(rows), dtype=bool)
    new_group[1:] = ~same_group
    new_group = new_group[first]
    table_row = np.cumsum(new_key) - 1
    call = (chain["right"] == "C").to_numpy(dtype=bool, na_value=False)[rows]
    put = (chain["right"] == "P").to_numpy(dtype=bool, na_value=False)[rows]
    side_row = {}
    for name, mine in (("C", call), ("P", put)):
        at = np.full(len(first), -1)
        at[table_row[mine]] = rows[mine]
        side_row[name] = at
    return _Table(
        chain_row=rows[first],
        pair=pair[first],
        group=np.cumsum(new_group) - 1,
        starts=np.flatnonzero(new_group),
        strike=strike[first],
        side_row=side_row,
    )


def _atm_vol(table: _Table, spot: np.ndarray, implied_vol: np.ndarray) -> np.ndarray:
    """Implied vol at the strike nearest the spot (the lower one on a tie), per group: the
    mean of the call's and the put's, either alone when the other is missing."""
    distance = np.abs(table.strike - spot)
    nearest = np.full(len(table.starts), -1)
    if len(table.starts):
        least = np.fmin.reduceat(distance, table.starts)
        hits = np.flatnonzero(distance == least[table.group])
        hit_group = table.group[hits]
        first = np.ones(len(hits), dtype=bool)
        first[1:] = hit_group[1:] != hit_group[:-1]
        nearest[hit_group[first]] = hits[first]
    call, put = (
        np.where(row >= 0, implied_vol[row], np.nan)
        for row in (table.side_row[s][nearest] for s in ("C", "P"))
    )
    call_quoted, put_quoted = ~np.isnan(call), ~np.isnan(put)
    total = np.where(call_quoted, call, 0.0) + np.where(put_quoted, put, 0.0)
    count = call_quoted.astype(float) + put_quoted
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((nearest >= 0) & (count > 0), total / count, np.nan)


# ---------------------------------------------------------------------------- build
def _build(chain: pd.DataFrame, session, rules: CandidateRules):
    if not rules.structures or rules.max_width_steps < 1:
        raise ValueError(f"no candidate to build with {rules}")
    session_code, session_labels = _session_codes(chain, session)
    n_sessions = int(session_code.max()) + 1 if len(chain) else 1
    pairs = _pairs(chain, session_code)
    pair = pairs.code
    dte_all = chain["dte"].to_numpy()
    window = np.flatnonzero((dte_all >= rules.min_dte) & (dte_all <= rules.max_dte))
    table = _strike_table(chain, window, pair[window])
    values = _Chain(chain)

    # Every symmetric (lower, centre, upper) of 1..max_width_steps listed steps, width by
    # width, each in table order.
    strike = table.strike
    spot = chain["underlying_price"].to_numpy()[table.chain_row]
    sizes = np.diff(np.r_[table.starts, len(strike)])
    size = np.repeat(sizes, sizes)
    position = np.arange(len(strike)) - np.repeat(table.starts, sizes)
    near_spot = np.abs(strike / spot - 1.0) <= rules.center_band + 1e-12  # the edge is in
    lowers, centres, uppers, steps = [], [], [], []
    every_piece = True  # whether each session has candidates of every width (see _frame)
    for width_steps in range(1, rules.max_width_steps + 1):
        centre = np.flatnonzero(
            (position >= width_steps) & (position + width_steps < size) & near_spot
        )
        lower, upper = centre - width_steps, centre + width_steps
        symmetric = np.isclose(strike[centre] - strike[lower], strike[upper] - strike[centre])
        lowers.append(lower[symmetric])
        centres.append(centre[symmetric])
        uppers.append(upper[symmetric])
        steps.append(np.full(len(lowers[-1]), width_steps, dtype=np.int64))
        sessions_with = np.bincount(pairs.session[table.pair[centres[-1]]], minlength=n_sessions)
        every_piece = every_piece and bool((sessions_with > 0).all())
    rows = {
        "lower": np.concatenate(lowers),
        "center": np.concatenate(centres),
        "upper": np.concatenate(uppers),
    }
    width_steps = np.concatenate(steps)
    k_mid = strike[rows["center"]]
    width = k_mid - strike[rows["lower"]]

    # Price rules of each structure on every candidate. A leg is a (right, strike) of the
    # candidate, read as chain rows; structures share legs, which are gathered once.
    leg_keys = list(
        dict.fromkeys(
            (leg.right, leg.strike) for s in rules.structures for leg in fly.STRUCTURES[s]
        )
    )
    leg_rows = np.vstack([table.side_row[right][rows[at]] for right, at in leg_keys])
    listed = leg_rows >= 0
    bid = np.where(listed, values["bid"][leg_rows], np.nan)
    ask = np.where(listed, values["ask"][leg_rows], np.nan)
    quoted = np.isfinite(bid) & np.isfinite(ask)
    n = len(width)
    prices = np.empty((len(_PRICES), len(rules.structures), n))
    reasons = []
    for s, structure in enumerate(rules.structures):
        legs = [leg_keys.index((leg.right, leg.strike)) for leg in fly.STRUCTURES[structure]]
        reasons.append(
            _price(structure, bid[legs], ask[legs], quoted[legs], k_mid, width, prices[:, s])
        )

    # The candidates that can be traded, in a session's own build order: session by
    # session, width by width, structure by structure, then (symbol, expiry, centre).
    valid = [np.flatnonzero(reason < 0) for reason in reasons]
    candidate = np.concatenate(valid)
    structure_code = np.repeat(np.arange(len(valid)), [len(v) for v in valid])
    order_key = (
        pairs.session[table.pair[rows["center"][candidate]]] * (rules.max_width_steps + 1)
        + width_steps[candidate]
    )
    order = np.argsort(_narrow(order_key * len(valid) + structure_code), kind="stable")
    candidate, structure_code = candidate[order], structure_code[order]
    picked = prices.reshape(len(_PRICES), -1)[:, structure_code * n + candidate]
    price = dict(zip(_PRICES, picked, strict=True))
    legs_of = _leg_columns(rules.structures, structure_code, candidate, leg_keys, leg_rows, values)

    centre = rows["center"][candidate]
    built = table.pair[centre]
    base = table.chain_row[centre]
    dte = dte_all[base]
    spot_c = spot[centre]
    rate = chain["rate"].to_numpy()[base]
    div = chain["dividend_yield"].to_numpy()[base]
    t = np.maximum(dte, 0.5) / 365.0
    forward = spot_c * np.exp((rate - div) * t)
    max_profit, max_loss = price["max_profit"], price["max_loss"]
    low, high = price["breakeven_low"], price["breakeven_high"]
    debit_mid, debit_natural = price["debit_mid"], price["debit_natural"]
    debit_fill = price["debit_fill"]
    credit = np.array([s in fly.CREDIT_STRUCTURES for s in rules.structures])
    iv_atm = _atm_vol(table, spot, values["implied_vol"])[table.group[centre]]
    columns = {
        "session": (
            pd.Timestamp(session)
            if session_labels is None
            else session_labels[pairs.session[built]]
        ),
        "symbol": pairs.symbol[built],  # codes, named in _frame
        "expiry": chain["expiry"].to_numpy()[base],
        "dte": dte,
        "structure": structure_code,  # codes, named in _frame
        "is_credit": credit[structure_code],
        "lower": strike[rows["lower"][candidate]],
        "center": k_mid[candidate],
        "upper": strike[rows["upper"][candidate]],
        "width": width[candidate],
        "width_steps": width_steps[candidate],
        "spot": spot_c,
        "debit_mid": debit_mid,
        "debit_natural": debit_natural,
        "debit_fill": debit_fill,
        "cost": price["cost"],
        "max_profit": max_profit,
        "max_loss": max_loss,
        "breakeven_low": low,
        "breakeven_high": high,
        "profit_zone_width": high - low,
        "reward_risk": max_profit / np.where(max_loss > 0, max_loss, np.nan),
        "capital_at_risk": max_loss * CONTRACT_MULTIPLIER,
        "iv_center": legs_of["iv_center"],
        "prob_profit_rn": fly.prob_between(low, high, forward, legs_of["iv_center"], t),
        **{f"net_{g}": legs_of[g] for g in ("delta", "gamma", "vega", "theta")},
        # Spread of the combo as a share of its mid; a mid below a cent counts as a cent.
        "spread_pct": np.abs(debit_natural - debit_mid) / np.maximum(np.abs(debit_mid), 0.01),
        "min_volume": legs_of["volume"],
        "min_open_interest": legs_of["open_interest"],
        "rate": rate,
        "dividend_yield": div,
        "iv_atm": iv_atm,
        "expected_move": spot_c * iv_atm * np.sqrt(dte / 365.0),
    }
    candidates = _frame(columns, pairs.names, rules.structures, every_piece)

    failed = [np.flatnonzero(reason >= 0) for reason in reasons]
    skips = _skips(
        rules,
        pairs,
        window_pairs=table.pair,
        built_pairs=built,
        failed_pairs=table.pair[rows["center"][np.concatenate(failed)]],
        failed_reasons=np.concatenate([r[f] for r, f in zip(reasons, failed, strict=True)]),
    )
    if skips is not None:
        skips["session"] = (
            pd.Timestamp(session) if session_labels is None else session_labels[skips["session"]]
        )
    return candidates, skips


def _narrow(key: np.ndarray) -> np.ndarray:
    """Small non-negative sort keys as 16 bits, which NumPy's stable sort radix-sorts."""
    if key.size and int(key.max()) < 2**16:
        return key.astype(np.uint16)
    return key


_PRICES = (
    "debit_mid",
    "debit_natural",
    "debit_fill",
    "cost",
    "max_profit",
    "max_loss",
    "breakeven_low",
    "breakeven_high",
)


def _price(structure: str, bid, ask, quoted, k_mid, width, out: np.ndarray) -> np.ndarray:
    """Prices of one structure on every candidate into ``out`` (``_PRICES`` by candidate)
    from the (legs, candidates) quotes; returns the reason code of each candidate, the
    index in ``_REASONS`` of the first price rule it fails, or -1 when it fails none."""
    legs = fly.STRUCTURES[structure]
    quantity = np.array([[leg.quantity] for leg in legs], dtype=float)
    is_credit = structure in fly.CREDIT_STRUCTURES
    contracts = fly.CONTRACTS_PER_COMBO[structure]
    debit_mid, debit_natural = fly.combo_prices(quantity, bid, ask)
    debit_fill = costs.expected_debit(debit_mid, debit_natural)
    # The economics are at the expected fill (costs.COST_BASIS); each price rule holds at
    # the expected fill and at natural, so a candidate is sane on both bases its outcomes
    # are recorded on.
    econ = fly.economics(is_credit, debit_fill, k_mid, width, contracts)
    worst = fly.economics(is_credit, debit_natural, k_mid, width, contracts)
    sign = 1.0 if is_credit else -1.0
    checks = (
        ~np.all(quoted, axis=0),
        np.any(bid <= 0, axis=0),
        (econ.max_loss <= 0) | (worst.max_loss <= 0),
        (econ.max_profit <= 0) | (worst.max_profit <= 0),
        is_credit & ((-debit_fill >= width) | (-debit_natural >= width)),
        (sign * debit_fill >= 0) | (sign * debit_natural >= 0),
    )
    reason = np.full(len(width), -1, dtype=np.int64)
    for code in range(len(checks) - 1, -1, -1):  # the first rule failed wins
        reason[checks[code]] = code
    for i, value in enumerate(
        (
            debit_mid,
            debit_natural,
            debit_fill,
            econ.cost,
            econ.max_profit,
            econ.max_loss,
            econ.breakeven_low,
            econ.breakeven_high,
        )
    ):
        out[i] = value
    return reason


def _leg_columns(structures, structure_code, candidate, leg_keys, leg_rows, values) -> dict:
    """Columns read from the legs of the candidates that can be traded: the centre's
    implied vol, the combo's greeks, the least volume and open interest of a leg."""
    n = len(candidate)
    out = {k: np.empty(n) for k in ("iv_center", "delta", "gamma", "vega", "theta")}
    out |= {k: np.empty(n) for k in ("volume", "open_interest")}
    for s, structure in enumerate(structures):
        mine = np.flatnonzero(structure_code == s)
        if not len(mine):
            continue
        legs = fly.STRUCTURES[structure]
        quantity = np.array([[leg.quantity] for leg in legs], dtype=float)
        at = [leg_keys.index((leg.right, leg.strike)) for leg in legs]
        chain_rows = leg_rows[np.ix_(at, candidate[mine])]  # (legs, candidates)
        centre = [i for i, leg in enumerate(legs) if leg.strike == "center"]
        # np.nanmean, spelled out: the mean of the centre legs' quoted vols.
        iv = values["implied_vol"][chain_rows[centre]]
        iv_quoted = ~np.isnan(iv)
        with np.errstate(invalid="ignore", divide="ignore"):
            out["iv_center"][mine] = np.sum(np.where(iv_quoted, iv, 0.0), axis=0) / np.sum(
                iv_quoted, axis=0, dtype=np.intp
            )
        for g in ("delta", "gamma", "vega", "theta"):
            out[g][mine] = np.sum(quantity * values[g][chain_rows], axis=0)
        for field in ("volume", "open_interest"):  # np.nanmin, spelled out
            out[field][mine] = np.fmin.reduce(values[field][chain_rows], axis=0)
    return out


_COLUMNS = (
    "session",
    "symbol",
    "expiry",
    "dte",
    "structure",
    "is_credit",
    "lower",
    "center",
    "upper",
    "width",
    "width_steps",
    "spot",
    "debit_mid",
    "debit_natural",
    "debit_fill",
    "cost",
    "max_profit",
    "max_loss",
    "breakeven_low",
    "breakeven_high",
    "profit_zone_width",
    "reward_risk",
    "capital_at_risk",
    "iv_center",
    "prob_profit_rn",
    "net_delta",
    "net_gamma",
    "net_vega",
    "net_theta",
    "spread_pct",
    "min_volume",
    "min_open_interest",
    "rate",
    "dividend_yield",
    "iv_atm",
    "expected_move",
)


def _frame(columns: dict, symbols: np.ndarray, structures, every_piece: bool) -> pd.DataFrame:
    """The candidates frame, built once; ``columns`` holds symbol and structure codes.

    The symbol column keeps the dtype of the per-piece build this replaces: pandas' string
    dtype when each session had candidates (built or not) of every width, else object (an
    empty piece's object column turned the concatenation to object). Both names are taken
    from an index of the distinct names, not inferred from hundreds of thousands of objects.
    """
    n = len(columns["symbol"])
    data = dict(columns)
    data["symbol"] = pd.Index(symbols, dtype=None if every_piece else object).take(
        columns["symbol"]
    )
    data["structure"] = pd.Index(np.asarray(structures, dtype=object)).take(columns["structure"])
    return pd.DataFrame({k: data[k] for k in _COLUMNS}, index=pd.RangeIndex(n), copy=False)


def _skips(rules, pairs: _Pairs, *, window_pairs, built_pairs, failed_pairs, failed_reasons):
    """The skips' columns (session codes, symbol, reason, detail, count), session by session:
    the tickers without an expiry in the window, the candidates not built per (ticker,
    reason), the tickers left without any candidate; None when there is none."""
    n_pairs = len(pairs.session)
    in_window = np.bincount(window_pairs, minlength=n_pairs) > 0
    built = np.bincount(built_pairs, minlength=n_pairs) > 0
    no_expiry = np.flatnonzero(~in_window)  # every pair is in the chain
    illiquid = np.flatnonzero(in_window & ~built)
    by_name = np.argsort(np.asarray(_REASONS, dtype=object), kind="stable")
    rank = np.empty(len(_REASONS), dtype=np.int64)
    rank[by_name] = np.arange(len(_REASONS))
    counts = np.bincount(
        failed_pairs * len(_REASONS) + rank[failed_reasons], minlength=n_pairs * len(_REASONS)
    )
    keys = np.flatnonzero(counts)
    failed = keys // len(_REASONS)
    if not (len(no_expiry) or len(failed) or len(illiquid)):
        return None
    pair = np.concatenate([no_expiry, failed, illiquid])
    block = np.repeat(np.arange(3), [len(no_expiry), len(failed), len(illiquid)])
    within = np.concatenate([np.arange(len(x)) for x in (no_expiry, failed, illiquid)])
    order = np.lexsort((within, block, pairs.session[pair]))
    pair, block = pair[order], block[order]
    # Reasons: no expiry, the price rules by name, illiquid; details by block.
    reason = np.concatenate(
        [
            np.zeros(len(no_expiry), np.int64),
            1 + keys % len(_REASONS),
            np.full(len(illiquid), len(_REASONS) + 1),
        ]
    )[order]
    reason_names = [NO_EXPIRY, *(_REASONS[i] for i in by_name), ILLIQUID]
    details = [
        f"{rules.min_dte}-{rules.max_dte} days",
        "candidates not built",
        "every candidate failed a price rule",
    ]
    count = np.concatenate(
        [np.ones(len(no_expiry), np.int64), counts[keys], np.zeros(len(illiquid), np.int64)]
    )[order]
    return {
        "session": pairs.session[pair],
        "symbol": pd.Index(pairs.names).take(pairs.symbol[pair]),
        "reason": pd.Index(np.asarray(reason_names, dtype=object)).take(reason),
        "detail": pd.Index(np.asarray(details, dtype=object)).take(block),
        "count": count.astype(np.int64),
    }


def _skip_frame(skips: dict | None, *, with_session: bool) -> pd.DataFrame:
    columns = ["session", *SKIP_COLUMNS] if with_session else SKIP_COLUMNS
    if skips is None:
        return pd.DataFrame([], columns=columns)
    return pd.DataFrame(
        {k: skips[k] for k in columns}, index=pd.RangeIndex(len(skips["count"])), copy=False
    )
