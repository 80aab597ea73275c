"""The "where we are" picture every chapter opens with: `python tools/where_we_are.py`.

Hand-written (not generated). One drawing of the pipeline the book builds, redrawn for each
chapter with what is built (green), the chapter's own stage (orange) and what is to come
(dashed): figures/where_we_are_01.svg to _09.svg. The SVG is written by hand, not by
matplotlib, so it is the same bytes on every machine and a test compares it with a fresh one.
"""

from __future__ import annotations

import argparse
import sys
from html import escape
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIGURES = ROOT / "figures"

# (chapter, title, what it adds): the pipeline in reading order
STAGES = (
    ("01", "Tokenizer", "text → token ids"),
    ("02", "Attention", "tokens look at each other"),
    ("03", "Block", "attention + MLP, residuals"),
    ("04", "GPT", "embeddings, blocks, LM head"),
    ("05", "Training loop", "loss, AdamW, schedule"),
    ("06", "Training for real", "precision, checkpoints"),
    ("07", "Sampling", "next token, KV cache"),
    ("08", "GPT-1 on a GPU", "the full-size run"),
    ("09", "Fine-tuning", "tasks, head, L2 + λ·L1"),
)
BOX_W, BOX_H, GAP = 174, 58, 18
ROW_Y = (40, 142)
# (fill, stroke, ink) of a stage built before, of the chapter's own, and of one to come
DONE = ("#d9efe6", "#1b7a5a", "#10372a")
HERE = ("#d95f02", "#a34600", "#ffffff")
TO_COME = ("#ffffff", "#9e9e9e", "#8a8a8a")


def _box(
    x: int, y: int, stage: tuple[str, str, str], style: tuple[str, str, str], dashed: bool
) -> str:
    fill, stroke, ink = style
    chapter, title, what = stage
    dash = ' stroke-dasharray="5 4"' if dashed else ""
    return (
        f'<rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="8" fill="{fill}" '
        f'stroke="{stroke}" stroke-width="{3 if style is HERE else 1.5}"{dash}/>\n'
        f'<text x="{x + BOX_W // 2}" y="{y + 24}" fill="{ink}" font-size="14" '
        f'font-weight="bold" text-anchor="middle">{chapter} · {escape(title)}</text>\n'
        f'<text x="{x + BOX_W // 2}" y="{y + 44}" fill="{ink}" font-size="12" '
        f'text-anchor="middle">{escape(what)}</text>\n'
    )


def _arrow(points: list[tuple[int, int]]) -> str:
    path = " ".join(f"{x},{y}" for x, y in points)
    return (
        f'<polyline points="{path}" fill="none" stroke="#555555" stroke-width="1.5" '
        'marker-end="url(#head)"/>\n'
    )


def drawing(chapter: str) -> str:
    """The SVG of the pipeline as it stands in `chapter` ("01" ... "09")."""
    here = [s[0] for s in STAGES].index(chapter)
    width = 20 + 5 * (BOX_W + GAP) - GAP
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="232" '
        f'viewBox="0 0 {width} 232" font-family="Helvetica, Arial, sans-serif">\n'
        f"<title>Where we are: chapter {chapter} of GPT-1 from scratch</title>\n"
        '<defs><marker id="head" markerWidth="8" markerHeight="8" refX="7" refY="4" '
        'orient="auto"><path d="M0,0 L8,4 L0,8 z" fill="#555555"/></marker></defs>\n'
        f'<text x="14" y="{ROW_Y[0] + 34}" font-size="14" fill="#333333">text</text>\n'
    ]
    boxes = [(100 + i * (BOX_W + GAP), ROW_Y[0]) for i in range(4)]
    boxes += [(10 + i * (BOX_W + GAP), ROW_Y[1]) for i in range(5)]
    parts.append(_arrow([(48, ROW_Y[0] + BOX_H // 2), (boxes[0][0] - 2, ROW_Y[0] + BOX_H // 2)]))
    for i, ((x, y), stage) in enumerate(zip(boxes, STAGES)):
        style = DONE if i < here else HERE if i == here else TO_COME
        parts.append(_box(x, y, stage, style, dashed=i > here))
        if i + 1 < len(boxes) and i != 3:  # along a row
            parts.append(
                _arrow([(x + BOX_W, y + BOX_H // 2), (x + BOX_W + GAP - 2, y + BOX_H // 2)])
            )
    (x4, y4), (x5, y5) = boxes[3], boxes[4]  # the end of the first row to the start of the second
    mid = (y4 + BOX_H + y5) // 2
    parts.append(_arrow([(x4 + BOX_W // 2, y4 + BOX_H), (x4 + BOX_W // 2, mid),
                         (x5 + BOX_W // 2, mid), (x5 + BOX_W // 2, y5 - 2)]))  # fmt: skip
    number, title, what = STAGES[here]
    parts.append(
        f'<text x="10" y="224" font-size="13" fill="#a34600">this chapter, {number} · '
        f"{escape(title)}: {escape(what)}; green: built in the chapters before it</text>\n"
        "</svg>\n"
    )
    return "".join(parts)


def path_of(chapter: str) -> Path:
    return FIGURES / f"where_we_are_{chapter}.svg"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a figure is out of date")
    args = parser.parse_args(argv)
    stale = []
    for chapter, _, _ in STAGES:
        text = drawing(chapter)
        path = path_of(chapter)
        if args.check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(path.name)
        else:
            path.write_text(text, encoding="utf-8")
    if stale:
        print(f"out of date: {', '.join(stale)}: run python tools/where_we_are.py")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
