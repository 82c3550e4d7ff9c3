"""A bulk load's partitions fold with the code of the process that started them, whatever the
directory it runs in holds (Python 3.11's fork server puts that directory first on its path)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]
STARTS_PARTITIONS = """
import sys
sys.path.remove("")  # this process imports the repository's code, not the directory's
from projections.partitions import run_partitions
from tests.replay.partition_probe import print_projections_file
run_partitions(print_projections_file, (), 1, lambda progress: None)
"""


def test_given_a_directory_holding_other_projection_code_when_partitions_run_from_it_then_they_use_the_parents(  # noqa: E501
    tmp_path: Path,
) -> None:
    other = tmp_path / "projections"
    other.mkdir()
    (other / "__init__.py").write_text("")
    (other / "worker.py").write_text("")  # what the fork server imports first

    started = subprocess.run(
        [sys.executable, "-c", STARTS_PARTITIONS],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPOSITORY)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert started.returncode == 0, started.stderr[-2000:]
    assert started.stdout.strip() == str(REPOSITORY / "projections" / "__init__.py")
