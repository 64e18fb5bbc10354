"""Serving the mirror over HTTP: the Hugging Face Hub protocol (hf_api), with repo ids and commits from hub_ids."""

from hubmirror.serving.hf_api import create_app, serve

__all__ = ["create_app", "serve"]
