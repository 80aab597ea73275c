"""GPT-1 from scratch: the package the book's notebooks export.

Hand-written. Every other module except `profiles` is generated from a notebook by
`tools/export.py` (each names its notebook in its first line); change the notebook and run
`make export`, never the module. CONTRIBUTING.md describes the convention.
"""

__version__ = "0.1.0"
