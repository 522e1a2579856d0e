"""The shape of the code, checked: what the design promises a newcomer stays true.

- no function longer than 60 lines (a function fits on a screen);
- the training loop never names a model family or a loss term: models and regularizers bring
  their terms, the loop adds them up (aecli/models/base.py, aecli/training/regularizers.py).
"""

from __future__ import annotations

import ast
from pathlib import Path

AECLI = Path(__file__).resolve().parents[1] / "aecli"
MAX_FUNCTION_LINES = 60


def test_no_function_is_longer_than_a_screen():
    long = []
    for path in sorted(AECLI.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(AECLI.parent)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, long


def test_the_training_loop_names_no_model_family_and_no_loss_term():
    nodes = list(ast.walk(ast.parse((AECLI / "training" / "loop.py").read_text())))
    strings = {n.value for n in nodes if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    identifiers = {n.id for n in nodes if isinstance(n, ast.Name)} | {
        n.attr for n in nodes if isinstance(n, ast.Attribute)
    }
    identifiers |= {alias.name for n in nodes if isinstance(n, ast.ImportFrom) for alias in n.names}
    for term in ("reconstruction", "kl", "weight_l2", "mask_rate"):  # as a string the code could look up
        assert term not in strings, term
    for family in ("MLPAutoencoder", "VAE", "ConvAutoencoder", "MLPSpec", "VAESpec", "ConvSpec"):
        assert family not in identifiers, family
