"""The README's relative links point at files of the repository, and at headings that exist.

The docs pages are checked by ``mkdocs build --strict`` in CI; the README is not part of the site.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_LINK = re.compile(r"\]\((?P<path>[^)#\s]+)(?:#(?P<anchor>[^)\s]+))?\)")


def _anchors(markdown: str) -> set[str]:
    """The ids of a page's headings, as Python-Markdown's ``toc`` makes them."""
    headings = re.findall(r"^#+\s+(.*)$", markdown, flags=re.MULTILINE)
    return {re.sub(r"[\s]+", "-", re.sub(r"[^\w\s-]", "", heading).strip().lower()) for heading in headings}


def test_relative_links_point_at_existing_files_and_headings() -> None:
    links = [m for m in _LINK.finditer((ROOT / "README.md").read_text()) if "://" not in m["path"]]
    assert links
    for link in links:
        target = ROOT / link["path"]
        assert target.exists(), f"README.md links to {link['path']}, which does not exist"
        if link["anchor"]:
            assert link["anchor"] in _anchors(target.read_text()), f"no heading for {link[0]}"
