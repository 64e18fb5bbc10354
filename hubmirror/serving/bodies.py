"""Request bodies read with a bound: a client (signed in or not) can make the server hold at most `limit` bytes of
what it sends, whatever its Content-Length says or does not say."""

from __future__ import annotations

from starlette.requests import Request

MAX_API_BODY = 1 << 20  # POST …/paths-info: huggingface_hub sends paths in batches; a megabyte is thousands of them
MAX_FORM_BODY = 16 << 10  # POST /login: a token and where to go next


class BodyTooLarge(Exception):
    """The request's body is over the limit (answered 413, the rest never read)."""


async def bounded_body(request: Request, limit: int) -> bytes:
    """The whole body of `request`, or `BodyTooLarge` as soon as it is known to exceed `limit` bytes (from its
    Content-Length before anything is read, else while it streams in)."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and (len(declared) > 12 or int(declared) > limit):
        raise BodyTooLarge(f"the request body is over {limit} bytes")
    held = bytearray()
    async for chunk in request.stream():
        held += chunk
        if len(held) > limit:
            raise BodyTooLarge(f"the request body is over {limit} bytes")
    return bytes(held)
