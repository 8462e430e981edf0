"""Entry point of a job worker process (see studio.core.base.jobs): `python -m studio.core.base.worker FD` runs the
one job framed on stdin; `... FD --serve IDLE_S` runs jobs until stdin ends or none came for IDLE_S seconds."""
from __future__ import annotations

import gc
import os
import select
import sys
import threading
import time
import traceback

COLLECT_AFTER_S = 0.05  # a job sent this soon after the last one's outcome runs before the garbage collection

def run_one(fd: int, job: bytes) -> None:
    """Run one pickled (fn, args, kwargs) and write its progress and outcome to fd."""
    import pickle

    from studio.core.base.errors import StudioError, short
    from studio.core.base.jobs import write_message

    last = [0.0]

    def report(fraction: float, message: str) -> None:
        now = time.monotonic()
        if fraction >= 1.0 or now - last[0] > 0.05:  # keep the pipe calm: at most ~20 updates a second
            last[0] = now
            write_message(fd, ("progress", float(fraction), str(message)))

    try:
        fn, args, kwargs = pickle.loads(job)
        result = fn(*args, report=report, **kwargs)
        outcome: tuple = ("ok", result)
    except StudioError as exc:
        outcome = ("error", exc)
    except BaseException as exc:  # noqa: BLE001 - everything else: its reason in words, its traceback in the log
        traceback.print_exc()
        outcome = ("failed", short(exc, 300))
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        write_message(fd, outcome)
    except Exception as exc:  # noqa: BLE001 - a result that cannot be pickled is a failure of the job, not a crash
        traceback.print_exc()
        write_message(fd, ("failed", f"its result could not be sent back: {short(exc, 200)}"))


def _read_job(idle: float | None) -> bytes | None:
    """The next job on stdin; None at its end (the caller is gone or done), or after `idle` seconds without one."""
    from studio.core.base.jobs import read_frame

    if idle is not None:
        ready, _, _ = select.select([0], [], [], idle)
        if not ready:
            return None
    return read_frame(0)


def _library_dirs() -> tuple[str, ...]:
    """Where the interpreter's own and installed libraries live, and Studio itself: modules from there stay."""
    import sysconfig

    import studio

    dirs = {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    dirs.update(studio.__path__)
    return tuple(os.path.join(os.path.realpath(d), "") for d in dirs)


def _forget_user_code(modules_before: set[str], path_before: list[str]) -> None:
    """A job may import the user's code (an --arch file, the classes a pickle names, a scoring function): drop what
    it imported from outside the libraries, and the folders it added to sys.path, so that the next job imports
    the user's files as they are then, not as they were."""
    libraries = _library_dirs()
    for name in set(sys.modules) - modules_before:
        where = getattr(sys.modules.get(name), "__file__", None)
        if where and not os.path.realpath(where).startswith(libraries):
            del sys.modules[name]
    sys.path[:] = path_before


def _forget_sessions() -> None:
    """What one job leaves in a warm worker that the next must not see: Keras's global graph and names."""
    keras = sys.modules.get("keras")  # tf.keras is this package too; only a job that used Keras imported it
    try:
        if keras is not None:
            keras.backend.clear_session()
    except Exception:  # noqa: BLE001 - a framework that cannot clear its session still serves the next job
        traceback.print_exc()


def _collect_unless_busy() -> None:
    """Free a job's cyclic garbage (a model's graph) now, unless the next job is already coming: a full collection
    takes 0.2 s in a worker that imported torch, and then it waits for the first pause between jobs."""
    ready, _, _ = select.select([0], [], [], COLLECT_AFTER_S)
    if not ready:
        gc.collect()


def _exit_with_parent() -> None:
    """Never outlive the caller: if it dies mid-job (stdin's end only shows between jobs), leave at once."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def main() -> None:
    fd = int(sys.argv[1])
    serve = sys.argv.index("--serve") if "--serve" in sys.argv else None
    idle = float(sys.argv[serve + 1]) if serve is not None else None
    _exit_with_parent()
    while True:
        job = _read_job(idle)
        if job is None:
            return
        modules, path = set(sys.modules), list(sys.path)
        run_one(fd, job)
        if serve is None:
            return
        _forget_user_code(modules, path)
        _forget_sessions()
        _collect_unless_busy()


if __name__ == "__main__":
    main()
