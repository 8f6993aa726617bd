"""A griffe extension for the API reference: read a docstring's ``Example:`` section as ``Examples:``.

Griffe's Google-style parser renders ``>>>`` lines as code only under an ``Examples:`` heading and
takes ``Example:`` for an admonition of plain Markdown, where each ``>>>`` line becomes a quote;
dltool's docstrings mostly say ``Example:``, which Napoleon's Google style also reads as a section.
``mkdocs.yml`` loads this with the python handler's ``extensions``.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_EXAMPLE_HEADING = re.compile(r"^(\s*)Example:[ \t]*$", re.MULTILINE)


class ExampleSections(griffe.Extension):
    """Renames each docstring's ``Example:`` heading to ``Examples:`` before griffe parses it."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        """Rewrite the heading of ``obj``'s docstring, if it has one."""
        if obj.docstring is not None:
            obj.docstring.value = _EXAMPLE_HEADING.sub(r"\1Examples:", obj.docstring.value)
