"""The operations guides' `analyze` example works as written on the default install: the
default universe (BUTTERQUANT_UNIVERSE_SIZE unset, 50 tickers) holds the guides' tickers,
and a bar history long enough for the regime is all `analyze` needs."""

from __future__ import annotations

import json

import pytest

from butterquant_dagster.cli import EXIT_OK, main
from butterquant_dagster.core.storage.lake import Lake

pytestmark = pytest.mark.slow

SESSION = "2025-09-30"
GUIDE_TICKERS = ["AAPL", "MSFT", "NVDA", "GOOGL", "TSLA", "BRK.B"]


@pytest.fixture
def default_install(isolated_env, tmp_path, monkeypatch) -> Lake:
    """Bars of the default universe from 2023-06 (the regime needs 504 sessions before the
    analysed one), through the bars stage of `butterquant backfill`."""
    monkeypatch.chdir(tmp_path)  # no ./.env of the working tree
    for name in ("BUTTERQUANT_UNIVERSE_SIZE", "BUTTERQUANT_UNIVERSE_SYMBOLS"):
        monkeypatch.delenv(name, raising=False)  # the default universe, as installed
    monkeypatch.delenv("BUTTERQUANT_UNIVERSE_FILE", raising=False)
    argv = ["backfill", "--assets", "bars", "--start", "2023-06-01", "--end", SESSION, "--json"]
    assert main(argv) == EXIT_OK
    return Lake(isolated_env)


def test_analyze_aapl_msft_nvda_with_reasoning_on_the_default_install(default_install, capsys):
    universe = default_install.read("universe")
    assert len(universe) == 50
    assert universe["symbol"].head(6).tolist() == GUIDE_TICKERS
    capsys.readouterr()

    code = main(["analyze", "--tickers", "AAPL,MSFT,NVDA", "--show-reasoning", "--date", SESSION])
    out, err = capsys.readouterr()
    assert code == EXIT_OK, err
    printed = json.loads(out)
    assert sorted(printed["decisions"]) == ["AAPL", "MSFT", "NVDA"]
    for symbol, decision in printed["decisions"].items():
        assert decision["action"] in {"buy", "hold", "sell"}, symbol
        assert "regime" in decision["reasoning"], symbol
    assert printed["market_regime"] in {"bull", "neutral", "bear"}

    # The guides' other tickers, the class share spelled in lower case too.
    code = main(["analyze", "--tickers", "googl,TSLA,brk.b", "--date", SESSION])
    out, err = capsys.readouterr()
    assert code == EXIT_OK, err
    assert sorted(json.loads(out)["decisions"]) == ["BRK.B", "GOOGL", "TSLA"]

    # Their prices are the plausible levels, not the old draws (GOOGL near 1,000).
    closes = default_install.read("daily_bars", [SESSION]).set_index("symbol")["close"]
    assert closes[GUIDE_TICKERS].between(20.0, 2000.0).all()
    on_level = default_install.read("daily_bars", ["2025-06-30"]).set_index("symbol")["close"]
    assert on_level["AAPL"] == 205.0 and on_level["GOOGL"] == 176.0
