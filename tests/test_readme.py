"""The README's two commands are the ones CI and new users run."""

from conftest import REPO


def test_ci_runs_the_readme_test_command():
    ci_lines = (REPO / ".ci" / "run").read_text().splitlines()
    readme = (REPO / "README.md").read_text()
    commands = [line for line in ci_lines if "pytest" in line]
    assert len(commands) == 1 and f"```bash\n{commands[0]}\n```" in readme


def test_ci_runs_the_lint_and_type_checks():
    ci = (REPO / ".ci" / "run").read_text()
    for check in ("ruff check aecli hydra_plugins tests", "ruff format --check aecli hydra_plugins tests", "mypy"):
        assert f".venv/bin/{check}" in ci, check
