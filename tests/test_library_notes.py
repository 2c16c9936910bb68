"""Libraries' notes to their own developers stay out of the terminal; Evergreen's own don't."""

import warnings

from evergreen.library_notes import silence_library_notes


def _shown(message: str, category: type[Warning], module: str) -> bool:
    with warnings.catch_warnings(record=True) as caught:
        silence_library_notes()
        warnings.warn_explicit(message, category, f"{module}.py", 1, module=module)
    return bool(caught)


def test_library_deprecations_are_silenced_but_evergreens_own_are_shown():
    assert not _shown("GitWildMatchPattern is deprecated", DeprecationWarning, "pathspec.pattern")
    assert not _shown("fetch_arrow_table() is deprecated", DeprecationWarning, "ibis.backends")
    assert _shown("old call", DeprecationWarning, "evergreen.features.feast_client")
    assert _shown("old call", DeprecationWarning, "assets.models")


def test_feast_and_dagster_notices_are_silenced_other_warnings_are_not():
    feast = "On demand feature view is an experimental feature. This API is stable, but ..."
    assert not _shown(feast, RuntimeWarning, "feast.feature_store")
    assert not _shown("Function `x` is currently in beta", UserWarning, "dagster._core")
    assert _shown("overflow encountered", RuntimeWarning, "numpy")
