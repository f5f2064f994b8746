"""Markdown that users write (a model's card, a version's release notes), rendered to HTML that is safe to
put in the admin's pages: markdown-it-py parses CommonMark (with tables and strikethrough) and leaves any
raw HTML as text, and nh3 (the Ammonia sanitizer) then keeps only a short list of tags and attributes,
and links only to http, https and mailto, whatever the parser let through."""

from __future__ import annotations

import nh3
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt

ALLOWED_TAGS = {
    *("p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "code", "em", "strong", "s"),
    *("ul", "ol", "li", "a", "img", "table", "thead", "tbody", "tr", "th", "td"),
}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "title"}, "th": {"style"}, "td": {"style"}}
URL_SCHEMES = {"http", "https", "mailto"}

# "html": False: raw HTML in the text is shown as text, not passed on (nh3 would remove what is unsafe
# anyway; this way nothing a user typed disappears silently).
_parser = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable(["table", "strikethrough"])


def render_markdown(text: str) -> SafeString:
    html = _parser.render(text or "")
    return mark_safe(  # sanitized just now
        nh3.clean(
            html,
            tags=ALLOWED_TAGS,
            attributes=ALLOWED_ATTRIBUTES,
            url_schemes=URL_SCHEMES,
            filter_style_properties={"text-align"},
            link_rel="noopener noreferrer nofollow",
        )
    )
