"""The embedded synthetic market: a deterministic, realistic equity and option market.

A pure function of (seed, universe, session). Each ticker draws from its own random stream
keyed by (seed, symbol), the market and sectors from streams keyed by (seed, name), and every
stream is consumed session by session from a fixed epoch, so a session's bars and chain are
the same whatever else was generated before, in whatever order a backfill runs, and a ticker's
path does not change when the universe around it does.

The model, per session t:

- a hidden market regime (bull / neutral / bear) following a Markov chain, each regime with
  its own drift and volatility level, recorded as ground truth;
- the market factor's volatility is the regime's level times a log-AR(1) stochastic
  volatility (clustering);
- sector factors, and per-ticker idiosyncratic returns with their own stochastic volatility;
- scheduled quarterly earnings per ticker with an overnight jump, which the option surface
  prices in ahead of time (the implied-volatility bump before earnings);
- option chains from ``chain_model`` with the implied variance equal to the expected variance
  to expiry given today's state, plus a regime-dependent variance risk premium and put skew.

Nothing here looks ahead: the chain on session t uses only the state at t.

Price levels: the path is scaled so that each ticker's close on a fixed reference session
(``SyntheticConfig.level_session``, 2025-06-30) equals its plausible level, from the packaged
table ``data/synthetic_price_levels.csv`` (approximate, hand-entered typical 2024-2025 prices;
see docs/data_formats.md) or, for a ticker not in it, a level drawn from the ticker's own
stream (lognormal around $100, clipped to $10-$600). The scale multiplies every price of the
ticker (open, high, low, close, the chain's spot); returns, volatilities, volumes, regimes and
correlations do not depend on it. The reference session is a constant, never "today", so a
session's data does not depend on when it is generated.

A :class:`Scenario` (``BUTTERQUANT_SYNTHETIC_SCENARIO``) changes the market from a date on -
the variance risk premium the chains price in, or the market factor's volatility - so a
drill or a test can watch a model trained before the change meet the market after it.
It is a knob for exercising drift, not part of the market's realism: without one (the
default) no code path changes and every session is identical to a market that never
heard of scenarios; with one, sessions before its date are still identical.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from importlib import resources

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from butterquant_dagster.core import calendar, settings
from butterquant_dagster.core.market.chain_model import model_chains
from butterquant_dagster.core.market.schemas import (
    DAILY_BARS,
    MARKET_TRUTH,
    conform,
)
from butterquant_dagster.core.market.seeding import keyed_rng

REGIMES = ("bull", "neutral", "bear")
TRADING_DAYS = 252.0
# Daily regime persistence; the remaining probability goes to the other two regimes.
_STAY = np.array([0.988, 0.980, 0.965])
_TO = np.array(
    [
        [0.0, 0.8, 0.2],
        [0.6, 0.0, 0.4],
        [0.3, 0.7, 0.0],
    ]
)
_DRIFT = np.array([0.20, 0.03, -0.30]) / TRADING_DAYS  # annual drift per regime
_VOL = np.array([0.12, 0.17, 0.30])  # annual market volatility per regime
_VRP = np.array([0.08, 0.12, 0.20])
_SKEW = np.array([0.08, 0.12, 0.18])
_SV_PHI, _SV_ETA = 0.97, 0.06  # market log-volatility AR(1)
_IDIO_PHI, _IDIO_ETA = 0.95, 0.08
_SECTOR_VOL = 0.10
_EARNINGS_EVERY = 63  # sessions, about a quarter
_OVERNIGHT_SHARE = 0.25  # share of a day's diffusive variance that arrives overnight
# Columns of each ticker's per-session draw block.
_RET, _VOLSHOCK, _EARN, _HIGH, _LOW, _VOLU = range(6)
_N_DRAWS = 6
PRICE_LEVELS_FILE = "synthetic_price_levels.csv"
# Level of a ticker not in the table: exp(normal(log median, sigma)), clipped.
_LEVEL_MEDIAN, _LEVEL_SIGMA, _LEVEL_RANGE = 100.0, 0.6, (10.0, 600.0)


SCENARIO_KINDS = ("vrp_shift", "vol_scale")


@dataclass(frozen=True)
class Scenario:
    """From ``start`` on: ``vrp_shift`` adds ``value`` to the variance risk premium of every
    chain (-0.4: options priced at 40 % less volatility premium than the regime's);
    ``vol_scale`` multiplies the market factor's volatility by ``value`` (returns and the
    volatility the chains see, so bars and options move together)."""

    kind: str
    value: float
    start: dt.date

    def __post_init__(self):
        if self.kind not in SCENARIO_KINDS:
            raise ValueError(
                f"synthetic scenario kind {self.kind!r}: expected one of {SCENARIO_KINDS}"
            )
        if not np.isfinite(self.value):
            raise ValueError(f"synthetic scenario {self.kind}: value {self.value} is not finite")
        if self.kind == "vrp_shift" and self.value <= -1.0:
            raise ValueError(
                f"synthetic scenario vrp_shift: {self.value} would price options at no or "
                "negative volatility (needs > -1)"
            )
        if self.kind == "vol_scale" and self.value <= 0:
            raise ValueError(f"synthetic scenario vol_scale: {self.value} must be > 0")

    @classmethod
    def parse(cls, text: str) -> Scenario | None:
        """``"<kind>:<value>@<YYYY-MM-DD>"``, e.g. ``"vrp_shift:-0.4@2025-06-02"``; "" is none."""
        text = (text or "").strip()
        if not text:
            return None
        try:
            kind, rest = text.split(":", 1)
            value, start = rest.split("@", 1)
            return cls(kind.strip(), float(value), dt.date.fromisoformat(start.strip()))
        except ValueError as exc:
            raise ValueError(
                f"BUTTERQUANT_SYNTHETIC_SCENARIO={text!r}: expected <kind>:<value>@<YYYY-MM-DD> "
                f"with kind in {SCENARIO_KINDS} ({exc})"
            ) from exc


@dataclass(frozen=True)
class SyntheticConfig:
    seed: int = settings.default("BUTTERQUANT_SEED")
    epoch: dt.date = dt.date(2015, 1, 2)
    rate: float = 0.04
    max_expiry_days: int = 90
    weekly_weeks: int = 6
    scenario: Scenario | None = None
    # The session whose close equals each ticker's price level (before the epoch: the epoch).
    level_session: dt.date = dt.date(2025, 6, 30)


@functools.cache
def price_levels() -> dict[str, float]:
    """The packaged table of plausible price levels: symbol -> dollars per share."""
    source = resources.files("butterquant_dagster") / "data" / PRICE_LEVELS_FILE
    with resources.as_file(source) as file:
        table = pd.read_csv(file, dtype={"symbol": str, "price_level": float})
    levels = dict(zip(table["symbol"].str.strip().str.upper(), table["price_level"], strict=True))
    bad = {s: v for s, v in levels.items() if not (np.isfinite(v) and v > 0)}
    if bad or len(levels) != len(table):
        raise ValueError(f"packaged {PRICE_LEVELS_FILE}: bad or duplicate rows {bad or ''}")
    return levels


def price_level(seed: int, symbol: str) -> float:
    """The close of ``symbol`` on the reference session: the table's level, or a level drawn
    from the ticker's own stream when the table does not have it."""
    level = price_levels().get(symbol)
    if level is not None:
        return float(level)
    z = keyed_rng(seed, "price_level", symbol).standard_normal()
    return float(np.clip(np.exp(np.log(_LEVEL_MEDIAN) + _LEVEL_SIGMA * z), *_LEVEL_RANGE))


def _ar1(shocks: np.ndarray, phi: float) -> np.ndarray:
    """x_t = phi x_{t-1} + shock_t along axis 0, started at 0."""
    return lfilter([1.0], [1.0, -phi], shocks, axis=0)


class SyntheticMarket:
    """Bars, chains and the hidden regime for a universe; see the module docstring."""

    def __init__(self, universe: pd.DataFrame, config: SyntheticConfig | None = None):
        self.config = config or SyntheticConfig()
        if not calendar.is_session(self.config.epoch):
            raise ValueError(f"synthetic epoch {self.config.epoch} is not an NYSE session")
        if not calendar.is_session(self.config.level_session):
            raise ValueError(
                f"synthetic level session {self.config.level_session} is not an NYSE session"
            )
        if universe.empty:
            raise ValueError("the synthetic market needs at least one ticker")
        self.symbols = universe["symbol"].astype(str).tolist()
        self.sectors = universe["sector"].astype(str).tolist()
        self._epoch_pos = calendar.session_position(self.config.epoch)
        self._level_index = max(
            calendar.session_position(self.config.level_session) - self._epoch_pos, 0
        )
        self._params = self._ticker_params()
        self._path: dict[str, np.ndarray] | None = None

    # ------------------------------------------------------------------ parameters
    def _ticker_params(self) -> dict[str, np.ndarray]:
        rows = []
        for symbol in self.symbols:
            r = keyed_rng(self.config.seed, "params", symbol)
            r.normal()  # was the initial price; still drawn so the draws after it stay put
            rows.append(
                [
                    price_level(self.config.seed, symbol),  # close on the level session
                    r.uniform(0.6, 1.6),  # market beta
                    np.exp(r.normal(np.log(0.24), 0.35)),  # idiosyncratic vol
                    r.uniform(0.0, 0.03) if r.uniform() < 0.6 else 0.0,  # dividend yield
                    r.uniform(0.2, 1.0),  # liquidity
                    r.uniform(0.03, 0.08),  # earnings move std
                    r.integers(0, _EARNINGS_EVERY),  # earnings phase
                    r.uniform(-0.03, 0.05),  # own skew offset
                    np.exp(r.normal(np.log(3e6), 1.0)),  # typical daily volume
                ]
            )
        a = np.array(rows).T
        names = ("level", "beta", "idio", "div", "liq", "earn_vol", "earn_phase", "skew", "adv")
        return dict(zip(names, a, strict=True))

    # ------------------------------------------------------------------ the path
    def _index(self, session: dt.date) -> int:
        pos = calendar.session_position(session) - self._epoch_pos
        if pos < 0:
            raise ValueError(
                f"session {session} is before the synthetic market's epoch {self.config.epoch}"
            )
        return pos

    def _simulate(self, n: int) -> dict[str, np.ndarray]:
        """Simulate sessions 0..n-1 since the epoch (a prefix of any longer simulation), and
        at least through the level session, whose closes anchor the price levels."""
        n = max(n, self._level_index + 1)
        seed = self.config.seed
        u = keyed_rng(seed, "regime").uniform(size=n)
        regime = np.empty(n, dtype=np.int8)
        state = 1
        cumulative_to = np.cumsum(_TO, axis=1)
        for i in range(n):
            if u[i] > _STAY[state]:
                move = (u[i] - _STAY[state]) / (1.0 - _STAY[state])
                state = int(np.searchsorted(cumulative_to[state], move, side="right"))
                state = min(state, 2)
            regime[i] = state
        market_shocks = keyed_rng(seed, "market").standard_normal((n, 2))
        log_sv = _ar1(_SV_ETA * market_shocks[:, 1], _SV_PHI)
        market_vol = _VOL[regime] * np.exp(log_sv)  # annualised
        plain_market_ret = _DRIFT[regime] + market_vol / np.sqrt(TRADING_DAYS) * market_shocks[:, 0]
        scenario = self.config.scenario
        if scenario is not None and scenario.kind == "vol_scale":
            market_vol = np.where(
                self._from_scenario(np.arange(n)), market_vol * scenario.value, market_vol
            )
        market_ret = _DRIFT[regime] + market_vol / np.sqrt(TRADING_DAYS) * market_shocks[:, 0]

        sector_names = sorted(set(self.sectors))
        sector_ret = np.column_stack(
            [
                _SECTOR_VOL
                / np.sqrt(TRADING_DAYS)
                * keyed_rng(seed, "sector", s).standard_normal(n)
                for s in sector_names
            ]
        )
        sector_of = np.array([sector_names.index(s) for s in self.sectors])

        draws = np.stack(
            [keyed_rng(seed, "ticker", s).standard_normal((n, _N_DRAWS)) for s in self.symbols],
            axis=1,
        )  # (n, tickers, draws)
        p = self._params
        idio_vol = p["idio"][None, :] * np.exp(_ar1(_IDIO_ETA * draws[:, :, _VOLSHOCK], _IDIO_PHI))
        day_sd = idio_vol / np.sqrt(TRADING_DAYS)
        earnings_day = ((np.arange(n)[:, None] + p["earn_phase"][None, :]) % _EARNINGS_EVERY) == 0
        jump = np.where(earnings_day, p["earn_vol"][None, :] * draws[:, :, _EARN], 0.0)
        diffusive = (
            p["beta"][None, :] * market_ret[:, None]
            + sector_ret[:, sector_of]
            + day_sd * draws[:, :, _RET]
        )
        total_sd = np.sqrt(
            (p["beta"][None, :] * market_vol[:, None]) ** 2 / TRADING_DAYS
            + _SECTOR_VOL**2 / TRADING_DAYS
            + day_sd**2
        )
        log_ret = diffusive + jump
        log_ret[0] = 0.0
        cumulative = np.cumsum(log_ret, axis=0)
        # Anchor on the level session's close as the market without a scenario has it, so a
        # scenario never moves the sessions before its date (zero without a scenario).
        scenario_shift = market_ret - plain_market_ret
        scenario_shift[0] = 0.0
        ref = self._level_index
        anchor = cumulative[ref] - p["beta"] * scenario_shift[: ref + 1].sum()
        close = p["level"][None, :] * np.exp(cumulative - anchor[None, :])
        prev_close = np.vstack([close[:1], close[:-1]])
        overnight = jump + _OVERNIGHT_SHARE * diffusive
        open_ = prev_close * np.exp(overnight)
        open_[0] = close[0]
        range_sd = total_sd * 0.6
        high = np.maximum(open_, close) * np.exp(np.abs(draws[:, :, _HIGH]) * range_sd)
        low = np.minimum(open_, close) * np.exp(-np.abs(draws[:, :, _LOW]) * range_sd)
        surprise = np.abs(log_ret) / np.maximum(total_sd, 1e-9)
        volume = p["adv"][None, :] * np.exp(0.3 * draws[:, :, _VOLU]) * (0.7 + 0.3 * surprise)
        return {
            "regime": regime,
            "market_ret": market_ret,
            "market_vol": market_vol,
            "idio_vol": idio_vol,
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "prev_close": prev_close,
            "volume": np.round(volume),
        }

    def _path_until(self, n: int) -> dict[str, np.ndarray]:
        if self._path is None or len(self._path["regime"]) < n:
            self._path = self._simulate(n)
        return self._path

    def _from_scenario(self, index: np.ndarray) -> np.ndarray:
        """Whether each session index is on or after the scenario's start."""
        return index >= self._scenario_index()

    def _scenario_index(self) -> int:
        """The first session index the scenario applies to (the session on or after its
        start; 0 when it starts before the epoch)."""
        start = self.config.scenario.start
        session = start if calendar.is_session(start) else calendar.next_session(start)
        return max(calendar.session_position(session) - self._epoch_pos, 0)

    # ------------------------------------------------------------------ public tables
    def truth(self, sessions: list[dt.date]) -> pd.DataFrame:
        """The hidden regime and market factor per session (ground truth for evaluation)."""
        idx = np.array([self._index(s) for s in sessions], dtype=int)
        path = self._path_until(int(idx.max()) + 1 if len(idx) else 0)
        frame = pd.DataFrame(
            {
                "session": pd.to_datetime(sessions),
                "regime": [REGIMES[r] for r in path["regime"][idx]],
                "market_return": path["market_ret"][idx],
                "market_vol": path["market_vol"][idx],
            }
        )
        return conform(frame, MARKET_TRUTH, origin="synthetic")

    def bars(self, sessions: list[dt.date]) -> pd.DataFrame:
        idx = np.array([self._index(s) for s in sessions], dtype=int)
        path = self._path_until(int(idx.max()) + 1 if len(idx) else 0)
        n_sym = len(self.symbols)
        first = idx == 0
        # A total-return index anchored at the epoch (dividends reinvested), so it does not
        # depend on how far the path was simulated.
        adj = path["close"][idx] * np.exp(np.outer(idx, self._params["div"]) / TRADING_DAYS)
        frame = pd.DataFrame(
            {
                "session": np.repeat(pd.to_datetime(sessions).to_numpy(), n_sym),
                "symbol": np.tile(self.symbols, len(idx)),
                "open": path["open"][idx].ravel(),
                "high": path["high"][idx].ravel(),
                "low": path["low"][idx].ravel(),
                "close": path["close"][idx].ravel(),
                "adj_close": adj.ravel(),
                "prev_close": np.where(
                    np.repeat(first, n_sym), np.nan, path["prev_close"][idx].ravel()
                ),
                "volume": path["volume"][idx].ravel(),
                "source": "synthetic",
            }
        )
        for column in ("open", "high", "low", "close", "adj_close", "prev_close"):
            frame[column] = frame[column].round(4)
        return conform(frame, DAILY_BARS, origin="synthetic")

    def underlyings(self, session: dt.date) -> pd.DataFrame:
        """The volatility state of every ticker at the close of ``session``."""
        i = self._index(session)
        path = self._path_until(i + 1)
        p = self._params
        regime = int(path["regime"][i])
        market_vol = path["market_vol"][i]
        vrp = _VRP[regime]
        scenario = self.config.scenario
        if scenario is not None and scenario.kind == "vrp_shift" and i >= self._scenario_index():
            vrp = vrp + scenario.value
        vol_now = np.sqrt((p["beta"] * market_vol) ** 2 + _SECTOR_VOL**2 + path["idio_vol"][i] ** 2)
        long_market = float(np.dot(_VOL, [0.45, 0.35, 0.20]))
        vol_long = np.sqrt((p["beta"] * long_market) ** 2 + _SECTOR_VOL**2 + p["idio"] ** 2)
        sessions_to_earnings = (-(i + p["earn_phase"])) % _EARNINGS_EVERY
        sessions_to_earnings = np.where(
            sessions_to_earnings == 0, _EARNINGS_EVERY, sessions_to_earnings
        )
        return pd.DataFrame(
            {
                "symbol": self.symbols,
                "spot": np.round(path["close"][i], 4),
                "vol_now": vol_now,
                "vol_long": vol_long,
                "vrp": vrp,
                "skew": np.clip(_SKEW[regime] + p["skew"], 0.03, 0.25),
                "dividend_yield": p["div"],
                "liquidity": p["liq"],
                # Sessions to calendar days, roughly 7/5, earnings reported before the open.
                "event_days": np.ceil(sessions_to_earnings * 7.0 / 5.0),
                "event_vol": p["earn_vol"],
            }
        )

    def chains(self, session: dt.date) -> pd.DataFrame:
        rng = keyed_rng(self.config.seed, "chain", session.isoformat())
        return model_chains(
            session,
            self.underlyings(session),
            rate=self.config.rate,
            rng=rng,
            source="synthetic",
            modelled=True,
            max_days=self.config.max_expiry_days,
            weekly_weeks=self.config.weekly_weeks,
        )
