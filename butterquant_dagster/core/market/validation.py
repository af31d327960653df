"""Data-quality rules for the market snapshot.

Each rule looks at one session's frame and returns the rows that break it as
:class:`Violation` s naming the rule, session, ticker and origin (file or source), so the
person on call knows what to fix without opening a notebook. The Dagster layer turns the
outcome of each rule into a blocking asset check; nothing downstream trades on a snapshot
that failed one.

Each session is judged on its own: a session that breaks a rule (or could not be produced at
all) is *refused*, and the report keeps why, so the other sessions of a run can be published
without it (docs/data_formats.md, "Bad sessions").
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from butterquant_dagster.core.market.schemas import (
    DAILY_BARS,
    OPTION_CHAINS,
    TableSchema,
    dtype_problems,
)

# Split ratios an unadjusted vendor file shows as an overnight gap (forward and reverse).
# 3:2 is left out on purpose: real takeover gaps of +50 % (YHOO, 2008-02-01) look like it.
_SPLIT_RATIOS = (2.0, 3.0, 4.0, 5.0, 8.0, 10.0, 20.0)


@dataclass(frozen=True)
class QualityPolicy:
    """Tolerances of the rules. Defaults suit a daily close of US equity options."""

    max_missing_ticker_share: float = 0.02
    min_implied_vol: float = 0.05
    max_implied_vol: float = 5.0
    # Real chains carry a few absurd far-from-the-money quotes; a closed market's garbage
    # affects far more than this share of rows.
    max_implausible_iv_share: float = 0.005
    # The gap of a split day is the split ratio times that day's own overnight move.
    split_ratio_tolerance: float = 0.08
    # "SYMBOL@YYYY-MM-DD" of jumps a person checked and accepted as real moves.
    acknowledged_jumps: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Violation:
    rule: str
    message: str
    session: str = ""
    symbol: str = ""
    origin: str = ""

    def describe(self) -> str:
        where = ", ".join(
            part
            for part in (
                f"session {self.session}" if self.session else "",
                f"ticker {self.symbol}" if self.symbol else "",
                f"from {self.origin}" if self.origin else "",
            )
            if part
        )
        prefix = f"[{self.rule}] {where}" if where else f"[{self.rule}]"
        return f"{prefix}: {self.message}"


@dataclass(frozen=True)
class Found:
    """How many rows broke a rule in one session, and the first few of them."""

    count: int
    examples: tuple[Violation, ...]

    def __bool__(self) -> bool:
        return self.count > 0

    @classmethod
    def of(cls, violations: list[Violation]) -> Found:
        return cls(len(violations), tuple(violations))


NONE = Found(0, ())


@dataclass
class RuleOutcome:
    """The running result of one rule over every session of a run."""

    rule: str
    description: str
    violations: int = 0
    examples: list[Violation] = field(default_factory=list)
    sessions_failed: list[str] = field(default_factory=list)
    rows_checked: int = 0

    @property
    def passed(self) -> bool:
        return self.violations == 0

    def add(self, found: Found, rows: int, session: str, limit: int = 20) -> None:
        self.rows_checked += rows
        if found:
            self.violations += found.count
            self.sessions_failed.append(session)
            self.examples.extend(found.examples[: max(0, limit - len(self.examples))])

    def summary(self) -> str:
        if self.passed:
            return f"{self.rule}: ok ({self.rows_checked} rows)"
        lines = [
            f"{self.rule}: {self.violations} violation(s) in {len(self.sessions_failed)} "
            f"session(s); first: "
        ]
        lines += [f"  {v.describe()}" for v in self.examples[:5]]
        return "\n".join(lines)


def _origin(frame: pd.DataFrame, mask: np.ndarray) -> list[str]:
    if "source" in frame.columns:
        return frame.loc[mask, "source"].astype(str).tolist()
    return [""] * int(mask.sum())


def found_in(frame, mask, rule, message: Callable[[pd.Series], str]) -> Found:
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return NONE
    bad = frame.loc[mask]
    origins = _origin(frame, mask)
    out = []
    for (_, row), origin in zip(bad.head(50).iterrows(), origins, strict=False):
        session = row.get("session")
        out.append(
            Violation(
                rule=rule,
                message=message(row),
                session=str(pd.Timestamp(session).date()) if pd.notna(session) else "",
                symbol=str(row.get("symbol", "")),
                origin=origin,
            )
        )
    return Found(int(mask.sum()), tuple(out))


# ----------------------------------------------------------------------------- common rules
def check_schema(frame: pd.DataFrame, schema: TableSchema, **_) -> Found:
    return Found.of([Violation("schema", p) for p in dtype_problems(frame, schema)])


def check_session_dated(frame: pd.DataFrame, session: dt.date, **_) -> Found:
    """Stale data: every row of a partition must be dated the partition's session."""
    dates = pd.to_datetime(frame["session"]).dt.date
    return found_in(
        frame,
        (dates != session).to_numpy(),
        "stale_session",
        lambda r: f"row dated {pd.Timestamp(r['session']).date()} in the partition of {session}",
    )


def check_duplicates(frame: pd.DataFrame, schema: TableSchema, **_) -> Found:
    dup = frame.duplicated(list(schema.key), keep="first").to_numpy()
    return found_in(
        frame,
        dup,
        "duplicate_key",
        lambda r: "duplicate " + ", ".join(f"{k}={r[k]}" for k in schema.key),
    )


def check_missing_tickers(
    frame: pd.DataFrame,
    session: dt.date,
    expected: Iterable[str],
    policy: QualityPolicy,
    what: str,
    **_,
) -> Found:
    expected = sorted(set(expected))
    if not expected:
        return NONE
    missing = sorted(set(expected) - set(frame["symbol"].astype(str)))
    share = len(missing) / len(expected)
    if share <= policy.max_missing_ticker_share:
        return NONE
    shown = ", ".join(missing[:15]) + (" ..." if len(missing) > 15 else "")
    return Found.of(
        [
            Violation(
                "missing_tickers",
                f"{len(missing)} of {len(expected)} tickers ({share:.1%}) have no {what}, "
                f"above the tolerance of {policy.max_missing_ticker_share:.1%}: {shown}",
                session=str(session),
            )
        ]
    )


# ----------------------------------------------------------------------------- bars rules
_PRICE_COLUMNS = ("open", "high", "low", "close", "adj_close")


def check_bar_prices(frame: pd.DataFrame, **_) -> Found:
    values = frame[list(_PRICE_COLUMNS)].to_numpy(float)
    bad = ~np.isfinite(values) | (values <= 0)
    bad_volume = ~(frame["volume"].to_numpy(float) >= 0)
    mask = bad.any(axis=1) | bad_volume

    def message(row):
        cols = [c for c in _PRICE_COLUMNS if not (np.isfinite(row[c]) and row[c] > 0)]
        if not row["volume"] >= 0:
            cols.append("volume")
        return "NaN or non-positive " + ", ".join(f"{c}={row[c]}" for c in cols)

    return found_in(frame, mask, "bar_prices_positive", message)


def check_bar_ohlc(frame: pd.DataFrame, **_) -> Found:
    o, h, l_, c = (frame[k].to_numpy(float) for k in ("open", "high", "low", "close"))
    tol = 1e-9 * np.maximum(np.abs(c), 1.0)
    with np.errstate(invalid="ignore"):
        mask = (h < np.maximum(o, c) - tol) | (l_ > np.minimum(o, c) + tol)
    return found_in(
        frame,
        mask,
        "bar_ohlc_consistent",
        lambda r: (
            f"high {r['high']} / low {r['low']} outside open {r['open']} / close {r['close']}"
        ),
    )


def check_split_jump(frame: pd.DataFrame, policy: QualityPolicy, **_) -> Found:
    """An overnight gap of about a split ratio is an unadjusted split, not a trade."""
    prev = frame["prev_close"].to_numpy(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = prev / frame["open"].to_numpy(float)
        mask = np.zeros(len(frame), dtype=bool)
        for split in _SPLIT_RATIOS:
            for target in (split, 1.0 / split):
                mask |= np.abs(ratio / target - 1.0) <= policy.split_ratio_tolerance
    mask &= np.isfinite(prev)
    if policy.acknowledged_jumps and mask.any():
        keys = (
            frame["symbol"].astype(str)
            + "@"
            + pd.to_datetime(frame["session"]).dt.strftime("%Y-%m-%d")
        )
        mask &= ~keys.isin(policy.acknowledged_jumps).to_numpy()
    return found_in(
        frame,
        mask,
        "split_jump",
        lambda r: (
            f"opened at {r['open']} after closing at {r['prev_close']}, a ratio of "
            f"{r['prev_close'] / r['open']:.3f}: looks like an unadjusted split; fix the "
            "file, or acknowledge the move as real (SYMBOL@YYYY-MM-DD)"
        ),
    )


# ----------------------------------------------------------------------------- chain rules
def check_chain_prices(frame: pd.DataFrame, **_) -> Found:
    bid, ask = frame["bid"].to_numpy(float), frame["ask"].to_numpy(float)
    strike = frame["strike"].to_numpy(float)
    spot = frame["underlying_price"].to_numpy(float)
    with np.errstate(invalid="ignore"):
        mask = (
            ~np.isfinite(bid)
            | ~np.isfinite(ask)
            | (bid < 0)
            | (ask <= 0)
            | ~np.isfinite(strike)
            | (strike <= 0)
            | ~np.isfinite(spot)
            | (spot <= 0)
        )
    return found_in(
        frame,
        mask,
        "quote_prices_valid",
        lambda r: (
            f"{r['right']} {r['strike']} exp {pd.Timestamp(r['expiry']).date()}: "
            f"bid {r['bid']}, ask {r['ask']}, underlying {r['underlying_price']}"
        ),
    )


def check_crossed_quotes(frame: pd.DataFrame, **_) -> Found:
    with np.errstate(invalid="ignore"):
        mask = frame["bid"].to_numpy(float) > frame["ask"].to_numpy(float)
    return found_in(
        frame,
        mask,
        "crossed_quotes",
        lambda r: (
            f"{r['right']} {r['strike']} exp {pd.Timestamp(r['expiry']).date()}: "
            f"bid {r['bid']} > ask {r['ask']}"
        ),
    )


def check_implied_vol(frame: pd.DataFrame, policy: QualityPolicy, **_) -> Found:
    iv = frame["implied_vol"].to_numpy(float)
    with np.errstate(invalid="ignore"):
        mask = ~np.isfinite(iv) | (iv < policy.min_implied_vol) | (iv > policy.max_implied_vol)
    if len(frame) == 0 or mask.mean() <= policy.max_implausible_iv_share:
        return NONE
    return found_in(
        frame,
        mask,
        "implied_vol_plausible",
        lambda r: (
            f"{r['right']} {r['strike']} exp {pd.Timestamp(r['expiry']).date()}: implied "
            f"vol {r['implied_vol']} outside [{policy.min_implied_vol}, "
            f"{policy.max_implied_vol}] ({mask.mean():.1%} of the session's rows; a "
            "closed market's quotes look like this)"
        ),
    )


def check_chain_dates(frame: pd.DataFrame, **_) -> Found:
    session = pd.to_datetime(frame["session"])
    expiry = pd.to_datetime(frame["expiry"])
    dte = (expiry - session).dt.days.to_numpy()
    mask = (dte < 0) | (dte != frame["dte"].to_numpy())
    return found_in(
        frame,
        mask,
        "expiry_consistent",
        lambda r: (
            f"expiry {pd.Timestamp(r['expiry']).date()} with dte {r['dte']} on session "
            f"{pd.Timestamp(r['session']).date()}"
        ),
    )


def check_greeks_finite(frame: pd.DataFrame, **_) -> Found:
    """Greeks must be finite wherever the quote has an implied vol; a quote without one
    (a mid below intrinsic value) is the implied-vol rule's business, with its tolerance."""
    values = frame[["delta", "gamma", "vega", "theta"]].to_numpy(float)
    has_vol = np.isfinite(frame["implied_vol"].to_numpy(float))
    mask = ~np.isfinite(values).all(axis=1) & has_vol
    return found_in(
        frame,
        mask,
        "greeks_finite",
        lambda r: (
            f"{r['right']} {r['strike']}: delta {r['delta']} gamma {r['gamma']} "
            f"vega {r['vega']} theta {r['theta']}"
        ),
    )


@dataclass(frozen=True)
class Rule:
    name: str
    description: str
    fn: Callable[..., Found]


BAR_RULES: tuple[Rule, ...] = (
    Rule(
        "schema",
        "columns and dtypes match the daily_bars schema",
        lambda f, **kw: check_schema(f, DAILY_BARS),
    ),
    Rule("stale_session", "every row is dated the partition's session", check_session_dated),
    Rule(
        "duplicate_key",
        "one bar per ticker and session",
        lambda f, **kw: check_duplicates(f, DAILY_BARS),
    ),
    Rule(
        "bar_prices_positive", "no NaN or non-positive prices, no negative volume", check_bar_prices
    ),
    Rule(
        "bar_ohlc_consistent",
        "high >= max(open, close) and low <= min(open, close)",
        check_bar_ohlc,
    ),
    Rule(
        "missing_tickers",
        "universe tickers without a bar stay within the tolerance",
        lambda f, **kw: check_missing_tickers(f, what="bar", **kw),
    ),
    Rule("split_jump", "no one-day move by a split ratio (an unadjusted split)", check_split_jump),
)

CHAIN_RULES: tuple[Rule, ...] = (
    Rule(
        "schema",
        "columns and dtypes match the option_chains schema",
        lambda f, **kw: check_schema(f, OPTION_CHAINS),
    ),
    Rule("stale_session", "every row is dated the partition's session", check_session_dated),
    Rule(
        "duplicate_key",
        "one quote per contract",
        lambda f, **kw: check_duplicates(f, OPTION_CHAINS),
    ),
    Rule(
        "quote_prices_valid",
        "finite non-negative bids, positive asks, strikes, underlyings",
        check_chain_prices,
    ),
    Rule("crossed_quotes", "no bid above its ask", check_crossed_quotes),
    Rule("implied_vol_plausible", "implied vols within the plausible range", check_implied_vol),
    Rule("expiry_consistent", "expiry on or after the session, dte consistent", check_chain_dates),
    Rule(
        "greeks_finite",
        "finite delta, gamma, vega, theta wherever there is an implied vol",
        check_greeks_finite,
    ),
    Rule(
        "missing_tickers",
        "tickers with a bar but no chain stay within the tolerance",
        lambda f, **kw: check_missing_tickers(f, what="option chain", **kw),
    ),
)


@dataclass
class Refusal:
    """Why one session was refused: a line per broken rule (or other reason), and the
    offending rows found (the first 50 per rule)."""

    session: str
    reasons: list[str] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)

    def describe(self, examples: int = 3) -> str:
        lines = [f"- {self.session}:"]
        for reason in self.reasons:
            lines.append(f"    {reason}")
        for violation in self.violations[:examples]:
            lines.append(f"      e.g. {violation.describe()}")
        return "\n".join(lines)


class QualityReport:
    """Runs a rule set over the sessions of a run, one session at a time, and keeps one
    outcome per rule (over the run) and the sessions it refused (with why)."""

    def __init__(self, rules: tuple[Rule, ...], policy: QualityPolicy):
        self.rules = rules
        self.policy = policy
        self.outcomes = {rule.name: RuleOutcome(rule.name, rule.description) for rule in rules}
        self.refusals: dict[str, Refusal] = {}

    def check(
        self, frame: pd.DataFrame, session: dt.date, expected: Iterable[str], **context
    ) -> bool:
        """Run every rule on one session's frame; ``context`` is passed to the rules.

        True when the session may be published: it broke no rule, now or in an earlier
        call (a refusal sticks)."""
        expected = list(expected)
        schema_ok = True
        for rule in self.rules:
            if rule.name != "schema" and not schema_ok:
                continue  # the other rules cannot read a frame without its columns
            found = rule.fn(
                frame, session=session, expected=expected, policy=self.policy, **context
            )
            self.outcomes[rule.name].add(found, len(frame), str(session))
            if found:
                self._refuse(
                    str(session),
                    f"{rule.name} ({rule.description}): {found.count} violation(s) in "
                    f"{len(frame)} row(s)",
                    found.examples,
                )
            if rule.name == "schema" and found:
                schema_ok = False
        return not self.is_refused(session)

    def refuse(self, session: dt.date | str, reason: str) -> None:
        """Refuse ``session`` for a reason no rule checks (its input could not be read)."""
        self._refuse(str(session), reason, ())

    def _refuse(self, session: str, reason: str, examples: Iterable[Violation]) -> None:
        refusal = self.refusals.setdefault(session, Refusal(session))
        refusal.reasons.append(reason)
        refusal.violations.extend(examples)

    def is_refused(self, session: dt.date | str) -> bool:
        return str(session) in self.refusals

    @property
    def sessions_refused(self) -> list[str]:
        return sorted(self.refusals)

    @property
    def passed(self) -> bool:
        return not self.refusals and all(o.passed for o in self.outcomes.values())

    def failures(self) -> list[RuleOutcome]:
        return [o for o in self.outcomes.values() if not o.passed]
