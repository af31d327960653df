"""`analyze` and `backtest` with tickers outside the universe: every known ticker's decision
is printed, each unknown one is named on stderr with the setting that adds it, exit 2."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from butterquant_dagster.cli import EXIT_BAD_INPUT, EXIT_OK, main
from butterquant_dagster.core.storage.lake import Lake

SESSION = "2025-06-03"
UNIVERSE = ["MMM", "AOS", "ABT"]


@pytest.fixture
def lake(isolated_env, tmp_path, monkeypatch) -> Lake:
    """A lake whose SESSION is analysed for a three-ticker universe (no run needed)."""
    monkeypatch.chdir(tmp_path)  # no ./.env of the working tree
    monkeypatch.setenv("BUTTERQUANT_UNIVERSE_SIZE", "3")
    store = Lake(isolated_env)
    store.write(
        "universe",
        pd.DataFrame(
            {"symbol": UNIVERSE, "name": UNIVERSE, "sector": "Industrials", "generated": False}
        ),
    )
    store.write(
        "trading_decisions",
        pd.DataFrame(
            {
                "symbol": UNIVERSE,
                "action": ["buy", "hold", "sell"],
                "confidence": [0.6, 0.1, 0.4],
                "reasoning": ["trend up", "flat", "trend down"],
            }
        ),
        SESSION,
    )
    store.write(
        "market_regime",
        pd.DataFrame(
            {
                "market_regime": ["bear"],
                "regime_confidence": [0.96],
                "p_bear": [0.96],
                "p_neutral": [0.03],
                "p_bull": [0.01],
            }
        ),
        SESSION,
    )
    store.write("daily_bars", pd.DataFrame({"symbol": UNIVERSE, "close": [1.0, 2.0, 3.0]}), SESSION)
    return store


def test_analyze_prints_the_known_and_names_the_unknown(lake, capsys):
    argv = ["analyze", "--tickers", "MMM,msft,ABT,brk.b,ZZZZ", "--date", SESSION]
    assert main([*argv, "--show-reasoning"]) == EXIT_BAD_INPUT
    out, err = capsys.readouterr()
    printed = json.loads(out)
    assert list(printed["decisions"]) == ["ABT", "MMM"]
    assert printed["decisions"]["MMM"]["reasoning"] == "trend up"
    assert printed["market_regime"] == "bear"
    lines = err.splitlines()
    assert lines[0] == f"butterquant: error: no decision on {SESSION} for 3 of 5 ticker(s):"
    assert lines[1].startswith("  MSFT: not in the 3-ticker universe")
    assert "BUTTERQUANT_UNIVERSE_SIZE=3" in lines[1]
    assert lines[2].startswith("  BRK.B: not in the 3-ticker universe")
    assert lines[3].startswith("  ZZZZ: not in the universe file")
    assert "BUTTERQUANT_UNIVERSE_FILE" in lines[3]
    assert lines[4].startswith(
        "  to add MSFT, BRK.B: BUTTERQUANT_UNIVERSE_SYMBOLS=MMM,AOS,ABT,MSFT,BRK.B"
    )
    assert lines[4].endswith(f"`butterquant backfill --start {SESSION} --end {SESSION}`")


def test_analyze_of_known_tickers_only_exits_0(lake, capsys):
    assert main(["analyze", "--tickers", "AOS", "--date", SESSION]) == EXIT_OK
    out, err = capsys.readouterr()
    assert json.loads(out)["decisions"] == {"AOS": {"action": "hold", "confidence": 0.1}}
    assert err == ""


def test_analyze_portfolio_export_still_prints_the_known(lake, capsys):
    argv = ["analyze", "--tickers", "MMM,NVDA", "--date", SESSION, "--portfolio"]
    assert main(argv) == EXIT_BAD_INPUT
    out, err = capsys.readouterr()
    assert list(json.loads(out)["decisions"]) == ["MMM"]
    assert "NVDA: not in the 3-ticker universe" in err


def test_analyze_of_only_unknown_tickers_prints_no_json(lake, capsys):
    assert main(["analyze", "--tickers", "NVDA", "--date", SESSION]) == EXIT_BAD_INPUT
    out, err = capsys.readouterr()
    assert out == ""
    assert "for 1 of 1 ticker(s)" in err and "NVDA:" in err


def test_analyze_of_an_empty_ticker_list_is_bad_input(lake, capsys):
    assert main(["analyze", "--tickers", " , ", "--date", SESSION]) == EXIT_BAD_INPUT
    assert "--tickers names no ticker" in capsys.readouterr().err


def test_backtest_names_unknown_tickers_the_same_way(lake, capsys):
    argv = ["backtest", "--tickers", "MMM,NVDA,B@D", "--start-date", SESSION]
    assert main([*argv, "--end-date", SESSION]) == EXIT_BAD_INPUT
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert lines[0] == "butterquant: error: 2 of 3 ticker(s) not in the universe:"
    assert lines[1].startswith("  NVDA: not in the 3-ticker universe")
    assert lines[2] == "  B@D: not a ticker symbol (letters, optionally a class suffix as in BRK.B)"
    assert lines[3].startswith("  to add NVDA: BUTTERQUANT_UNIVERSE_SYMBOLS=MMM,AOS,ABT,NVDA")
