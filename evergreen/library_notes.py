"""Silence libraries' notes to their own developers in Evergreen's terminal and run logs.

A deprecation raised inside a library (pathspec, ibis, litestar, Evidently's own modules, ...),
Dagster's beta and preview notices, Feast's "experimental" on-demand views: nothing the person
reading can change. A deprecation that Evergreen's own code sets off is still shown (the
warning is attributed to the calling module). Feast installs a filter of its own when imported
(``simplefilter("once", DeprecationWarning)``, put in front of every earlier one), so this runs
again once Feast is imported.
"""

import warnings

_OURS = r"(evergreen|assets|sensors|bentos|definitions)(\.|$)"
_NOTES = (
    r".* is currently in (beta|preview)",
    r"On demand feature view is an experimental feature",
)


def silence_library_notes() -> None:
    """Put the filters in front of the warning filters (the last one added wins)."""
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("default", category=DeprecationWarning, module=_OURS)
    for message in _NOTES:
        warnings.filterwarnings("ignore", message=message)
