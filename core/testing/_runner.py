"""What the checks of every plugin kind share: a result per check, running a list of checks, the assertion."""

from __future__ import annotations

import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import SadkitError


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check."""

    name: str
    passed: bool
    message: str = ""


def run_checks(checks: Sequence[Callable[[Any], None]], ctx: Any) -> list[CheckResult]:
    """Run every check on ``ctx``; one result per check, none raises.

    A check fails by raising ``AssertionError`` (its message is the reason); any other exception is a
    failed check too, reported with its type and the file and line that raised it.
    """
    results = []
    for check in checks:
        name = check.__name__.removeprefix("check_")
        try:
            check(ctx)
        except AssertionError as err:
            results.append(CheckResult(name, False, str(err) or "assertion failed"))
        except Exception as err:  # noqa: BLE001 - a crash is a failed check, reported with its cause
            frame = traceback.extract_tb(err.__traceback__)[-1]
            results.append(CheckResult(name, False, f"{type(err).__name__}: {err} ({frame.filename}:{frame.lineno})"))
        else:
            results.append(CheckResult(name, True))
    return results


def assert_passed(results: Sequence[CheckResult]) -> None:
    """Raise ``AssertionError`` naming every failed check, each with its reason."""
    failed = [r for r in results if not r.passed]
    if failed:
        lines = "\n".join(f"  {r.name}: {r.message}" for r in failed)
        raise AssertionError(f"{len(failed)} conformance check(s) failed:\n{lines}")


def expect_error(fn: Callable[[], Any], what: str) -> None:
    """Assert that ``fn()`` raises a sadkit error (not another exception, and not nothing)."""
    try:
        fn()
    except SadkitError:
        return
    except Exception as err:  # noqa: BLE001 - the point is to name the wrong exception type
        raise AssertionError(f"{what} raised {type(err).__name__} ({err}), not a sadkit error") from err
    raise AssertionError(f"{what} was accepted silently")


def resolve_plugin(group: str, plugin: Any) -> tuple[str, Any]:
    """``(name, object)`` of a registered name or of the object itself (a class or a factory)."""
    if isinstance(plugin, str):
        from ..registry import get

        return plugin, get(group, plugin)
    return getattr(plugin, "__name__", repr(plugin)), plugin
