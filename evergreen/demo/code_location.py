"""The code location as its users see it: loaded once, assets looked up by key.

The one module in the library that imports ``definitions``; the demo's steps and the command
line's ``ingest`` reach assets through here, so they run exactly what the UI shows (policies
and code references included), and nothing in the library imports ``assets`` or ``sensors``
directly.
"""

from __future__ import annotations

from dagster import AssetsDefinition, Definitions


def code_location() -> Definitions:
    """The code location's definitions (``definitions.py``), imported on first use."""
    from definitions import defs

    return defs


def assets_named(*names: str) -> list[AssetsDefinition]:
    """The code location's assets of these keys, in that order, as declared: not bound to the
    code location's resources, so a run binds the home it works on (``runs``, ``driver``)."""
    declared = {
        key.to_user_string(): asset
        for asset in code_location().assets or []
        if isinstance(asset, AssetsDefinition)
        for key in asset.keys
    }
    return [declared[name] for name in names]
