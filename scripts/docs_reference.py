"""The API reference of the documentation site, generated from each public module's ``__all__``.

Run by ``mkdocs-gen-files`` during ``mkdocs build`` (see ``mkdocs.yml``): it writes one page per public
module under ``reference/`` and the reference's navigation (``reference/SUMMARY.md``, read by
``mkdocs-literate-nav``). Nothing is listed by hand: a new public package with an ``__all__`` gets its page
on the next build.

Rules:

- a module is public when no part of its dotted path starts with ``_``;
- each name of an ``__all__`` is documented once, on the page of the shortest public module that
  exports it (``mio_strategies.analysis.ddr``, not ``mio_strategies.analysis.representation.ddr``);
  a module whose names are all documented elsewhere gets no page;
- the package root re-exports names lazily: its page lists them with links to their pages;
- a public name without a docstring stops the build (:func:`missing_docstrings`).

The functions below are also used by ``tests/test_docs_site.py``.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path

import griffe

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "mio_strategies"


def load_package(name: str = PACKAGE, search_path: Path = ROOT) -> griffe.Module:
    """Load a package's API statically, as mkdocstrings sees it (the package is not imported).

    Args:
        name: the package (default: this library).
        search_path: the folder that holds it.

    Returns:
        The package as a griffe module tree.
    """
    extensions = griffe.load_extensions(f"{ROOT / 'scripts' / 'griffe_extensions.py'}:CommentDocstrings")
    return griffe.load(name, search_paths=[str(search_path)], resolve_aliases=False, extensions=extensions)


def _public_modules(module: griffe.Module) -> Iterator[griffe.Module]:
    yield module
    for name, sub in sorted(module.modules.items()):
        if not name.startswith("_"):
            yield from _public_modules(sub)


def root_exports() -> list[str]:
    """The names of the package root's ``__all__`` (read by importing the root, which is lazy and light).

    Returns:
        The root's public names, sorted.
    """
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return sorted(importlib.import_module(PACKAGE).__all__)


def public_api(package: griffe.Module | None = None) -> dict[str, list[str]]:
    """Which names each public module's reference page documents.

    Args:
        package: the loaded package (default: :func:`load_package`).

    Returns:
        Module path -> the names documented on its page, in the order of its ``__all__``. Modules
        without an ``__all__`` or whose names are all documented on a shorter module's page are absent;
        the package root is absent too (see :func:`root_exports`).
    """
    package = package or load_package()
    modules = [m for m in _public_modules(package) if m is not package and m.exports]
    modules.sort(key=lambda m: (m.path.count("."), m.path))
    seen: set[str] = set()  # canonical paths of the objects already documented
    pages: dict[str, list[str]] = {}
    for module in modules:
        names = []
        for name in (str(e) for e in module.exports):
            target = _canonical(module, name)
            if target not in seen:
                seen.add(target)
                names.append(name)
        if names:
            pages[module.path] = names
    return pages


def _canonical(module: griffe.Module, name: str) -> str:
    member = module.members.get(name)
    if member is None:
        raise ValueError(f"{module.path}.__all__ names {name!r}, which the module does not define or import")
    if member.is_alias:
        try:
            return member.final_target.path
        except (griffe.AliasResolutionError, griffe.CyclicAliasError):
            return member.target_path
    return member.path


def documented_at(pages: dict[str, list[str]], package: griffe.Module | None = None) -> dict[str, str]:
    """Where each documented object lives in the reference.

    Args:
        pages: the output of :func:`public_api`.
        package: the loaded package (default: :func:`load_package`).

    Returns:
        Canonical object path -> the public path it is documented under (``module.name``).
    """
    package = package or load_package()
    out = {}
    for module_path, names in pages.items():
        module = package[module_path.removeprefix(package.path + ".")]
        for name in names:
            out[_canonical(module, name)] = f"{module_path}.{name}"
    return out


def missing_docstrings(pages: dict[str, list[str]] | None = None, package: griffe.Module | None = None) -> list[str]:
    """The public names that have no docstring (every name of every public ``__all__`` needs one).

    A constant is documented by a string literal right below its assignment, or by ``#:`` comment lines
    right above it.

    Args:
        pages: the output of :func:`public_api` (default: computed).
        package: the loaded package (default: :func:`load_package`).

    Returns:
        The public paths (``module.name``) of the undocumented names, sorted; empty when all have one.
    """
    package = package or load_package()
    pages = public_api(package) if pages is None else pages
    missing = []
    for module_path, names in pages.items():
        module = package[module_path.removeprefix(package.path + ".")]
        for name in names:
            member = module.members[name]
            try:
                obj = member.final_target if member.is_alias else member
            except (griffe.AliasResolutionError, griffe.CyclicAliasError):
                missing.append(f"{module_path}.{name} (its definition could not be found)")
                continue
            if obj.docstring is None or not obj.docstring.value.strip():
                missing.append(f"{module_path}.{name}")
    return sorted(missing)


def _page(module_path: str, names: list[str]) -> str:
    lines = [
        f"# `{module_path}`",
        "",
        f"::: {module_path}",
        "    options:",
        "      members: false",
        "      show_root_heading: false",
        "      show_root_toc_entry: false",
        "",
    ]
    for name in names:
        lines += [f"::: {module_path}.{name}", ""]
    return "\n".join(lines)


def _root_page(exports: list[str], where: dict[str, str]) -> str:
    by_name = {}
    for public in where.values():
        by_name.setdefault(public.rsplit(".", 1)[1], public)
    lines = [
        f"# `{PACKAGE}`",
        "",
        f"`import {PACKAGE}` is light: the names below are imported from their packages on first use.",
        "",
        "| name | documented at |",
        "|---|---|",
    ]
    for name in exports:
        if name == "__version__":
            lines.append("| `__version__` | the installed version, a string |")
            continue
        public = by_name.get(name)
        if public is None:
            raise ValueError(f"{PACKAGE}.{name} is exported by the root but documented on no page")
        lines.append(f"| [`{name}`][{public}] | [`{public.rsplit('.', 1)[0]}`]({_file(public.rsplit('.', 1)[0])}) |")
    return "\n".join(lines) + "\n"


def _file(module_path: str) -> str:
    return module_path.removeprefix(PACKAGE + ".").replace(".", "/") + ".md"


def generate() -> None:
    """Write the reference pages and their navigation through ``mkdocs_gen_files`` (inside a build).

    Raises:
        ValueError: a public name has no docstring, or an ``__all__`` names something undefined.
    """
    import mkdocs_gen_files

    package = load_package()
    pages = public_api(package)
    missing = missing_docstrings(pages, package)
    if missing:
        raise ValueError(
            "public names without a docstring (add one; a constant takes a string literal right "
            "below its assignment, or #: comment lines right above it): " + ", ".join(missing)
        )
    where = documented_at(pages, package)
    nav = mkdocs_gen_files.Nav()
    with mkdocs_gen_files.open("reference/index.md", "w") as fd:
        fd.write(_root_page(root_exports(), where))
    nav[PACKAGE] = "index.md"
    for module_path, names in pages.items():
        path = _file(module_path)
        with mkdocs_gen_files.open(f"reference/{path}", "w") as fd:
            fd.write(_page(module_path, names))
        nav[module_path] = path
    with mkdocs_gen_files.open("reference/SUMMARY.md", "w") as fd:
        fd.writelines(nav.build_literate_nav())


if __name__ in {"__main__", "<run_path>"}:  # mkdocs-gen-files runs the script with runpy
    generate()
