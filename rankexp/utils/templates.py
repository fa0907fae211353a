"""Jinja2 templates shipped with rankexp (package data ``templates/*.j2`` beside the module that
renders them). Autoescaping is on for every template: values are escaped unless a renderer passes
:class:`markupsafe.Markup` on purpose (HTML another template already rendered); an undefined name
is an error, not an empty string."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

__all__ = ["environment", "render"]


@lru_cache(maxsize=None)
def environment(package: str):
    """The environment for ``<package>/templates/``."""
    import jinja2

    return jinja2.Environment(loader=jinja2.PackageLoader(package, "templates"), autoescape=True,
                              undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                              keep_trailing_newline=True)


def render(package: str, name: str, **context: Any) -> str:
    return environment(package).get_template(name).render(**context)
