"""MkDocs hooks of the documentation site (declared under ``hooks:`` in ``mkdocs.yml``).

The navigation names a few pages that are written alongside the code they describe (Lightning, restoring
images, benchmarks, architecture, safety). Until such a page exists its entry is left out of the
navigation instead of failing the strict build; every other missing page still fails it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

OPTIONAL_PAGES = frozenset({"lightning.md", "restore.md", "benchmarks.md", "architecture.md", "safety.md"})


def _prune(nav: Any, docs_dir: Path) -> Any:
    if isinstance(nav, list):
        kept = [_prune(item, docs_dir) for item in nav]
        return [item for item in kept if item is not None]
    if isinstance(nav, dict):
        kept = {title: _prune(value, docs_dir) for title, value in nav.items()}
        kept = {title: value for title, value in kept.items() if value is not None and value != []}
        return kept or None
    if isinstance(nav, str) and nav in OPTIONAL_PAGES and not (docs_dir / nav).is_file():
        return None
    return nav


def on_config(config: Any) -> Any:
    """Drop the navigation entries of optional pages that do not exist (yet)."""
    if config.nav is not None:
        config.nav = _prune(config.nav, Path(config.docs_dir))
    return config
