"""Served repo ids: plugins claim them through the `served_repo_id` hook, and no model hides another."""

import json

import pytest

from hubmirror.plugin_manager import PluginRegistry
from hubmirror.serving.hub_ids import assign_repo_ids, repo_id


def model(source, model_id, **metadata):
    return {"key": f"{source}:{model_id}", "source": source, "model_id": model_id, "metadata": json.dumps(metadata)}


@pytest.fixture(scope="module")
def registry():
    return PluginRegistry(load_entry_points=False)


def test_hook_served_repo_id(registry):
    """The hf plugin keeps hf ids, the timm plugin claims hf_hub_id, the core falls back to <source>/<id>."""
    assert repo_id(model("hf", "org/name"), registry) == "org/name"
    assert repo_id(model("timm", "vit_x.tag", hf_hub_id="timm/vit_x.tag"), registry) == "timm/vit_x.tag"
    assert repo_id(model("timm", "old_x"), registry) == "timm/old_x"
    assert repo_id(model("torchhub", "snakers4/silero-vad/silero_vad"), registry) == \
        "torchhub/snakers4--silero-vad--silero_vad"


def test_a_model_never_hides_another_under_one_served_id(registry):
    """`timm:x` (served under its hf_hub_id timm/x) and `hf:timm/x` both stay reachable; the hf model owns its id."""
    hf = model("hf", "timm/test_vit.r160_in1k")
    timm = model("timm", "test_vit.r160_in1k", hf_hub_id="timm/test_vit.r160_in1k")
    for order in ([hf, timm], [timm, hf]):
        assigned = assign_repo_ids(order, registry)
        assert assigned["timm/test_vit.r160_in1k"] is hf
        assert len(assigned) == 2 and timm in assigned.values()
        assert assigned["hubmirror/timm--test_vit.r160_in1k"] is timm  # its default id timm/<id> is hf's too
