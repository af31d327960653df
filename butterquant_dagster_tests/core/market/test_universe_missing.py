"""Why a requested ticker is missing, and the setting that adds it to the universe."""

from butterquant_dagster.core.market.universe import missing_tickers, read_universe_file

# The first six of the default order: the guides' AAPL, MSFT, NVDA, GOOGL, TSLA, BRK.B; KO,
# XOM and BF.B are in the file but not among them.
FIRST_SIX = list(read_universe_file()["symbol"].head(6))


def _missing(requested, available=None, **settings):
    settings = {"universe_file": "", "universe_size": 6, "universe_symbols": [], **settings}
    return missing_tickers(
        requested,
        set(FIRST_SIX) if available is None else available,
        FIRST_SIX,
        what="decision on 2026-12-04",
        backfill="butterquant backfill --start 2026-01-02 --end 2026-12-04",
        **settings,
    )


def test_a_known_ticker_is_not_missing():
    assert _missing([FIRST_SIX[0].lower()]).reasons == {}
    assert _missing([FIRST_SIX[0]]).fix is None


def test_a_ticker_of_the_file_outside_the_size_names_both_settings():
    missing = _missing(["ko", "XOM", "KO"])
    assert list(missing.reasons) == ["KO", "XOM"]  # upper-cased, once, in order
    assert "6-ticker universe" in missing.reasons["KO"]
    assert "BUTTERQUANT_UNIVERSE_SIZE=6" in missing.reasons["KO"]
    assert missing.fix.startswith(f"BUTTERQUANT_UNIVERSE_SYMBOLS={','.join(FIRST_SIX)},KO,XOM")
    assert "BUTTERQUANT_UNIVERSE_SIZE=0" in missing.fix
    assert missing.fix.endswith("`butterquant backfill --start 2026-01-02 --end 2026-12-04`")
    assert missing.lines()[-1].startswith("  to add KO, XOM: BUTTERQUANT_UNIVERSE_SYMBOLS=")


def test_a_class_share_is_a_ticker():
    assert "6-ticker universe" in _missing(["bf.b"]).reasons["BF.B"]


def test_a_ticker_outside_the_file_names_the_universe_file_setting():
    missing = _missing(["ZZZZ"])
    assert "not in the universe file" in missing.reasons["ZZZZ"]
    assert "BUTTERQUANT_UNIVERSE_FILE" in missing.reasons["ZZZZ"]
    assert missing.fix is None  # no symbols line: the file does not have it


def test_a_malformed_symbol_is_named_as_such():
    assert _missing(["B@D"]).reasons["B@D"].startswith("not a ticker symbol")


def test_a_universe_ticker_without_the_data_is_too_short_a_history():
    missing = _missing([FIRST_SIX[1]], available=set(FIRST_SIX[:1]))
    reason = missing.reasons[FIRST_SIX[1]]
    assert reason.startswith("in the universe but has no decision on 2026-12-04")
    assert missing.fix is None


def test_symbols_set_but_not_backfilled_asks_for_the_backfill():
    missing = _missing(["KO"], universe_symbols=["KO"])
    assert "BUTTERQUANT_UNIVERSE_SYMBOLS lists it" in missing.reasons["KO"]
    assert "butterquant backfill --start 2026-01-02" in missing.reasons["KO"]


def test_with_symbols_configured_the_fix_appends_to_them():
    missing = _missing(["XOM"], universe_symbols=FIRST_SIX)
    assert "the tickers of BUTTERQUANT_UNIVERSE_SYMBOLS" in missing.reasons["XOM"]
    assert missing.fix.startswith(f"BUTTERQUANT_UNIVERSE_SYMBOLS={','.join(FIRST_SIX)},XOM ")
    assert "BUTTERQUANT_UNIVERSE_SIZE=0" not in missing.fix  # symbols override the size


def test_a_custom_universe_file_is_named(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text("symbol,name,sector\nAAA,A,Energy\nBBB,B,Energy\n")
    missing = missing_tickers(
        ["CCC", "BBB"], {"AAA"}, ["AAA"], universe_file=str(path), universe_size=1,
        universe_symbols=[],
    )  # fmt: skip
    assert str(path) in missing.reasons["CCC"]
    assert "BUTTERQUANT_UNIVERSE_SIZE=1" in missing.reasons["BBB"]
    assert missing.fix.startswith("BUTTERQUANT_UNIVERSE_SYMBOLS=AAA,BBB ")


def test_settings_are_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("BUTTERQUANT_UNIVERSE_SIZE", "6")
    monkeypatch.setenv("BUTTERQUANT_UNIVERSE_SYMBOLS", "")
    monkeypatch.delenv("BUTTERQUANT_UNIVERSE_FILE", raising=False)
    missing = missing_tickers(["KO"], set(FIRST_SIX), FIRST_SIX)
    assert "BUTTERQUANT_UNIVERSE_SIZE=6" in missing.reasons["KO"]
