"""Models from OCI registries: `oci:HOST[:PORT]/REPO[@TAG|@COMMIT]`, the name `hubmirror import oci://…` gives a
ModelPack artifact that carries no hubmirror catalog layer (one another tool pushed), so that `show`, `verify`,
`export`, `rm` and serving name it like any model. The revision is the tag it was imported by, or its commit (the
manifest's sha256). They are served under the repository's last two path components (`packed/tiny` for
`oci:HOST/packed/tiny`; `oci/NAME` for a one-component repository), an id Hugging Face clients accept. Such
models come in through `hubmirror import oci://HOST/REPO[:TAG|@sha256:…]`, which checks signatures where the mirror
pins keys; `pull` refuses them and says so.
"""

from __future__ import annotations

import re

from hubmirror.api import (
    Download,
    ModelRef,
    RemoteFile,
    ResolvedRevision,
    Source,
    SourceContext,
    UsageError,
    hookimpl,
    parse_target,
)


class OciSource(Source):
    name = "oci"
    description = "ModelPack artifacts imported from OCI registries (hubmirror import oci://HOST/REPO:TAG)"

    def parse(self, spec: str) -> ModelRef:
        ref = super().parse(spec)
        target = parse_target(f"oci://{ref.model_id}")
        if target.reference:
            raise UsageError(f"oci:{spec}: name the revision as oci:HOST/REPO@TAG, not with ':' or '@sha256:'")
        return ref

    def resolve(self, ref: ModelRef, ctx: SourceContext) -> ResolvedRevision:
        raise UsageError(f"{ref}: models of OCI registries come in by `hubmirror import oci://{ref.model_id}"
                         "[:TAG|@sha256:…]` (--plain-http for a registry without TLS)")

    def open_file(self, revision: ResolvedRevision, file: RemoteFile, ctx: SourceContext, offset: int = 0) -> Download:
        raise UsageError(f"{revision.ref}: files of OCI registry models come in by `hubmirror import oci://…`")


@hookimpl
def register_sources(register):
    register(OciSource())


@hookimpl
def served_repo_id(model):
    """`NAMESPACE/NAME` from the repository's path (runs of `-` made one: clients refuse `--` in an id)."""
    if model["source"] == OciSource.name:
        repository = model["model_id"].split("/")[1:]  # the host, then the repository's components
        return re.sub(r"-{2,}", "-", "/".join((["oci"] + repository)[-2:]))[:96]
    return None
