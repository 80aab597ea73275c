"""GPT-1 from scratch: the package the book's notebooks export (COURSE.md §3).

Hand-written. Every other module except `profiles` is generated from a notebook by
`tools/export.py`; change the notebook and run `make export`, never the module.
"""

__version__ = "0.1.0"
