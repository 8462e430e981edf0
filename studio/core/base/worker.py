"""Entry point of a job worker process: `python -m studio.core.base.worker FD LOG` (see studio.core.base.jobs)."""
from __future__ import annotations

import pickle
import sys
import time
import traceback


def main() -> None:
    fd, log_path = int(sys.argv[1]), sys.argv[2]
    from studio.core.base.errors import StudioError, short
    from studio.core.base.jobs import write_message

    last = [0.0]

    def report(fraction: float, message: str) -> None:
        now = time.monotonic()
        if fraction >= 1.0 or now - last[0] > 0.05:  # keep the pipe calm: at most ~20 updates a second
            last[0] = now
            write_message(fd, ("progress", float(fraction), str(message)))

    try:
        fn, args, kwargs = pickle.loads(sys.stdin.buffer.read())
        result = fn(*args, report=report, **kwargs)
        write_message(fd, ("ok", result))
    except StudioError as exc:
        write_message(fd, ("error", exc))
    except BaseException as exc:  # noqa: BLE001 - everything else becomes a one-line StudioError
        traceback.print_exc()
        sys.stdout.flush()
        write_message(fd, ("error", StudioError(f"{type(exc).__name__}: {short(exc)} (details in {log_path})")))


if __name__ == "__main__":
    main()
