"""The web catalog `serve` shows browsers, at the Hugging Face website's own URLs: `/` (what the mirror holds),
`/models?search=…` (search with the website's filters, paged), `/{repo_id}` (the model page) and
`/{repo_id}/tree/{rev}[/{path}]`. Server-rendered HTML (Jinja2, autoescaped) that needs no JavaScript, one CSS file
served by the mirror itself, model cards rendered with markdown-it-py and sanitised with nh3, and a strict
Content-Security-Policy on every page. With `serve --token`, a login form sets an HttpOnly, SameSite=Strict session
cookie (derived from the token, never the token itself).

`site.WebCatalog` is what `hubmirror.serving.app` mounts; the other modules each do one job: `auth` (the session
cookie), `cards` (Markdown and SVG made safe), `listing` (the /models query, on the catalog's own search),
`model_page` and `summary` (what the pages show, from indexed catalog reads), `snippets` (copy-paste code that loads
a model from this server), `versioned` (whole-catalog figures kept until the catalog changes).
"""

from hubmirror.serving.web.site import WebCatalog

__all__ = ["WebCatalog"]
