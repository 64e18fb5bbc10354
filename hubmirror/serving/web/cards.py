"""Hostile input made safe for a page: model cards (Markdown with raw HTML) and benchmark plots (SVG built from
catalog strings). Everything goes through nh3's allowlist: no script, no event attributes, no `javascript:` or
`data:` URLs, whatever the input held."""

from __future__ import annotations

import functools
import re

import nh3
from markdown_it import MarkdownIt

CARD_MAX_BYTES = 512 * 1024  # a longer card is rendered up to here
_FRONT_MATTER = re.compile(r"\A---\r?\n.*?\r?\n---[ \t]*(\r?\n|\Z)", re.DOTALL)
_SVG_TAGS = {"svg", "g", "rect", "line", "circle", "text", "title", "path", "polyline"}
_SVG_ATTRIBUTES = {
    "svg": {"xmlns", "width", "height", "font-family", "font-size"},
    "*": {"x", "y", "x1", "y1", "x2", "y2", "cx", "cy", "r", "width", "height", "fill", "stroke", "text-anchor",
          "font-size", "font-weight", "fill-opacity", "transform", "d", "points"},
}
_markdown = MarkdownIt("commonmark", {"html": True, "linkify": False}).enable("table").enable("strikethrough")


@functools.lru_cache(maxsize=256)
def render_card(text: str) -> str:
    """A model card's Markdown (YAML front matter dropped) as sanitised HTML. Cached by content: cards are read from
    content-addressed blobs, so the same text always renders the same."""
    body = _FRONT_MATTER.sub("", text, count=1)
    return nh3.clean(_markdown.render(body), url_schemes={"http", "https", "mailto"},
                     link_rel="noopener noreferrer nofollow")


def safe_svg(svg: str) -> str:
    """An SVG plot reduced to drawing elements and attributes: text inside it stays text."""
    return nh3.clean(svg, tags=_SVG_TAGS, attributes=_SVG_ATTRIBUTES, url_schemes=set(), link_rel=None)
