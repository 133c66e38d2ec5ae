"""The console script leaves without the interpreter's slow teardown once torch, scikit-learn or MLflow are loaded."""

from __future__ import annotations

import subprocess
import sys


def _run(body: str, tmp_path) -> subprocess.CompletedProcess:
    script = "\n".join(
        [
            "import atexit, sys",
            body,
            f"atexit.register(lambda: open({str(tmp_path / 'atexit')!r}, 'w').write('ran'))",
            "from sadkit.cli import _leave_without_teardown",
            "print('output', end='')",
            "_leave_without_teardown(CODE)",
            "print('returned')",
        ]
    )
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)


def test_after_heavy_imports_it_exits_at_once_with_the_code_output_and_atexit_handlers(tmp_path):
    done = _run("import sklearn.base\nCODE = 3", tmp_path)
    assert done.returncode == 3 and done.stdout == "output"  # flushed, and nothing after the exit
    assert (tmp_path / "atexit").read_text() == "ran"


def test_a_message_exits_1_on_stderr_as_the_interpreter_does(tmp_path):
    done = _run("import sklearn.base\nCODE = 'Error: bad input'", tmp_path)
    assert done.returncode == 1 and "Error: bad input" in done.stderr


def test_without_heavy_imports_or_with_a_live_thread_the_exit_is_the_normal_one(tmp_path):
    light = _run("CODE = 0", tmp_path)
    assert light.stdout.strip() == "outputreturned"
    busy = _run(
        "import sklearn.base, threading, time\nthreading.Thread(target=time.sleep, args=(0.5,)).start()\nCODE = 0",
        tmp_path,
    )
    assert busy.stdout.strip() == "outputreturned"  # a normal exit waits for that thread
