"""aecli: a command-line experiment runner for small autoencoders."""

__version__ = "0.1.0"
