"""The site log: what each host publishes to the bucket, and how every host's catalog.db catches up with it.

Layout in the store's shared bucket (`BlobStore.shared_bucket()`, a `hubmirror.store.bucket.SharedBucket`), beside
the store's own keys (`blobs/` and `tmp/` on S3):

    records/sha256/<hex>        immutable revision records (JSON, named by the sha256 of their bytes; If-None-Match: *)
    refs/<quoted model key>.json  per model: {"revisions": {commit: {record, pulled_at}}, "refs": {name: commit}};
                                the truth for that model, moved only by compare-and-swap (If-Match: ETag)
    allowed/<sha256>.json       an operator's allowance of one quarantined file (present = allowed)
    tokens/<id>.json            a token `serve` accepts (hubmirror.access.tokens: a slow hash), or {"revoked": true}
    log/<13-digit ms>-<host>-<uuid>.json   immutable change notices: which models changed, scan verdicts,
                                allowances touched, benchmark rows
    leases/<ms>-<host>-<uuid>.json  digests a pull in flight is about to reference (see leases.py)

A host's catalog.db is a derived index: refresh lists `log/` from a little before the newest entry it applied (the
skew window), applies the entries it has not, and for each model named re-reads that model's ref object and makes the
catalog match it. Applying is by state, not by replaying deltas, so entries seen late or twice change nothing wrong,
and an empty --root that applies the whole log ends up with what the bucket holds.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import socket
import time
import uuid
from hashlib import sha1
from pathlib import Path
from urllib.parse import quote

from hubmirror.access.tokens import TokenRecord
from hubmirror.catalog import Catalog, StoredFile, utc_now
from hubmirror.catalog.site_index import SiteChanges, SiteModel, SiteRevision
from hubmirror.errors import IntegrityError
from hubmirror.sitelog.entries import parse_entry
from hubmirror.sitelog.revision_records import build_record, merge_records, parse_record, record_bytes
from hubmirror.store.bucket import SharedBucket, SiteError, encode
from hubmirror.upstream import REF_KINDS, ResolvedRevision

log = logging.getLogger("hubmirror.sitelog")

SKEW_ENV = "HUBMIRROR_SITE_SKEW"
DEFAULT_SKEW_SECONDS = 60.0  # hosts' clocks and slow PUTs: entries up to this much older than the newest are looked for


def host_id(root: Path) -> str:
    """This host and mirror root, as a key-safe name (several --roots on one machine are distinct hosts)."""
    name = re.sub(r"[^a-z0-9]+", "-", socket.gethostname().lower()).strip("-")[:24] or "host"
    return f"{name}-{sha1(str(Path(root).resolve()).encode(), usedforsecurity=False).hexdigest()[:8]}"


def _allowance(value) -> dict | None:
    """An allowance object as applied: {reason, allowed_at}, or None (revoked: the object is gone)."""
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("reason"), str):
        raise SiteError("an allowance must be an object with a reason")
    return {"reason": value["reason"], "allowed_at": value.get("allowed_at") if isinstance(value.get("allowed_at"), str)
            else None}


def model_ref_key(key: str) -> str:
    return f"{quote(key, safe='')}.json"


class SiteLog:
    """The catalog records in one shared bucket, as one host sees and writes them."""

    def __init__(self, bucket: SharedBucket, host: str):
        self.bucket = bucket
        self.host = host
        self._records: dict[str, dict] = {}  # hex -> record (immutable, so cached for good)

    # ---- names ----
    def entry_name(self) -> str:
        return f"{int(time.time() * 1000):013d}-{self.host}-{uuid.uuid4().hex[:12]}.json"

    def _log_key(self, name: str) -> str:
        return self.bucket.key("log", name)

    def _ref_key(self, model: str) -> str:
        return self.bucket.key("refs", model_ref_key(model))

    def _record_key(self, hex_digest: str) -> str:
        return self.bucket.key("records", "sha256", hex_digest)

    # ---- records ----
    def put_record(self, record: dict) -> str:
        body, hex_digest = record_bytes(record)
        self.bucket.put_if_absent(self._record_key(hex_digest), body)  # present already: the same bytes
        self._records[hex_digest] = record
        return hex_digest

    def record(self, hex_digest: str) -> dict:
        if hex_digest not in self._records:
            import hashlib

            got = self.bucket.get(self._record_key(hex_digest))
            if got is None:
                raise SiteError(f"{self.bucket}: record {hex_digest} is missing")
            if hashlib.sha256(got[0]).hexdigest() != hex_digest:
                raise SiteError(f"{self.bucket}: record {hex_digest} does not match its name")
            self._records[hex_digest] = json.loads(got[0])
        return self._records[hex_digest]

    def model_state(self, key: str) -> dict:
        """The model's ref object ({model, revisions: {commit: {record, pulled_at}}, refs: {name: commit}, kinds:
        {name: kind} where the upstream said}), its
        shape checked (an empty one where the bucket has none)."""
        state = self.bucket.get_json(self._ref_key(key))
        if state is None:
            return {"model": key, "revisions": {}, "refs": {}}
        revisions, refs = (state.get("revisions"), state.get("refs")) if isinstance(state, dict) else (None, None)
        if not (isinstance(revisions, dict) and isinstance(refs, dict)
                and all(isinstance(c, str) and isinstance(v, dict) and isinstance(v.get("record"), str)
                        for c, v in revisions.items())
                and all(isinstance(n, str) and isinstance(c, str) for n, c in refs.items())):
            raise SiteError(f"{self.bucket}: the ref object of {key} is malformed")
        return state

    def _log(self, entry: dict) -> str:
        name = self.entry_name()
        if not self.bucket.put_if_absent(self._log_key(name), encode({**entry, "host": self.host, "at": utc_now()})):
            raise SiteError(f"{self.bucket}: log entry {name} exists already")
        return name

    # ---- publishing (then applying locally, in one catalog transaction) ----
    def publish_revisions(self, catalog: Catalog, revisions: list[tuple[ResolvedRevision, list[StoredFile]]],
                          plugin: str, description: str, scans: list[dict] | None = None) -> None:
        """Records into the bucket, each model's ref object moved by compare-and-swap (a commit another host
        published already keeps its record, extended by files only this pull selected), a log entry, then the
        local catalog. Raises (and catalogues nothing) if the bucket refuses."""
        now = utc_now()
        mine: dict[str, dict[str, tuple[str, str, str | None]]] = {}  # model -> commit -> (record, requested, kind)
        for revision, stored in revisions:
            hex_digest = self.put_record(build_record(revision, stored, plugin, description))
            mine.setdefault(revision.ref.key, {})[revision.commit] = (hex_digest, revision.requested,
                                                                      revision.requested_kind)
        states = {}
        for key, commits in mine.items():
            def change(current, key=key, commits=commits):
                state = current or {"model": key, "revisions": {}, "refs": {}}
                for commit, (hex_digest, requested, kind) in commits.items():
                    held = state["revisions"].get(commit)
                    if held is None:
                        state["revisions"][commit] = {"record": hex_digest, "pulled_at": now}
                    elif held["record"] != hex_digest:
                        merged = merge_records(self.record(held["record"]), self.record(hex_digest))
                        held["record"] = self.put_record(merged) if merged is not self.record(held["record"]) \
                            else held["record"]
                    state["refs"][requested] = commit
                    kinds = state.setdefault("kinds", {})
                    if kind is None:
                        kinds.pop(requested, None)
                    else:
                        kinds[requested] = kind
                return state
            states[key] = self.bucket.compare_and_swap(self._ref_key(key), change)
        name = self._log({"op": "update", "models": sorted(mine), "scans": scans or []})
        catalog.apply_site(SiteChanges(entries=[name], models=[self._site_model(catalog, k, s) for k, s in
                                                               states.items()], scans=scans or []))

    def publish_removal(self, catalog: Catalog, key: str, commit: str | None) -> None:
        """Forget a model (or one revision) everywhere: its ref object, then a log entry, then this catalog."""
        def change(current):
            state = current or {"model": key, "revisions": {}, "refs": {}}
            gone = set(state["revisions"]) if commit is None else {commit}
            state["revisions"] = {c: v for c, v in state["revisions"].items() if c not in gone}
            state["refs"] = {n: c for n, c in state["refs"].items() if c not in gone}
            state["kinds"] = {n: k for n, k in (state.get("kinds") or {}).items() if n in state["refs"]}
            return state
        state = self.bucket.compare_and_swap(self._ref_key(key), change)
        name = self._log({"op": "update", "models": [key]})
        catalog.apply_site(SiteChanges(entries=[name], models=[self._site_model(catalog, key, state)]))

    def publish_scans(self, catalog: Catalog, scans: list[dict]) -> None:
        if not scans:
            return
        name = self._log({"op": "update", "scans": scans})
        catalog.apply_site(SiteChanges(entries=[name], scans=scans))

    def publish_allowance(self, catalog: Catalog, sha256: str, reason: str | None) -> None:
        """Allow one file (reason given) or revoke its allowance (None), for every host."""
        key = self.bucket.key("allowed", f"{sha256}.json")
        allowed = None
        if reason is None:
            self.bucket.delete(key)
        else:
            allowed = {"reason": reason, "allowed_at": utc_now()}
            self.bucket.put(key, encode(allowed))
        name = self._log({"op": "update", "allowed": [sha256]})
        catalog.apply_site(SiteChanges(entries=[name], allowances={sha256: allowed}))

    def publish_token(self, catalog: Catalog, token_id: str, record: TokenRecord | None) -> None:
        """Add a token (its record) or revoke it (None) on every host: a revoked token's object says so for good."""
        key = self.bucket.key("tokens", f"{token_id}.json")
        if record is None:
            self.bucket.put(key, encode({"revoked": True, "id": token_id}))
        elif not self.bucket.put_if_absent(key, encode(record.as_json())):  # ids are never reused
            raise SiteError(f"{self.bucket}: token {token_id} exists already")
        name = self._log({"op": "update", "tokens": [token_id]})
        catalog.apply_site(SiteChanges(entries=[name], tokens={token_id: record}))

    def publish_xet_layout(self, catalog: Catalog, sha256: str, xet_hash: str, layout: bytes) -> None:
        item = {"sha256": sha256, "xet_hash": xet_hash, "layout": base64.b64encode(layout).decode()}
        name = self._log({"op": "update", "xet": [item]})
        catalog.apply_site(SiteChanges(entries=[name], xet=[(sha256, xet_hash, layout)]))

    def publish_benchmark(self, catalog: Catalog, row: dict) -> None:
        row = {**row, "created_at": utc_now()}
        name = self._log({"op": "update", "benchmarks": [row]})
        catalog.apply_site(SiteChanges(entries=[name], benchmarks=[row]))

    # ---- refreshing ----
    def refresh(self, catalog: Catalog, *, full: bool = False) -> int:
        """Apply the log entries this catalog has not applied; return how many. One LIST when nothing is new."""
        prefix = self.bucket.key("log") + "/"
        start_after = None
        last = None if full else catalog.site_last_entry()
        if last:
            skew = float(os.environ.get(SKEW_ENV) or DEFAULT_SKEW_SECONDS)
            start_after = prefix + f"{max(0, int(last[:13]) - int(skew * 1000)):013d}"
        names = [key[len(prefix):] for key in self.bucket.list("log/", start_after)]
        names = [n for n in names if re.fullmatch(r"\d{13}-[a-z0-9-]+\.json", n)]
        applied = catalog.site_applied(names)
        pending = [n for n in names if n not in applied]
        for i in range(0, len(pending), 1000):  # a rebuild from a long log: a transaction per thousand entries
            self._apply(catalog, pending[i:i + 1000])
        return len(pending)

    def _apply(self, catalog: Catalog, names: list[str]) -> None:
        """Apply log entries `names` in one transaction. What cannot be read or does not check out (an entry, a
        model's ref object or record, an allowance) is skipped with one warning naming its key; the rest applies,
        and the entries count as applied (a skipped model is read again when a later entry names it)."""
        changes = SiteChanges(entries=list(names))
        models: set[str] = set()
        allowed: set[str] = set()
        tokens: set[str] = set()
        for name in names:
            key = self._log_key(name)
            try:
                got = self.bucket.get(key)
                entry = parse_entry(got[0] if got else b"{}")
            except SiteError as exc:
                log.warning("%s: log entry %s skipped: %s", self.bucket, key, exc)
                continue
            models.update(entry.models)
            allowed.update(entry.allowed)
            tokens.update(entry.tokens)
            changes.scans.extend(entry.scans)
            changes.benchmarks.extend(entry.benchmarks)
            changes.xet.extend(entry.xet)
        for key in sorted(models):
            try:
                changes.models.append(self._site_model(catalog, key, self.model_state(key)))
            except (SiteError, IntegrityError, ValueError, TypeError, KeyError, AttributeError) as exc:
                log.warning("%s: model %s skipped: its ref object or a record of it does not check out: %s",
                            self.bucket, key, exc)
        for sha256 in sorted(allowed):
            key = self.bucket.key("allowed", f"{sha256}.json")
            try:
                changes.allowances[sha256] = _allowance(self.bucket.get_json(key))
            except SiteError as exc:
                log.warning("%s: allowance %s skipped: %s", self.bucket, key, exc)
        for token_id in sorted(tokens):
            changes.tokens[token_id] = self._token(token_id)
        catalog.apply_site(changes)

    def _token(self, token_id: str) -> TokenRecord | None:
        """The token's record as the bucket holds it; None (revoked here too) where it says revoked, is gone, or
        does not check out: a token nobody can vouch for is refused."""
        key = self.bucket.key("tokens", f"{token_id}.json")
        try:
            value = self.bucket.get_json(key)
            if value is None or value.get("revoked"):
                return None
            record = TokenRecord.from_json(value)
            if record.id != token_id:
                raise ValueError(f"it is the record of {record.id}")
            return record
        except (SiteError, ValueError, AttributeError) as exc:
            log.warning("%s: token %s refused: %s", self.bucket, key, exc)
            return None

    def _site_model(self, catalog: Catalog, key: str, state: dict) -> SiteModel:
        """What the catalog must write so that `key` matches its ref object `state`."""
        local = catalog.site_records(key)
        records = {c: v["record"] for c, v in state.get("revisions", {}).items()}
        kinds = state.get("kinds") if isinstance(state.get("kinds"), dict) else {}
        model = SiteModel(key, records, dict(state.get("refs") or {}),
                          kinds={n: k for n, k in kinds.items() if k in REF_KINDS})
        for commit, info in state.get("revisions", {}).items():
            if local.get(commit) == info["record"]:
                continue
            revision, stored, plugin, description = parse_record(self.record(info["record"]))
            if revision.ref.key != key or revision.commit != commit:
                raise SiteError(f"{self.bucket}: record {info['record']} is not {key}@{commit}")
            model.write.append(SiteRevision(info["record"], revision, stored, plugin, description,
                                            info.get("pulled_at") or utc_now()))
        return model

    def referenced_digests(self) -> set[str]:
        """Every blob digest any record a ref object holds names (the bucket's own answer, for gc)."""
        digests: set[str] = set()
        for key in self.bucket.list("refs/"):
            state = self.bucket.get_json(key) or {}
            for info in (state.get("revisions") or {}).values():
                digests.update(f["sha256"] for f in self.record(info["record"]).get("files") or [])
        return digests
