"""README's generated parts (aecli/docs.py) match what the generators would write now."""

from __future__ import annotations

import re

import pytest
from conftest import REPO

from aecli import docs

README = (REPO / "README.md").read_text()


@pytest.fixture(scope="module")
def generated() -> str:
    """What `python -m aecli.docs config-groups` would write now (composed once: a few seconds)."""
    return docs.config_groups_markdown()


def test_readme_config_groups_are_up_to_date(generated):
    assert docs.read_block(README, "config-groups").strip() == generated.strip(), (
        "README.md's config-group tables differ from conf/: run `python -m aecli.docs config-groups`"
    )


def test_config_groups_list_every_option_with_its_description(generated):
    sections = {
        m.group(1): m.group(2) for m in re.finditer(r"\*\*`([^`]+)`\*\*(.*?)(?=\n\*\*|\Z)", generated, re.DOTALL)
    }
    for path in sorted(docs.CONF.rglob("*.yaml")):
        if path.parent == docs.CONF:
            continue
        group = path.parent.relative_to(docs.CONF).as_posix()
        assert group in sections, f"no table for {group}"
        row = next((line for line in sections[group].splitlines() if line.startswith(f"| `{path.stem}` |")), None)
        assert row is not None, f"{group}/{path.stem} missing"
        assert docs.cell(docs.description(path)) in row
    # values come from composing the option: a preset's change from the default is shown
    assert "`latent_activation=relu`, `bias=false`" in sections["model"]  # relu_nobias vs tanh
    assert "`seed=1337`" in generated and "`trainer=default` sets them" in generated


def test_description_is_the_first_sentence_of_the_header_comment(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text(
        "# @package _global_\n# Study `x`: a thing, e.g. this one. More text\n# here.\n"
        "#   aecli example\ndefaults: []\n"
    )
    assert docs.description(path) == "Study `x`: a thing, e.g. this one."
    path.write_text("# runs it like this:\n#   aecli -m x=1,2\nfoo: 1\n")
    assert docs.description(path) == "runs it like this."


def test_readme_gallery_is_up_to_date_and_small():
    assert docs.read_block(README, "gallery").strip() == docs.gallery_markdown().strip(), (
        "README.md's gallery differs from aecli/docs.py's GALLERY: run `python -m aecli.docs gallery`"
    )
    images = re.findall(r"!\[[^\]]*\]\((docs/gallery/[^)]+\.png)\)", docs.gallery_markdown())
    assert len(images) == len(docs.GALLERY)
    files = [REPO / image for image in images]
    assert all(f.is_file() for f in files), [str(f) for f in files if not f.is_file()]
    assert sorted(p.name for p in (REPO / "docs" / "gallery").glob("*.png")) == sorted(f.name for f in files)
    assert sum(f.stat().st_size for f in files) < 1.5e6


def test_check_mode_reports_drift(generated, tmp_path, monkeypatch, capsys):
    readme = tmp_path / "README.md"
    readme.write_text(README.replace("| `sgd` |", "| `sgd-old` |", 1))
    monkeypatch.setattr(docs, "README", readme)
    monkeypatch.setattr(docs, "config_groups_markdown", lambda: generated)
    assert docs.main(["config-groups", "--check"]) == 1
    assert "python -m aecli.docs config-groups" in capsys.readouterr().err
    assert readme.read_text() != README  # --check writes nothing
    assert docs.main(["config-groups"]) == 0 and readme.read_text() == README
    assert docs.main(["config-groups", "--check"]) == 0
