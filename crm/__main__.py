"""The ``crm`` command's entry point, which imports the command line only when called.

A bulk load's partitions fork from a server that imports the command's main module first
(:mod:`projections.partitions`); the generated ``crm`` script imports its entry point's module
at the top, so an entry point in :mod:`crm.cli` made that server import the whole command
line (0.6 s) before the first partition could start."""

from __future__ import annotations


def main() -> None:
    from crm.cli import main as run_the_command

    run_the_command()


if __name__ == "__main__":
    main()
