"""`python -m aecli` and the `aecli` command.

The stop handlers go in before anything else is imported, so a Ctrl-C or SIGTERM during
start-up (Hydra, torch) is a stop request like any other, never a traceback or a silent kill.
"""

from __future__ import annotations


def main() -> None:
    from aecli import signals

    signals.install()
    from aecli.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
