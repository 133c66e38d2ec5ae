"""The plugin registry: detectors, networks and datasets found through entry points.

Groups are ``sadkit.detectors``, ``sadkit.networks`` and ``sadkit.datasets``. Listing reads the
installed distributions' entry-point metadata (``importlib.metadata``) and imports nothing; a plugin
is imported when it is used (:func:`get`), or by :func:`list_plugins` with ``check=True`` (``sadkit
plugins list --check``). An unknown name is an error listing the installed names; a plugin that fails
to import is reported with its distribution and the error; two distributions claiming one name is an
error naming both.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

from .errors import DuplicatePluginError, PluginLoadError, PluginNotFoundError

GROUPS: dict[str, str] = {
    "detectors": "sadkit.detectors",
    "networks": "sadkit.networks",
    "datasets": "sadkit.datasets",
}


@dataclass(frozen=True)
class PluginInfo:
    """One registered entry point (``error`` is set only where it was imported and failed)."""

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


@dataclass(frozen=True)
class _Entry:
    info: PluginInfo
    entry_point: importlib.metadata.EntryPoint


#: namespace -> its entry points, from one scan of the installed distributions
_entries: dict[str, list[_Entry]] = {}
#: (namespace, name, distribution) -> the loaded object, or the exception its import raised
_loaded: dict[tuple[str, str, str], Any] = {}


def _group_key(group: str) -> str:
    if group in GROUPS:
        return GROUPS[group]
    if group in GROUPS.values():
        return group
    raise PluginNotFoundError(f"unknown plugin group {group!r}; the groups are {', '.join(GROUPS)}")


def _scan() -> dict[str, list[_Entry]]:
    """Every sadkit entry point of every installed distribution (metadata only: nothing is imported).

    A distribution found twice on ``sys.path`` counts once (the first, as ``importlib.metadata.entry_points``
    does); one name declared by two distributions gives two entries, which :func:`get` reports.
    """
    if not _entries:
        found: dict[str, list[_Entry]] = {namespace: [] for namespace in GROUPS.values()}
        seen: set[str] = set()
        for dist in importlib.metadata.distributions():
            dist_name = dist.metadata["Name"] or "?"
            key = dist_name.lower().replace("_", "-")
            if key in seen:
                continue
            seen.add(key)
            for ep in dist.entry_points:
                if ep.group in found:
                    info = PluginInfo(group=ep.group, name=ep.name, value=ep.value, distribution=dist_name)
                    found[ep.group].append(_Entry(info, ep))
        for namespace, entries in found.items():
            _entries[namespace] = sorted(entries, key=lambda e: (e.info.name, e.info.distribution))
    return _entries


def _load(entry: _Entry) -> Any:
    """The object ``entry`` names, imported once; an import error is kept and raised again on every use."""
    key = (entry.info.group, entry.info.name, entry.info.distribution)
    if key not in _loaded:
        try:
            _loaded[key] = entry.entry_point.load()
        except Exception as err:  # noqa: BLE001 - whatever a plugin raises on import is reported, not fatal
            _loaded[key] = err
    return _loaded[key]


def _error(entry: _Entry) -> str | None:
    loaded = _load(entry)
    return f"{type(loaded).__name__}: {loaded}" if isinstance(loaded, Exception) else None


def refresh() -> None:
    """Forget what was discovered (after installing or removing a plugin in this process)."""
    _entries.clear()
    _loaded.clear()


def list_plugins(group: str | None = None, check: bool = False) -> list[PluginInfo]:
    """Every registered entry point of one group (or all groups), from metadata alone.

    Args:
        group: ``detectors``, ``networks`` or ``datasets`` (or the full group name); None for all.
        check: import every plugin, so that ``error`` says which ones fail to import, and why.
    """
    namespaces = [_group_key(group)] if group else list(GROUPS.values())
    entries = [entry for namespace in namespaces for entry in _scan()[namespace]]
    if check:
        return [replace(entry.info, error=_error(entry)) for entry in entries]
    return [entry.info for entry in entries]


def names(group: str) -> list[str]:
    """The registered names of ``group`` (from metadata: a name listed here may still fail to import)."""
    return sorted({entry.info.name for entry in _scan()[_group_key(group)]})


def get(group: str, name: str) -> Any:
    """The object a plugin's entry point names (a class or factory), imported on first use.

    Raises:
        PluginNotFoundError: no plugin of that name; the message lists the installed ones.
        PluginLoadError: the plugin is registered but fails to import.
        DuplicatePluginError: two entry points claim the name.
    """
    namespace = _group_key(group)
    claims = [entry for entry in _scan()[namespace] if entry.info.name == name]
    if not claims:
        available = ", ".join(names(namespace)) or "none"
        raise PluginNotFoundError(f"no {group.rsplit('.', 1)[-1].rstrip('s')} named {name!r}; installed: {available}")
    if len(claims) > 1:
        who = " and ".join(f"{c.info.distribution} ({c.info.value})" for c in claims)
        raise DuplicatePluginError(f"{namespace} name {name!r} is claimed twice: by {who}; uninstall one")
    error = _error(claims[0])
    if error:
        raise PluginLoadError(
            f"plugin {name!r} ({namespace}) from distribution {claims[0].info.distribution} failed to load: {error}"
        )
    return _load(claims[0])


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
    for entry in _scan()[_group_key(group)]:
        if entry.info.value == value:
            try:
                version = importlib.metadata.version(entry.info.distribution)
            except importlib.metadata.PackageNotFoundError:  # pragma: no cover - a half-removed distribution
                version = "?"
            return entry.info.name, entry.info.distribution, version
    return None
