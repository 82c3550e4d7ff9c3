"""The ``crm`` console script as a real child process: environment, start, bounded waits, stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from crm.settings import Settings

CRM_SCRIPT = Path(sys.executable).with_name("crm")
STOP_SECONDS = 10.0


def crm_environment(settings: Settings, **overrides: str) -> dict[str, str]:
    """The child's environment: the settings' store, and no ``CRM_*`` leaking in from ours."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("CRM_")}
    env["CRM_DATA_DIR"] = str(settings.data_dir)
    if settings.database_url is not None:
        env["CRM_DATABASE_URL"] = settings.database_url
    env["CRM_POOL_SIZE"] = str(settings.pool_size)
    env["CRM_LOG_LEVEL"] = "warning"
    # Plain tracebacks: a failure message's last characters then hold the whole of one, not
    # the end of a boxed one (CI cut a worker's down to its innermost library frames).
    env["TYPER_STANDARD_TRACEBACK"] = "1"
    env.update(overrides)
    return env


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class CrmProcess:
    """One ``crm <command>`` child; its output goes to ``log_path`` for failure messages."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        with log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                [str(CRM_SCRIPT), *args],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def is_running(self) -> bool:
        return self.popen.poll() is None

    def output(self, last_chars: int = 8000) -> str:
        return self.log_path.read_text(errors="replace")[-last_chars:]

    def kill(self) -> None:
        """SIGKILL: no handler, no cleanup, no commit of whatever it was doing."""
        os.kill(self.pid, signal.SIGKILL)
        self.popen.wait(timeout=STOP_SECONDS)

    def stop(self) -> int:
        """SIGTERM (the clean stop), then SIGKILL if it has not exited in time."""
        if self.is_running():
            self.popen.terminate()
            try:
                return self.popen.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.popen.kill()
        return self.popen.wait(timeout=STOP_SECONDS)


@contextmanager
def running(args: list[str], env: dict[str, str], log_path: Path) -> Iterator[CrmProcess]:
    """A ``crm`` child that is always gone when the block is left."""
    process = CrmProcess(args, env, log_path)
    try:
        yield process
    finally:
        process.stop()


def wait_until(
    condition: Callable[[], bool],
    timeout: float,
    what: str,
    process: CrmProcess | None = None,
    pause: float = 0.005,
) -> None:
    """Poll ``condition`` until true; fail after ``timeout`` or if ``process`` dies first."""
    deadline = time.monotonic() + timeout
    while not condition():
        if process is not None and not process.is_running():
            raise AssertionError(
                f"crm exited ({process.popen.returncode}) while waiting for {what}:\n"
                + process.output()
            )
        if time.monotonic() >= deadline:
            detail = "" if process is None else ":\n" + process.output()
            raise AssertionError(f"timed out after {timeout} s waiting for {what}{detail}")
        time.sleep(pause)
