"""Serving the mirror over HTTP with the Hugging Face Hub protocol: the server (app), the catalog seen as Hub
repositories (view), the Hub's documents (hf_api), and repo ids and commits (hub_ids).

The server is `hubmirror.serving.app` (`create_app`, `serve`); importing this package alone loads no HTTP stack.
"""
