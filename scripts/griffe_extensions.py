"""griffe extensions for the API reference (declared in ``mkdocs.yml`` under the mkdocstrings handler).

- :class:`ExampleSections`: this project's docstrings title their examples ``Example:``; Google style,
  as griffe parses it, knows the plural ``Examples:``, and would otherwise render the doctest lines of
  an ``Example:`` section as plain Markdown.
- :class:`CommentDocstrings`: a constant documented Sphinx-style, by ``#:`` comment lines right above
  its assignment, has that text as its docstring (the other form, a string literal right below the
  assignment, griffe reads itself).
- :class:`InheritedDocstrings`: a method that overrides a documented method of a base class in the
  package (``ExplicitPrompt.encode`` over ``PromptSource.encode``) and has no docstring of its own shows
  the base's, as ``help()`` does.
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


class InheritedDocstrings(griffe.Extension):
    """Give an undocumented override the docstring of the method it overrides, from the nearest base."""

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        """Walk the package's classes once the whole tree is loaded."""
        self._module(pkg)

    def _module(self, module: griffe.Module) -> None:
        for member in module.members.values():
            if member.is_alias:
                continue
            if member.is_module:
                self._module(member)
            elif member.is_class:
                self._class(member)

    def _class(self, cls: griffe.Class) -> None:
        try:
            bases = cls.mro()
        except (griffe.AliasResolutionError, griffe.CyclicAliasError, ValueError):
            return
        for name, method in cls.members.items():
            if method.is_alias or not method.is_function or method.docstring is not None:
                continue
            for base in bases:
                inherited = base.members.get(name)
                if inherited is not None and not inherited.is_alias and inherited.docstring is not None:
                    method.docstring = griffe.Docstring(inherited.docstring.value, parent=method)
                    break


class CommentDocstrings(griffe.Extension):
    """Read the ``#:`` comment lines right above an undocumented module-level constant as its docstring."""

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        """Walk the package's modules once the whole tree is loaded."""
        _comment_docstrings(pkg)


def _comment_docstrings(module: griffe.Module) -> None:
    for member in list(module.members.values()):
        if member.is_alias:
            continue
        if member.is_module:
            _comment_docstrings(member)
        elif member.is_attribute and member.docstring is None and member.lineno:
            try:
                lines = module.lines
            except (OSError, ValueError):
                return
            comment = []
            i = member.lineno - 2  # the line above the assignment, 0-based
            while i >= 0 and lines[i].lstrip().startswith("#:"):
                comment.insert(0, lines[i].lstrip()[2:].strip())
                i -= 1
            if comment:
                text = " ".join(comment)
                member.docstring = griffe.Docstring(text[:1].upper() + text[1:], parent=member)
