"""The IB client seam: which client ``auto`` picks, what forcing one does, and that the two
clients offer every name the broker and the market source use."""

from __future__ import annotations

import importlib
import sys

import pytest

from butterquant_dagster.core.brokers import ib_client

# What core/brokers/ibkr.py and core/market/ibkr.py call on the client module.
USED = ("IB", "Contract", "ComboLeg", "LimitOrder", "Option", "Stock", "ExecutionFilter")


def absent(monkeypatch, name: str) -> None:
    """Make ``import name`` fail as it does when the package is not installed."""
    monkeypatch.setitem(sys.modules, name, None)


def test_auto_prefers_the_maintained_fork(monkeypatch):
    monkeypatch.delenv(ib_client.SETTING, raising=False)
    assert ib_client.choice() == "auto"
    assert ib_client.load().__name__ == "ib_async"


def test_auto_falls_back_to_ib_insync_without_ib_async(monkeypatch):
    monkeypatch.setenv(ib_client.SETTING, "auto")
    absent(monkeypatch, "ib_async")
    assert ib_client.load().__name__ == "ib_insync"


@pytest.mark.parametrize("name", ["ib_async", "ib_insync", "IB_INSYNC"])
def test_the_setting_forces_a_client(monkeypatch, name):
    monkeypatch.setenv(ib_client.SETTING, name)
    module = ib_client.load()
    assert module.__name__ == name.lower()
    assert ib_client.describe(module) == f"{name.lower()} {module.__version__}"


@pytest.mark.parametrize("name", ["ib_async", "ib_insync"])
def test_a_forced_client_that_is_not_installed_names_the_setting_and_package(monkeypatch, name):
    monkeypatch.setenv(ib_client.SETTING, name)
    absent(monkeypatch, name)
    with pytest.raises(ib_client.IBClientUnavailable) as error:
        ib_client.load()
    text = str(error.value)
    assert f"BUTTERQUANT_IB_CLIENT={name}" in text
    assert f"the package {name} is not installed" in text and f"pip install {name}" in text


def test_auto_without_any_client_says_what_to_install(monkeypatch):
    monkeypatch.setenv(ib_client.SETTING, "auto")
    absent(monkeypatch, "ib_async")
    absent(monkeypatch, "ib_insync")
    with pytest.raises(ib_client.IBClientUnavailable, match="pip install ib_async"):
        ib_client.load()


def test_an_unknown_value_is_refused(monkeypatch):
    monkeypatch.setenv(ib_client.SETTING, "ibapi")
    with pytest.raises(ValueError, match="BUTTERQUANT_IB_CLIENT='ibapi': expected one of auto"):
        ib_client.load()


def test_a_broken_install_is_not_hidden_behind_the_other_client(monkeypatch):
    """ib_async present but a dependency of it missing: its own error, no silent fallback."""
    monkeypatch.setenv(ib_client.SETTING, "auto")
    real = importlib.import_module

    def import_module(name, *args):
        if name == "ib_async":
            raise ModuleNotFoundError("No module named 'eventkit'", name="eventkit")
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", import_module)
    with pytest.raises(ModuleNotFoundError, match="eventkit"):
        ib_client.load()


@pytest.mark.parametrize("name", ib_client.CLIENTS)
def test_both_clients_offer_what_the_adapters_use(name):
    module = importlib.import_module(name)
    missing = [attr for attr in USED if not hasattr(module, attr)]
    assert missing == []
    assert issubclass(module.RequestError, Exception)
    assert module.RequestError is module.wrapper.RequestError
    assert module.util.UNSET_DOUBLE == ib_client.UNSET_DOUBLE


def test_the_setting_is_read_at_each_load_not_at_import(monkeypatch):
    from butterquant_dagster.core.brokers.ibkr import IBKRBroker

    monkeypatch.setenv(ib_client.SETTING, "ib_insync")
    assert IBKRBroker().client.startswith("ib_insync ")
    monkeypatch.setenv(ib_client.SETTING, "ib_async")
    assert IBKRBroker().client.startswith("ib_async ")
