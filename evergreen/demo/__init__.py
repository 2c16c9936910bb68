"""The demo harness: a user of the code location, as `make demo`, the end-to-end tests and the
loop benchmarks drive it.

The one place in the library allowed to load the code location (``definitions``, through
``evergreen.demo.code_location``); nothing under ``assets/`` or ``sensors/`` is imported here
directly. It drives the loop through Dagster's public API: the code location's own sensors and
automation conditions, evaluated in-process on the instance the UI reads (``driver``).
"""
