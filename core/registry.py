"""The plugin registry: detectors, networks and datasets found through entry points.

Groups are ``sadkit.detectors``, ``sadkit.networks`` and ``sadkit.datasets``. Listing reads the
installed distributions' entry-point metadata (``importlib.metadata``) and imports nothing, so ``sadkit
--help`` and ``sadkit plugins list`` stay light. Loading is stevedore's: this is the only module that
imports it, and only inside the loading functions. A plugin is imported when it is used (:func:`get`,
one ``stevedore.DriverManager``), or every plugin of a group by :func:`list_plugins` with ``check=True``
(one ``stevedore.ExtensionManager`` whose ``on_load_failure_callback`` records each failure). stevedore is
handed the entry points the metadata scan found, which know the distribution that declared them.

An unknown name is an error listing the installed names; a plugin that fails to import is reported with
its distribution, its error and the file and line where it failed (the full traceback is kept for
``--debug``); a name claimed by two distributions, or a built-in name claimed by a third party, is a
conflict on both rows of the listing and an error naming both when it is used.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from .errors import DuplicatePluginError, PluginLoadError, PluginNotFoundError

GROUPS: dict[str, str] = {
    "detectors": "sadkit.detectors",
    "networks": "sadkit.networks",
    "datasets": "sadkit.datasets",
}
#: the distribution of the built-in plugins
BUILTIN_DISTRIBUTION = "sadkit"


@dataclass(frozen=True)
class PluginInfo:
    """One registered entry point.

    Attributes:
        error: set only where the plugin was imported and failed: the exception and where it was raised.
        conflict: set where another distribution claims the same name in the same group.
        traceback: the full traceback of ``error`` (shown with ``--debug``).
    """

    group: str
    name: str
    value: str
    distribution: str
    error: str | None = None
    conflict: str | None = None
    traceback: str | None = field(default=None, repr=False, compare=False)

    def as_dict(self, *, debug: bool = False) -> dict[str, Any]:
        d = asdict(self)
        for key in ("error", "conflict", "traceback"):
            if d[key] is None or (key == "traceback" and not debug):
                del d[key]
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


def _kind(namespace: str) -> str:
    """``sadkit.detectors`` -> ``detector``."""
    return namespace.rsplit(".", 1)[-1].rstrip("s")


def _scan() -> dict[str, list[_Entry]]:
    """Every sadkit entry point of every installed distribution (metadata only: nothing is imported).

    A distribution found twice on ``sys.path`` counts once (the first, as ``importlib.metadata.entry_points``
    does); one name declared by two distributions gives two entries, each marked as a conflict.
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
            entries.sort(key=lambda e: (e.info.name, e.info.distribution))
            _entries[namespace] = [_with_conflict(entry, entries) for entry in entries]
    return _entries


def _with_conflict(entry: _Entry, entries: list[_Entry]) -> _Entry:
    others = [e.info.distribution for e in entries if e.info.name == entry.info.name and e is not entry]
    if not others:
        return entry
    builtin = BUILTIN_DISTRIBUTION in others or entry.info.distribution == BUILTIN_DISTRIBUTION
    text = "also claimed by " + ", ".join(f"{d} (built-in)" if d == BUILTIN_DISTRIBUTION else d for d in others)
    if builtin:
        text += "; a plugin may not take a built-in name"
    return _Entry(replace(entry.info, conflict=text), entry.entry_point)


@functools.cache
def _managers() -> tuple[type, type]:
    """stevedore's ``DriverManager`` and ``ExtensionManager``, fed with the entry points of the metadata scan.

    stevedore is imported here, on the first load, never by listing. The managers are handed the
    entry points :func:`_scan` found (which know their distribution, so two distributions claiming
    one name stay apart) instead of reading them again.
    """
    from stevedore import DriverManager, ExtensionManager

    class Driver(DriverManager):
        def __init__(self, entry_point: importlib.metadata.EntryPoint, **options: Any) -> None:
            self._given = [entry_point]
            super().__init__(entry_point.group, entry_point.name, **options)

        def list_entry_points(self) -> list[importlib.metadata.EntryPoint]:
            return self._given

    class Extensions(ExtensionManager):
        def __init__(self, namespace: str, entry_points: list[importlib.metadata.EntryPoint], **options: Any) -> None:
            self._given = entry_points
            super().__init__(namespace, **options)

        def list_entry_points(self) -> list[importlib.metadata.EntryPoint]:
            return self._given

    return Driver, Extensions


def _load(entry: _Entry) -> Any:
    """The object ``entry`` names, loaded once by a stevedore ``DriverManager``; an import error is kept
    and raised again on every use."""
    key = _key(entry)
    if key not in _loaded:
        driver, _ = _managers()
        failures: list[BaseException] = []
        try:
            manager = driver(
                entry.entry_point,
                on_load_failure_callback=lambda _manager, _ep, err: failures.append(err),
                on_missing_entrypoints_callback=None,  # the failure is reported by the caller, not logged
            )
            _loaded[key] = manager.driver
        except Exception as err:  # noqa: BLE001 - whatever a plugin raises on import is reported, not fatal
            _loaded[key] = failures[0] if failures else err
    return _loaded[key]


def _load_all(entries: list[_Entry]) -> None:
    """Import every plugin of ``entries`` not imported yet, with one stevedore ``ExtensionManager`` per group;
    its ``on_load_failure_callback`` records each plugin that fails."""
    _, extensions = _managers()
    todo = {id(e.entry_point): e for e in entries if _key(e) not in _loaded}

    def failed(_manager: Any, entry_point: Any, err: BaseException) -> None:
        _loaded[_key(todo[id(entry_point)])] = err

    for namespace in dict.fromkeys(e.info.group for e in todo.values()):
        group = [e.entry_point for e in todo.values() if e.info.group == namespace]
        try:
            manager = extensions(namespace, group, on_load_failure_callback=failed)
        except Exception:  # noqa: BLE001 - stevedore lets an AssertionError raised on import through
            for entry_point in group:
                _load(todo[id(entry_point)])
            continue
        for extension in manager.extensions:
            _loaded[_key(todo[id(extension.entry_point)])] = extension.plugin


def _key(entry: _Entry) -> tuple[str, str, str]:
    return entry.info.group, entry.info.name, entry.info.distribution


def _failure(loaded: Any) -> tuple[str, str] | None:
    """``(error, traceback)`` of a plugin whose import raised, or None."""
    if not isinstance(loaded, BaseException):
        return None
    return describe_import_error(loaded), "".join(traceback.format_exception(loaded))


def describe_import_error(err: BaseException) -> str:
    """``"KeyError: 'b' (at /path/plugin.py:12)"``: the error and the place in the plugin that raised it.

    The place is the innermost frame outside the import machinery (importlib, stevedore, this module); a
    module that is not there at all has no such frame, and its message names it already. A
    ``SyntaxError`` names its file and line itself.
    """
    text = f"{type(err).__name__}: {err}"
    if isinstance(err, SyntaxError):
        return text
    frames = [f for f in traceback.extract_tb(err.__traceback__) if not _is_machinery(f.filename)]
    return f"{text} (at {frames[-1].filename}:{frames[-1].lineno})" if frames else text


def _is_machinery(filename: str) -> bool:
    if filename.startswith("<") or os.path.abspath(filename) == os.path.abspath(__file__):
        return True
    parts = os.path.normpath(filename).split(os.sep)
    return (
        any(parts[i : i + 2] in (["importlib", "__init__.py"], ["importlib", "metadata"]) for i in range(len(parts)))
        or "stevedore" in parts
    )


def refresh() -> None:
    """Forget what was discovered (after installing or removing a plugin in this process)."""
    _entries.clear()
    _loaded.clear()


def list_plugins(group: str | None = None, check: bool = False) -> list[PluginInfo]:
    """Every registered entry point of one group (or all groups), from metadata alone.

    Rows whose name another distribution claims too carry ``conflict``.

    Args:
        group: ``detectors``, ``networks`` or ``datasets`` (or the full group name); None for all.
        check: import every plugin (stevedore's ``ExtensionManager``), so that ``error`` says which ones
            fail to import, why and where.
    """
    namespaces = [_group_key(group)] if group else list(GROUPS.values())
    entries = [entry for namespace in namespaces for entry in _scan()[namespace]]
    if not check:
        return [entry.info for entry in entries]
    _load_all(entries)
    rows = []
    for entry in entries:
        failure = _failure(_loaded[_key(entry)])
        rows.append(replace(entry.info, error=failure[0], traceback=failure[1]) if failure else entry.info)
    return rows


def names(group: str) -> list[str]:
    """The registered names of ``group`` (from metadata: a name listed here may still fail to import)."""
    return sorted({entry.info.name for entry in _scan()[_group_key(group)]})


def groups_of(name: str) -> list[str]:
    """The groups (``detectors``, ``networks``, ``datasets``) where ``name`` is registered (metadata only)."""
    return [group for group, namespace in GROUPS.items() if any(e.info.name == name for e in _scan()[namespace])]


def get(group: str, name: str) -> Any:
    """The object a plugin's entry point names (a class or factory), imported on first use.

    Raises:
        PluginNotFoundError: no plugin of that name; the message lists the installed ones.
        PluginLoadError: the plugin is registered but fails to import (the message says where; the
            original exception is its ``__cause__``).
        DuplicatePluginError: two entry points claim the name.
    """
    namespace = _group_key(group)
    claims = [entry for entry in _scan()[namespace] if entry.info.name == name]
    if not claims:
        available = ", ".join(names(namespace)) or "none"
        raise PluginNotFoundError(f"no {_kind(namespace)} named {name!r}; installed: {available}")
    if len(claims) > 1:
        who = " and ".join(f"{c.info.distribution} ({c.info.value})" for c in claims)
        dists = [c.info.distribution for c in claims]
        if BUILTIN_DISTRIBUTION in dists:
            others = ", ".join(d for d in dists if d != BUILTIN_DISTRIBUTION)
            fix = f"{name!r} is built in: rename the entry point in {others}'s pyproject.toml, or uninstall {others}"
        else:
            fix = "uninstall one, or rename the entry point in one's pyproject.toml"
        raise DuplicatePluginError(f"{namespace} name {name!r} is claimed twice: by {who}; {fix}")
    loaded = _load(claims[0])
    if isinstance(loaded, BaseException):
        raise PluginLoadError(
            f"plugin {name!r} ({namespace}) from distribution {claims[0].info.distribution} failed to load:"
            f" {describe_import_error(loaded)}"
        ) from loaded
    return loaded


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
