"""`python -m aecli` and the `aecli` command.

The stop handlers go in before anything else is imported, so a Ctrl-C or SIGTERM during
start-up (Hydra, torch) is a stop request like any other, never a traceback or a silent kill.
Only the interpreter's own start (about 40 ms, before any of aecli's code runs) is left to the
system's default: a SIGTERM there ends the process with status 143, having written nothing.
"""

from __future__ import annotations


def main() -> None:
    import sys

    from aecli import signals

    signals.install()
    try:
        from aecli.cli import main as cli_main

        cli_main()
    except KeyboardInterrupt:  # a second signal while start-up was still importing: nothing was written
        print("aecli: stopped", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
