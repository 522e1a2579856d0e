"""The README's two commands are the ones CI and new users run."""

from conftest import REPO


def test_ci_runs_the_readme_test_command():
    ci_lines = (REPO / ".ci" / "run").read_text().splitlines()
    readme = (REPO / "README.md").read_text()
    command = ci_lines[-1]
    assert "pytest" in command and f"```bash\n{command}\n```" in readme
