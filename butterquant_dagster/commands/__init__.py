"""The commands of ``butterquant``, one module each, with ``add_parser(sub)`` registering the
command and its handler; :mod:`butterquant_dagster.cli` assembles them.

The modules whose names start with an underscore are what several commands share (the
instance, running a job, the dates, printing, the stores); a command imports those, never
another command.
"""
