"""The plugin registry: detectors, networks and datasets found through entry points (stevedore).

This is the only module that imports stevedore. Groups are ``sadkit.detectors``,
``sadkit.networks`` and ``sadkit.datasets``. An unknown name is an error listing the installed
names; a plugin that fails to import is reported with its distribution and the error; two
distributions claiming one name is an error naming both.
"""

from __future__ import annotations

import importlib.metadata
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from stevedore import ExtensionManager

from .errors import DuplicatePluginError, PluginLoadError, PluginNotFoundError

GROUPS: dict[str, str] = {
    "detectors": "sadkit.detectors",
    "networks": "sadkit.networks",
    "datasets": "sadkit.datasets",
}


@dataclass(frozen=True)
class PluginInfo:
    """One registered entry point."""

    group: str
    name: str
    value: str
    distribution: str
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if d["error"] is None:
            del d["error"]
        return d


@dataclass
class _Group:
    plugins: dict[str, Any]
    infos: list[PluginInfo]


_loaded: dict[str, _Group] = {}


def _group_key(group: str) -> str:
    if group in GROUPS:
        return GROUPS[group]
    if group in GROUPS.values():
        return group
    raise PluginNotFoundError(f"unknown plugin group {group!r}; the groups are {', '.join(GROUPS)}")


def _distributions(namespace: str) -> dict[tuple[str, str], list[str]]:
    """(name, value) -> the distributions declaring that entry point."""
    owners: dict[tuple[str, str], list[str]] = {}
    for dist in importlib.metadata.distributions():
        dist_name = dist.metadata["Name"] or "?"
        for ep in dist.entry_points:
            if ep.group == namespace:
                names = owners.setdefault((ep.name, ep.value), [])
                if dist_name not in names:
                    names.append(dist_name)
    return owners


def _load_group(group: str) -> _Group:
    namespace = _group_key(group)
    if namespace in _loaded:
        return _loaded[namespace]
    failures: dict[tuple[str, str], BaseException] = {}

    def on_failure(_manager: Any, entry_point: Any, error: BaseException) -> None:
        failures[(entry_point.name, entry_point.value)] = error

    manager = ExtensionManager(namespace, invoke_on_load=False, on_load_failure_callback=on_failure)
    owners = _distributions(namespace)
    infos: list[PluginInfo] = []
    plugins: dict[str, Any] = {}
    for ep in manager.list_entry_points():
        error = failures.get((ep.name, ep.value))
        # one row per declaring distribution, so the same entry point shipped twice is a duplicate
        for dist in owners.get((ep.name, ep.value), ["?"]):
            infos.append(
                PluginInfo(
                    group=namespace,
                    name=ep.name,
                    value=ep.value,
                    distribution=dist,
                    error=None if error is None else f"{type(error).__name__}: {error}",
                )
            )
    for ext in manager.extensions:
        plugins.setdefault(ext.name, ext.plugin)
    loaded = _Group(plugins=plugins, infos=sorted(infos, key=lambda i: (i.name, i.distribution)))
    _loaded[namespace] = loaded
    return loaded


def refresh() -> None:
    """Forget what was discovered (after installing or removing a plugin in this process)."""
    _loaded.clear()
    ExtensionManager.ENTRY_POINT_CACHE.clear()


def list_plugins(group: str | None = None) -> list[PluginInfo]:
    """Every registered entry point of one group (or all groups), including ones that fail to load."""
    groups = [group] if group else list(GROUPS)
    return [info for g in groups for info in _load_group(g).infos]


def names(group: str) -> list[str]:
    """The names of the plugins of ``group`` that load."""
    return sorted(_load_group(group).plugins)


def broken(group: str | None = None) -> list[PluginInfo]:
    """Plugins that are registered but fail to import."""
    return [info for info in list_plugins(group) if info.error]


def warn_broken(group: str | None = None) -> None:
    """Emit a warning for every plugin of ``group`` that fails to import (so none is hidden)."""
    for info in broken(group):
        warnings.warn(
            f"plugin {info.name!r} ({info.group}) from distribution {info.distribution} failed to load: {info.error}",
            stacklevel=2,
        )


def get(group: str, name: str) -> Any:
    """The object a plugin's entry point names (a class or factory).

    Raises:
        PluginNotFoundError: no plugin of that name; the message lists the installed ones.
        PluginLoadError: the plugin is registered but fails to import.
        DuplicatePluginError: two entry points claim the name.
    """
    loaded = _load_group(group)
    namespace = _group_key(group)
    claims = [info for info in loaded.infos if info.name == name]
    if not claims:
        available = ", ".join(sorted(loaded.plugins)) or "none"
        raise PluginNotFoundError(f"no {group.rsplit('.', 1)[-1].rstrip('s')} named {name!r}; installed: {available}")
    if len(claims) > 1:
        who = " and ".join(f"{c.distribution} ({c.value})" for c in claims)
        raise DuplicatePluginError(f"{namespace} name {name!r} is claimed twice: by {who}; uninstall one")
    if claims[0].error:
        raise PluginLoadError(
            f"plugin {name!r} ({namespace}) from distribution {claims[0].distribution} failed to load:"
            f" {claims[0].error}"
        )
    return loaded.plugins[name]


def create_detector(name: str, /, **params: Any) -> Any:
    """Instantiate the detector ``name`` with ``params`` (unknown parameters are an error)."""
    from .detector import Detector
    from .errors import InvalidInputError

    cls = get("detectors", name)
    if not (isinstance(cls, type) and issubclass(cls, Detector)):
        raise PluginLoadError(f"detector plugin {name!r} does not point to a sadkit Detector class: {cls!r}")
    valid = cls._get_param_names()
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise InvalidInputError(
            f"detector {name!r} has no parameter {', '.join(map(repr, unknown))};"
            f" its parameters are: {', '.join(valid)}"
        )
    return cls(**params)


def create_dataset(name: str, /, **params: Any) -> Any:
    """Instantiate the dataset ``name`` with ``params`` (unknown parameters are an error)."""
    return _call_checked("datasets", name, get("datasets", name), params)


def create_network(name: str, input_shape: tuple[int, ...], /, **params: Any) -> Any:
    """Build the network ``name`` for samples of ``input_shape`` (``autoencoder=True`` for its AE)."""
    factory = get("networks", name)
    return _call_checked("networks", name, lambda **kw: factory(tuple(input_shape), **kw), params, factory)


def _call_checked(
    group: str, name: str, /, factory: Callable[..., Any], params: dict[str, Any], signature_of: Any = None
) -> Any:
    import inspect

    from .errors import InvalidInputError

    target = signature_of if signature_of is not None else factory
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):
        return factory(**params)
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values())
    valid = [
        p.name
        for p in sig.parameters.values()
        if p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        and p.name not in ("self", "input_shape")
    ]
    unknown = sorted(set(params) - set(valid))
    if unknown and not accepts_any:
        raise InvalidInputError(
            f"{group.rstrip('s')} {name!r} has no parameter {', '.join(map(repr, unknown))};"
            f" its parameters are: {', '.join(valid)}"
        )
    return factory(**params)


def entry_point_name(group: str, value: str) -> tuple[str, str, str] | None:
    """The plugin registered under ``value`` (``"module:qualname"``) in ``group``, read from the metadata.

    Returns ``(name, distribution, version)``, or None when no distribution registers that value. Nothing is
    imported: a saved detector names its class this way, and loading resolves the name through :func:`get`.
    """
    namespace = _group_key(group)
    for (name, ep_value), dists in _distributions(namespace).items():
        if ep_value == value:
            try:
                version = importlib.metadata.version(dists[0])
            except importlib.metadata.PackageNotFoundError:  # pragma: no cover - a half-removed distribution
                version = "?"
            return name, dists[0], version
    return None
