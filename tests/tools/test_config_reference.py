"""The committed reference in docs/cli.md is the one the commands and configs give today."""

from __future__ import annotations

import pytest

from dltool.cli import config_groups
from tools.config_reference import BEGIN, END, OUTPUT, header_comment, options, render


def test_the_reference_is_current() -> None:
    page = OUTPUT.read_text()
    assert page == render(page), "stale: run python -m tools.config_reference"


def test_every_group_option_is_listed_under_its_group() -> None:
    reference = render(OUTPUT.read_text()).partition(BEGIN)[2]
    for group, choices in config_groups().items():
        section = reference.split(f"### `{group}`\n")[1].split("###")[0]
        assert all(f"| `{option}` |" in section for option in choices), group


def test_only_the_text_between_the_markers_is_replaced() -> None:
    page = f"# Hand-written\n\n{BEGIN}\nold text\n{END}\n\nmore prose\n"
    rendered = render(page)
    assert rendered.startswith(f"# Hand-written\n\n{BEGIN}\n") and rendered.endswith(f"{END}\n\nmore prose\n")
    assert "old text" not in rendered and "## Trainer options" in rendered


def test_a_page_without_markers_is_refused() -> None:
    with pytest.raises(ValueError, match="marker lines"):
        render("# no markers\n")


def test_keys_take_the_comments_above_beside_and_below_them() -> None:
    text = (
        "# The file's description.\n"
        "defaults:\n  - _self_\n\n"
        "# above a\n"
        "a: 1  # beside a\n"
        "      # below a\n"
        "b: ???\n"
        "hydra:\n  job: {}\n"
        "# above c, after a block\n"
        "c: x\n"
    )
    assert options(text) == {
        "a": ("1", "above a beside a below a"),
        "b": ("???", ""),
        "c": ("x", "above c, after a block"),
    }


def test_the_header_comment_drops_the_package_line_and_shows_commands_as_code() -> None:
    text = "# @package _global_\n# A DCGAN: dltool train task=gan dataset=mnist\n# Two optimizers.\nkey: 1\n"
    assert header_comment(text) == "A DCGAN: `dltool train task=gan dataset=mnist`. Two optimizers."
