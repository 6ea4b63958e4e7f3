"""A griffe extension for the API reference: this project's docstrings title their examples ``Example:``.

Google style, as griffe parses it, knows the plural ``Examples:``; without this extension the doctest
lines of an ``Example:`` section would be rendered as plain Markdown. Declared in ``mkdocs.yml`` under the
mkdocstrings handler's ``extensions``.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_EXAMPLE = re.compile(r"^(\s*)Example:[ \t]*$", re.MULTILINE)


class ExampleSections(griffe.Extension):
    """Read a docstring's ``Example:`` section as Google style's ``Examples:`` section."""

    def on_object(self, *, obj: griffe.Object, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        """Rewrite the section title of ``obj``'s docstring before it is parsed."""
        if obj.docstring is not None:
            obj.docstring.value = _EXAMPLE.sub(r"\1Examples:", obj.docstring.value)
