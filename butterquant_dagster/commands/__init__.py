"""Commands of ``butterquant`` that have a module of their own (the CLI's plumbing and the
older commands live in ``butterquant_dagster.cli``)."""
