"""``shred-ir ui``: the browser page (the command itself lives with the page, :mod:`shred.ui.command`;
gradio is imported only when the page starts)."""
from ..ui.command import add_parser, run

__all__ = ["add_parser", "run"]
