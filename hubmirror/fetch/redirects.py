"""Where a redirect may lead: never from an upstream into a network it is not itself part of (SSRF). A hub, or a
model author who controls a URL, can answer with a redirect to `http://169.254.169.254/…` (a cloud's metadata
service) or to a service on the mirror's own private network; the download would fetch it and reveal what it read.

The rule: a redirect goes to http or https only, and to an address that is public, or of the same kind as the address
the request began at (an upstream on loopback may redirect to loopback, one on a private network to that network).
Every address the target's name resolves to is checked, before any connection is made to it."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from hubmirror.errors import AccessDeniedError


class RedirectRefused(AccessDeniedError):
    """A redirect that would lead into a network the upstream is not part of."""


def address_kind(host: str) -> str:
    """`public`, or the kind of internal address the name resolves to (`loopback`, `link-local`, `private`,
    `reserved`; the most internal when it resolves to several)."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return "unresolvable"
    kinds = set()
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%", 1)[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        if address.is_loopback:
            kinds.add("loopback")
        elif address.is_link_local:
            kinds.add("link-local")
        elif address.is_private:
            kinds.add("private")
        elif address.is_reserved or address.is_multicast or address.is_unspecified:
            kinds.add("reserved")
        else:
            kinds.add("public")
    for kind in ("loopback", "link-local", "reserved", "private", "public"):
        if kind in kinds:
            return kind
    return "unresolvable"


def check_redirect(origin: str, target: str, *, how: str = "redirected to") -> None:
    """Refuse (RedirectRefused) a redirect from `origin` to `target` that the rule above forbids (also for a URL an
    answer of `origin` sends the client to: `how` says so in the error)."""
    parts = urlsplit(target)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RedirectRefused(f"{urlsplit(origin).hostname} {how} a {parts.scheme or 'relative'}: URL: "
                              "refused (only http and https are followed)")
    kind = address_kind(parts.hostname)
    if kind == "public":
        return
    source = urlsplit(origin).hostname or ""
    if kind != "unresolvable" and kind == address_kind(source):
        return
    raise RedirectRefused(f"{source} {how} {parts.hostname}, a {kind} address: refused (an upstream may not "
                          "lead into a network it is not part of)")
