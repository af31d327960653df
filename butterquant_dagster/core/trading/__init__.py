"""The 20-slot butterfly portfolio: rules, risk checks, order building and the ledger."""
