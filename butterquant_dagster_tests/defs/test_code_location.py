"""Smoke tests of the code location as its tools load it: the real webserver on 127.0.0.1
and `dg`."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
QUERY = """
{
  assetNodes { assetKey { path } groupName hasAssetChecks }
}
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _post(url: str, payload: dict) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.mark.slow
def test_webserver_lists_the_market_assets(tmp_path):
    home = tmp_path / "data" / "dagster"
    home.mkdir(parents=True)
    shutil.copy(REPO / "instance" / "dagster.yaml", home / "dagster.yaml")
    port = _free_port()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "BUTTERQUANT_DATA_DIR": str(tmp_path / "data"),
    }
    webserver = Path(sys.executable).with_name("dagster-webserver")
    process = subprocess.Popen(
        [str(webserver), "-h", "127.0.0.1", "-p", str(port), "-w", "workspace.yaml"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        nodes = None
        while time.monotonic() < deadline:
            assert process.poll() is None, process.stdout.read().decode()[-3000:]
            try:
                answer = _post(f"{base}/graphql", {"query": QUERY})
                nodes = answer.get("data", {}).get("assetNodes")
                if nodes:
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(1.0)  # waiting for a child process to start, not for market time
        assert nodes, "the webserver did not serve the asset graph within 180 s"
        by_name = {"/".join(n["assetKey"]["path"]): n for n in nodes}
        assert {"universe", "daily_bars", "option_chains", "market_truth"} <= set(by_name)
        assert by_name["daily_bars"]["groupName"] == "market"
        assert by_name["daily_bars"]["hasAssetChecks"] is True
        assert by_name["option_chains"]["hasAssetChecks"] is True
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.mark.slow
def test_dg_loads_the_code_location(tmp_path):
    """`[tool.dg]` in pyproject.toml points dg at the same definitions."""
    dg = Path(sys.executable).with_name("dg")
    env = {**os.environ, "BUTTERQUANT_DATA_DIR": str(tmp_path / "data")}
    completed = subprocess.run(
        [str(dg), "list", "defs", "--json"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    listed = json.loads(completed.stdout)
    assets = {a["asset_key"]: a for a in listed["assets"]}
    expected = {
        "universe",
        "daily_bars",
        "option_chains",
        "market_truth",
        "butterfly_candidates",
        "scan_skips",
        "iv_surface",
        "scan_rankings",
        "candidate_outcomes",
        "regime_model",
        "market_regime",
        "signal_ensemble",
        "trading_decisions",
        "candidate_features",
        "ai_probabilities",
        "training_set",
        "probability_model",
        "probability_model_champion",
        "target_orders",
        "orders",
        "fills",
        "positions",
        "trade_journal",
        "performance_report",
        "drift_report",
        "daily_report",
        "weekly_report",
        "monthly_report",
        "backtest",
        "system_health",
        "warehouse_backup",
        "data_retention",
    }
    assert expected == set(assets)
    assert set(assets["target_orders"]["dependency_keys"]) >= {"scan_rankings", "option_chains"}
    assert set(assets["positions"]["dependency_keys"]) >= {"fills", "option_chains"}
    assert set(assets["option_chains"]["dependency_keys"]) == {"daily_bars", "universe"}
    # market 16, scan 5, model promotion 5 (parity, data, champion, gates, yield gates),
    # ensemble gates 1, champion age 1, ledger vs broker 1, health 7
    assert len(listed["asset_checks"]) == 16 + 5 + 5 + 1 + 1 + 1 + 7
    assert "orders:ledger_matches_broker" in {c["key"] for c in listed["asset_checks"]}
