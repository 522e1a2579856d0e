"""`python -m aecli` is the same as the `aecli` command."""

from aecli.cli import main

if __name__ == "__main__":
    main()
