"""Visual output for planners: maps written as self-contained offline HTML files."""

from twin.viz.deckhtml import view_for_bounds, write_offline_html

__all__ = ["view_for_bounds", "write_offline_html"]
