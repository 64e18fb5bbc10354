"""Registry credentials and the distribution auth flows: where docker, podman and oras keep credentials
(`REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json`, `~/.config/containers/auth.json`,
`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`: `auths.<host>.auth`, base64 of `user:password`), and a
requests auth that answers a 401's `WWW-Authenticate` challenge: `Basic` with those credentials, or `Bearer`: a token
from the challenge's realm for the challenge's service and scopes (asked with the credentials, else anonymously).
Credentials and tokens are never logged nor put in an error message.
"""

from __future__ import annotations

import base64
import json
import os
import re
import threading
from pathlib import Path
from urllib.parse import urlsplit

import requests

from hubmirror.errors import AccessDeniedError, UsageError

_PARAM = re.compile(r'(\w+)="([^"]*)"')


def auth_files() -> list[Path]:
    """The credential files docker, podman and oras read, in podman's order of precedence."""
    paths = []
    if os.environ.get("REGISTRY_AUTH_FILE"):
        paths.append(Path(os.environ["REGISTRY_AUTH_FILE"]))
    if os.environ.get("XDG_RUNTIME_DIR"):
        paths.append(Path(os.environ["XDG_RUNTIME_DIR"]) / "containers" / "auth.json")
    home = Path.home()
    paths.append(home / ".config" / "containers" / "auth.json")
    paths.append(Path(os.environ.get("DOCKER_CONFIG") or home / ".docker") / "config.json")
    return paths


def credentials_for(registry: str) -> tuple[str, str] | None:
    """(user, password) for `registry` (host[:port]) from the first credential file that names it, else None."""
    keys = (registry, f"https://{registry}", f"http://{registry}", f"https://{registry}/v1/", f"https://{registry}/v2/")
    for path in auth_files():
        if not path.is_file():
            continue
        try:
            auths = json.loads(path.read_text()).get("auths") or {}
        except (OSError, ValueError, AttributeError):
            raise UsageError(f"{path}: not a readable credentials file (JSON with `auths`)") from None
        for key in keys:
            entry = auths.get(key)
            if isinstance(entry, dict):
                return _user_password(entry, path)
    return None


def _user_password(entry: dict, path: Path) -> tuple[str, str]:
    if entry.get("username") and entry.get("password"):
        return entry["username"], entry["password"]
    try:
        user, sep, password = base64.b64decode(entry.get("auth") or "", validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        sep = ""
    if not sep:
        raise UsageError(f"{path}: an `auth` entry is not base64 of user:password")
    return user, password


def basic_header(credentials: tuple[str, str]) -> str:
    return "Basic " + base64.b64encode(f"{credentials[0]}:{credentials[1]}".encode()).decode()


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """(scheme, parameters) of a `WWW-Authenticate` header, the scheme lower-cased."""
    scheme, _, rest = header.strip().partition(" ")
    return scheme.lower(), dict(_PARAM.findall(rest))


class RegistryAuth(requests.auth.AuthBase):
    """Sends the registry's current Authorization to its own host only; on a 401, answers the challenge once and
    sends the request again (a request whose body cannot be rewound is not sent again)."""

    def __init__(self, registry: str, credentials: tuple[str, str] | None, scopes: list[str], timeout: float):
        self.registry = registry
        self.credentials = credentials
        self.scopes = scopes
        self.timeout = timeout
        self.header: str | None = None
        self._lock = threading.Lock()

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if self.header and urlsplit(request.url).netloc == self.registry:
            request.headers["Authorization"] = self.header
        request.register_hook("response", self._on_response)
        return request

    def _on_response(self, response: requests.Response, **kwargs) -> requests.Response:
        request = response.request
        if response.status_code != 401 or urlsplit(request.url).netloc != self.registry:
            return response
        body = request.body
        if body is not None and not isinstance(body, (bytes, str, memoryview)):
            return response  # a streamed body is gone; the caller authenticates before streaming
        header = self.answer(response.headers.get("WWW-Authenticate", ""), sent=request.headers.get("Authorization"))
        if header is None:
            return response
        response.content  # noqa: B018 -- read the 401 through, so that its connection can be reused
        response.close()
        again = request.copy()
        again.headers["Authorization"] = header
        again.hooks = {"response": []}  # answered once: a second 401 is the caller's error
        retried = response.connection.send(again, **kwargs)
        retried.history.append(response)
        retried.request = again
        return retried

    def answer(self, challenge: str, sent: str | None = None) -> str | None:
        """The Authorization header that answers `challenge` (and is kept for the next requests), or None."""
        scheme, params = parse_challenge(challenge)
        with self._lock:
            if self.header is not None and self.header != sent:
                return self.header  # another thread answered meanwhile
            if scheme == "basic":
                self.header = basic_header(self.credentials) if self.credentials else None
            elif scheme == "bearer" and params.get("realm"):
                self.header = "Bearer " + self._token(params)
            else:
                return None
            return self.header

    def _token(self, params: dict[str, str]) -> str:
        scopes = sorted(set(self.scopes) | ({params["scope"]} if params.get("scope") else set()))
        query = [("service", params["service"])] if params.get("service") else []
        query += [("scope", scope) for scope in scopes]
        headers = {"Authorization": basic_header(self.credentials)} if self.credentials else {}
        realm = params["realm"]
        try:
            resp = requests.get(realm, params=query, headers=headers, timeout=self.timeout)
        except requests.RequestException as exc:
            raise AccessDeniedError(f"cannot reach the registry's token service {realm}: {type(exc).__name__}") \
                from None
        if resp.status_code in (401, 403):
            raise AccessDeniedError(f"{self.registry}: the token service refused the credentials "
                                    f"(HTTP {resp.status_code})")
        try:
            doc = resp.json()
            token = doc.get("token") or doc.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if resp.status_code != 200 or not isinstance(token, str) or not token:
            raise AccessDeniedError(f"{self.registry}: the token service answered no token (HTTP {resp.status_code})")
        return token
