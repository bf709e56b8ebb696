"""A small package of the function's own: a subpackage (formats) and a data file (templates/)."""

from importlib import resources

from greeter.formats import html


def greeting(name: str) -> str:
    """The greeting page for ``name``: the packaged template with the name HTML-escaped into it."""
    template = resources.files(__package__).joinpath("templates").joinpath("greeting.html").read_text(encoding="utf-8")
    return html.render(template, name=name)
