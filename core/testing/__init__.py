"""Conformance checks for plugin authors: every detector, network and dataset, built-in or third-party.

From pytest::

    from sadkit.testing import assert_dataset_conforms, assert_detector_conforms, assert_network_conforms

    def test_my_plugins():
        assert_detector_conforms("mydetector")                 # a registered name, or the class itself
        assert_network_conforms("my_mlp", input_shape=(12,))   # or the factory itself
        assert_dataset_conforms("my_data", {"path": "rows.csv"})

From the command line: ``sadkit plugins check NAME [--group detectors|networks|datasets]`` (exit 0 when every
check passes). Each ``check_*`` function returns one :class:`CheckResult` per check and never raises; each
``assert_*_conforms`` raises ``AssertionError`` naming every failed check with its reason.
"""

from __future__ import annotations

from typing import Any

from ._runner import CheckResult
from .datasets import DATASET_CHECKS, assert_dataset_conforms, check_dataset
from .detectors import CHECKS, assert_detector_conforms, check_detector, make_data
from .networks import NETWORK_CHECKS, assert_network_conforms, check_network

#: the checks of each group, in the order they run
GROUP_CHECKS = {"detectors": CHECKS, "networks": NETWORK_CHECKS, "datasets": DATASET_CHECKS}


def check_plugin(
    name: str,
    group: str | None = None,
    params: dict[str, Any] | None = None,
    *,
    input_shape: tuple[int, ...] | None = None,
) -> tuple[str, list[CheckResult]]:
    """The checks of the registered plugin ``name``: ``(group, results)``.

    Args:
        group: ``detectors``, ``networks`` or ``datasets``; found from the name when only one group has it.
        params: the plugin's parameters (a detector's constructor, a network factory's keywords, a dataset's).
        input_shape: the sample shape for detectors and networks (default: ``(5,)``, or the network
            factory's ``example_input_shape``).

    Raises:
        PluginNotFoundError: no plugin of that name, or one in several groups and no ``group`` given.
        PluginLoadError, DuplicatePluginError: the plugin cannot be used at all.
    """
    from .. import registry
    from ..errors import PluginNotFoundError

    if group is None:
        found = registry.groups_of(name)
        if not found:
            installed = "; ".join(f"{g}: {', '.join(registry.names(g)) or 'none'}" for g in registry.GROUPS)
            raise PluginNotFoundError(f"no plugin named {name!r}; installed: {installed}")
        if len(found) > 1:
            raise PluginNotFoundError(
                f"{name!r} names a plugin in {' and '.join(found)}; choose one with --group {'|'.join(found)}"
            )
        group = found[0]
    group = registry._group_key(group).rsplit(".", 1)[-1]
    registry.get(group, name)  # an unknown, broken or doubly claimed plugin is an error, not a list of failures
    if group == "detectors":
        return group, check_detector(name, params, input_shape or (5,))
    if group == "networks":
        return group, check_network(name, params, input_shape)
    return group, check_dataset(name, params)


__all__ = [
    "CHECKS",
    "DATASET_CHECKS",
    "GROUP_CHECKS",
    "NETWORK_CHECKS",
    "CheckResult",
    "assert_dataset_conforms",
    "assert_detector_conforms",
    "assert_network_conforms",
    "check_dataset",
    "check_detector",
    "check_network",
    "check_plugin",
    "make_data",
]
