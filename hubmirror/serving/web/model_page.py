"""What a model page and a tree page show, read by key from the catalog (one model's rows only): metadata, refs and
revisions, every file with its size, sha256 and admission verdict, the model card from the store, benchmark results
per device, dtype and batch with their plots."""

from __future__ import annotations

import json

from hubmirror.bench.plots import latency_svg, scatter_svg
from hubmirror.serving import hf_api
from hubmirror.serving.hub_ids import hub_commit
from hubmirror.serving.web.cards import CARD_MAX_BYTES, render_card, safe_svg
from hubmirror.serving.web.snippets import file_url, snippets

CARD_NAMES = ("README.md", "readme.md", "README.MD")
BENCHMARKS = ("SELECT * FROM benchmarks WHERE id IN (SELECT max(id) FROM benchmarks WHERE model_key = ? "
              "GROUP BY device, dtype, batch_size) ORDER BY device, dtype, batch_size")


class PageNotFound(LookupError):
    """No such revision or path: the page is a 404."""


def model_page(catalog, view, repo: str, model: dict, base: str) -> dict:
    """The model page's context for `repo` at its default revision (`main`, else the newest)."""
    commit, sha = _revision(view, model, None)
    key = model["key"]
    files = _judged_files(catalog, key, commit)
    for f in files:
        f["url"] = file_url(base, repo, sha, f["path"])
    admitted = [f for f in files if not f["quarantined"]]
    return {
        "repo": repo, "model": model, "commit": commit, "sha": sha, "revision": "main",
        "tags": shown_tags(model), "files": files, "total": sum(f["size"] for f in files),
        "refs": [{"name": r["name"], "sha": hub_commit(key, r["commit_id"])} for r in catalog.refs(key)
                 if r.get("kind") != "commit"],
        "revisions": [dict(r, sha=hub_commit(key, r["commit_id"])) for r in reversed(catalog.revisions(key))],
        "card": _card(view, files), "benchmarks": (bench := _benchmarks(catalog, key)),
        "plots": _plots(bench), "snippets": snippets(base, repo, sha, model, admitted),
        "metadata": json.loads(model["metadata"] or "{}"),
    }


def shown_tags(model: dict) -> list[str]:
    """The model's tags less those its task, library and licence chips show already (each once, in order)."""
    chips = {model["task"], model["library"], f"license:{model['license']}"}
    return [t for t in dict.fromkeys((model["tags"] or "").split()) if t not in chips]


def tree_page(catalog, view, repo: str, model: dict, revision: str, directory: str, base: str) -> dict:
    """The tree page's context: the entries of `directory` at `revision`, files with their verdicts."""
    commit, sha = _revision(view, model, revision)
    entries = hf_api.tree(view.files(model, commit, directory), directory, recursive=False)
    if directory and not entries:
        raise PageNotFound(f"{directory} does not exist at {revision}")
    judged = {f["path"]: f for f in _judged_files(catalog, model["key"], commit)}
    for entry in entries:
        if entry["type"] == "file":
            entry.update(file=judged[entry["path"]], url=file_url(base, repo, sha, entry["path"]))
    parts = directory.split("/") if directory else []
    crumbs = [{"name": name, "path": "/".join(parts[:i + 1])} for i, name in enumerate(parts)]
    return {"repo": repo, "model": model, "revision": revision, "sha": sha, "directory": directory, "crumbs": crumbs,
            "entries": entries}


def _revision(view, model: dict, revision: str | None) -> tuple[str, str]:
    found = view.commit(model, revision)
    if found is None:
        raise PageNotFound(f"no revision {revision} of this model in the mirror")
    return found


def _judged_files(catalog, key: str, commit: str) -> list[dict]:
    """Every file of the revision with its verdict, whether it is quarantined and why."""
    verdicts = catalog.file_verdicts(key, commit)
    files = []
    for row in catalog.files(key, commit):
        judged = verdicts.get(row["path"]) or {}
        files.append({"path": row["path"], "size": row["size"], "sha256": row["sha256"],
                      "verdict": judged.get("verdict") or "not judged",
                      "allowed": judged.get("allowed", False), "quarantined": judged.get("quarantined", False),
                      "reason": _reason(judged.get("details"))})
    return files


def _reason(details: str | None) -> str | None:
    """The scanner's findings as one line (its details are JSON with a `findings` list, or plain text)."""
    try:
        found = json.loads(details or "null")
    except ValueError:
        return details
    if isinstance(found, dict) and isinstance(found.get("findings"), list):
        return "; ".join(str(f) for f in found["findings"])
    return details


def _card(view, files: list[dict]) -> dict | None:
    """{html} of the revision's README.md, or {quarantined} when admission keeps it out; None without one."""
    readme = next((f for f in files if f["path"] in CARD_NAMES), None)
    if readme is None:
        return None
    if readme["quarantined"]:
        return {"quarantined": True, "reason": readme["reason"]}
    with view.store.open_range(readme["sha256"], 0, min(readme["size"], CARD_MAX_BYTES)) as f:
        text = f.read().decode("utf-8", "replace")
    return {"html": render_card(text), "truncated": readme["size"] > CARD_MAX_BYTES}


def _benchmarks(catalog, key: str) -> list[dict]:
    cursor = catalog.conn.execute(BENCHMARKS, [key])
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _plots(rows: list[dict]) -> list[str]:
    """Throughput and latency plots of the model's runs, one mark per device/dtype/batch, made safe to inline."""
    ran = [dict(r, model_key=f"{r['device']} {r['dtype']} batch {r['batch_size']}") for r in rows
           if r["status"] == "ok"]
    return [safe_svg(scatter_svg(ran)), safe_svg(latency_svg(ran))] if ran else []
