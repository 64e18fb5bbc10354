"""The web catalog's HTTP side: routes, the session guard, rendering, and the headers every page carries.

Every page is rendered in a worker thread (catalog reads block), from Jinja2 templates with autoescaping on; catalog
strings reach a page only escaped, or as HTML that nh3 has sanitised (model cards, plots). Pages carry a strict
Content-Security-Policy: the CSS file here is the only thing a page may load, and no script runs at all.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, quote

from jinja2 import Environment, FileSystemLoader
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from hubmirror.access.audit import AuditLog
from hubmirror.access.gate import COOKIE, Gate, session_seconds
from hubmirror.access.policy import restricted
from hubmirror.config import unscanned_policy
from hubmirror.serving.bodies import MAX_FORM_BODY, BodyTooLarge, bounded_body
from hubmirror.serving.visibility import readable, visibility
from hubmirror.serving.web import listing, summary
from hubmirror.serving.web.model_page import PageNotFound, model_page, tree_page
from hubmirror.serving.web.versioned import PerCatalogVersion

HERE = Path(__file__).parent
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
                               "base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
STATIC = {"style.css": "text/css; charset=utf-8"}


class WebCatalog:
    """The pages of the mirror at `root` as `view` shows it, to whom `gate` (hubmirror.access.gate) lets in, each
    seeing only what its principal may read; `audit` gets a line per login and logout."""

    def __init__(self, view, root: Path, gate: Gate, audit: AuditLog | None = None):
        self.view, self.root, self.gate, self.audit = view, Path(root), gate, audit
        self.templates = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True,
                                     trim_blocks=True, lstrip_blocks=True)
        self.templates.filters["path"] = lambda value: quote(value, safe="/")
        self.templates.filters["segment"] = lambda value: quote(value, safe="")
        self.static = {name: (HERE / "static" / name).read_bytes() for name in STATIC}
        self.repo_of = PerCatalogVersion(view, lambda repos: {m["key"]: rid for rid, m in repos.items()})
        self.counts = PerCatalogVersion(view, lambda repos: self._read(summary.source_counts), background=True)
        self.facets = PerCatalogVersion(view, lambda repos: self._read(summary.facet_counts), background=True)
        self.awaiting = PerCatalogVersion(view, lambda repos: self._read(summary.awaiting_review, self.repo_of.get()))
        self.routes = [Route("/", self._guarded(self._home)), Route("/models", self._guarded(self._models)),
                       Route("/login", self.login, methods=["GET", "POST"]),
                       Route("/logout", self.logout, methods=["POST"]),
                       Route("/static/{name}", self.static_file)]

    async def page(self, request: Request, segments: list[str]) -> Response:
        """A model page (`/{repo}`) or tree page (`/{repo}/tree/{rev}[/{path}]`) for a GET the Hub API does not
        answer (`segments`: the path's segments, each decoded once); anything else is a 404 page."""
        return await self._guarded(lambda r: self._repo_page(r, segments))(request)

    def _guarded(self, render):
        """`render(request)` (run in a worker thread) for a signed-in request; others go to the login form."""
        async def handler(request: Request) -> Response:
            principal = await self.gate.principal(request)
            if principal is None:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
            request.state.principal = principal
            return await run_in_threadpool(render, request)
        return handler

    def _home(self, request: Request) -> Response:
        principal = request.state.principal
        if principal.everything():
            return self._html(request, "home.html", holdings=self.counts.get(),
                              latest=self._read(summary.latest_additions, self.repo_of.get()),
                              awaiting=self.awaiting.get(unscanned_policy(self.root)))
        shown = [m for m in self._read(summary.latest_additions, self.repo_of.get())
                 if readable(self.view, principal, m["key"])]
        return self._html(request, "home.html", holdings=summary.visible_counts(self.view.repos(), principal),
                          latest=shown, awaiting=[m for m in self.awaiting.get(unscanned_policy(self.root))
                                                  if readable(self.view, principal, m["key"])])

    def _models(self, request: Request) -> Response:
        try:
            query = listing.ModelQuery.parse(request.query_params)
        except listing.BadQuery as err:
            return self._html(request, "error.html", status=400, message=str(err))
        rows, more = self._read(query.results, visibility(self.view, request.state.principal))
        repo_of = self.repo_of.get()
        for row in rows:
            row["repo"] = repo_of.get(row["key"])
        return self._html(request, "models.html", query=query, rows=rows, more=more, sorts=listing.SORTS,
                          search=query.search, facets=self._facets(query, request.state.principal))

    def _facets(self, query: listing.ModelQuery, principal) -> dict[str, list[tuple[str, int | None]]]:
        """The values of each facet with their counts over the whole catalog (for a reader who may not see every
        model: the values alone, counts would tell of models it may not see), the selected one always offered."""
        counted = self.facets.get()
        offered = {}
        for name, values in counted.items():
            shown = [(v, n if principal.everything() else None) for v, n in values]
            chosen = getattr(query, name)
            if chosen and chosen not in {v for v, _ in shown}:
                shown.insert(0, (chosen, None))
            offered[name] = shown
        return offered

    def _repo_page(self, request: Request, segments: list[str]) -> Response:
        repos, principal = self.view.repos(), request.state.principal
        lengths = (3, 2) if segments[0] == "datasets" else (2, 1)  # a dataset's served id: datasets/org/name
        repo = next(("/".join(segments[:n]) for n in lengths if "/".join(segments[:n]) in repos
                     and principal.may_read("/".join(segments[:n]), restricted(repos["/".join(segments[:n])]))), None)
        rest = segments[len(repo.split("/")):] if repo else []
        base = str(request.base_url).rstrip("/")
        try:
            if repo is not None and not rest:
                return self._html(request, "model.html", **self._read(model_page, self.view, repo, repos[repo], base))
            if repo is not None and len(rest) >= 2 and rest[0] == "tree":
                directory = "/".join(rest[2:]).strip("/")
                return self._html(request, "tree.html", **self._read(tree_page, self.view, repo, repos[repo], rest[1],
                                                                     directory, base))
        except PageNotFound as err:
            return self._html(request, "error.html", status=404, message=str(err))
        return self._html(request, "error.html", status=404, message="No such page or model in this mirror.")

    async def login(self, request: Request) -> Response:
        """GET: the form; POST: the token checked, then the session cookie and a redirect to where the user was."""
        if self.gate.open():
            return RedirectResponse("/", status_code=303)
        if request.method == "GET":
            return self._html(request, "login.html", next=_local(request.query_params.get("next", "/")))
        try:
            form = parse_qs((await bounded_body(request, MAX_FORM_BODY)).decode("utf-8", "replace"))
        except BodyTooLarge as exc:
            return self._html(request, "error.html", status=413, message=str(exc))
        target = _local(form.get("next", ["/"])[0])
        token = form.get("token", [""])[0].strip()
        principal = await self.gate.bearer(f"Bearer {token}") if token else None
        self._audit(request, "login", principal, 303 if principal else 401)
        if principal is None:
            return self._html(request, "login.html", status=401, next=target, failed=True)
        response = RedirectResponse(target, status_code=303)
        # Secure where the client reached us over TLS: uvicorn takes the scheme from X-Forwarded-Proto when the
        # request came from a proxy `serve --forwarded-allow-ips` trusts (a TLS-terminating load balancer)
        response.set_cookie(COOKIE, self.gate.new_session(principal), max_age=session_seconds(),
                            httponly=True, samesite="strict", secure=request.url.scheme == "https", path="/")
        return response

    async def logout(self, request: Request) -> Response:
        if not self.gate.open():
            self._audit(request, "logout", await self.gate.principal(request), 303)
            self.gate.end_session(request)
        response = RedirectResponse("/" if self.gate.open() else "/login", status_code=303)
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return response

    def _audit(self, request: Request, action: str, principal, status: int) -> None:
        if self.audit is not None:
            self.audit.record(action=action, who=principal.name if principal else None,
                              kind=principal.kind if principal else None,
                              token_id=principal.token_id if principal else None, method=request.method,
                              status=status, client=request.client.host if request.client else None)

    async def static_file(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in self.static:
            return Response("not found", status_code=404, media_type="text/plain")
        return Response(self.static[name], media_type=STATIC[name],
                        headers={"Cache-Control": "max-age=3600", "X-Content-Type-Options": "nosniff"})

    def _html(self, request: Request, template: str, status: int = 200, **context) -> HTMLResponse:
        principal = getattr(request.state, "principal", None)
        signed_in = principal is not None and not self.gate.open()
        body = self.templates.get_template(template).render(signed_in=signed_in, who=principal.name if signed_in
                                                            else None, **context)
        return HTMLResponse(body, status_code=status, headers=PAGE_HEADERS)

    def _read(self, reader, *args):
        """`reader(catalog, *args)` on one of the view's read connections."""
        with self.view.catalog() as catalog:  # the view's pool: one connection per thread at a time
            return reader(catalog, *args)


def _local(target: str) -> str:
    """`target` if it is a path on this server, else `/` (a login never redirects to another site)."""
    return target if target.startswith("/") and not target.startswith(("//", "/\\")) else "/"
