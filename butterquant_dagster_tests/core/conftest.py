"""Fixtures of the core tests: ``ib_client`` runs a fake-TWS test once per IB client."""

from butterquant_dagster_tests.fake_tws import ib_client  # noqa: F401 (a fixture)
