"""Registry HTTP API v2, for what the engine cannot do: cheap checks and remote re-tags.

HEAD of a manifest answers "is this tag there, and which digest" in one request; GET plus PUT
copies a manifest to a new tag without pulling or pushing a layer. Credentials come from the
user's docker config (`docker login`) or Podman's auth file (`podman login`), read by the docker
SDK's own reader; they are sent only to the registry or its token realm, and never printed.
"""

import base64
import hashlib
import http.client
import json
import os
import re
import ssl
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from ...tasks.model.manifest import DEFAULT_RETRIES, Image
from ...tasks.model.reference import locate
from ..engine.client import sdk
from ..engine.facts import is_loopback
from ..errors import RegistryError
from .retry import retry

MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
_ACCEPT = ", ".join(MANIFEST_TYPES)
_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')
TIMEOUT = 10
DOCKER_HUB = "registry-1.docker.io"  # where docker.io's API answers
# How a connection fails before the registry answers, in the words retries are said with.
# RemoteDisconnected is a ConnectionResetError, so it comes first.
_DROPS = (
    (http.client.RemoteDisconnected, "closed the connection"),
    (ConnectionResetError, "reset the connection"),
    (ConnectionRefusedError, "refused the connection"),
    (BrokenPipeError, "closed the connection (broken pipe)"),
    (ConnectionAbortedError, "closed the connection"),
    (http.client.IncompleteRead, "closed the connection mid-body"),
    (ssl.SSLEOFError, "closed the connection (EOF)"),
    (TimeoutError, "timed out"),
)
_NO_ANSWER = (urllib.error.URLError, OSError, http.client.HTTPException)


def dropped(err: BaseException) -> str | None:
    """How a request's connection failed, in words; None when it did not merely drop (an
    untrusted certificate, a host name that does not resolve)."""
    reason = getattr(err, "reason", err)  # URLError wraps the OS's error
    return next((words for kind, words in _DROPS if isinstance(reason, kind)), None)


def docker_config_credentials(host: str, path: str | None = None) -> tuple[str, str] | None:
    """(user, secret) for ``host`` from the docker config (or the auth file at ``path``, in
    the same format) or the credential helper it names, read as the SDK reads them
    (``docker.auth``); None when there are none."""
    docker = sdk()
    try:
        config = docker.auth.load_config(config_path=path)
        found = docker.auth.resolve_authconfig(config, "docker.io" if host == DOCKER_HUB else host)
    except (docker.errors.DockerException, ValueError):
        return None
    found = found or {}
    secret = found.get("Password") or found.get("password")
    return (found.get("Username") or found.get("username") or "", secret) if secret else None


def podman_auth_files() -> list[str]:
    """The auth files `podman login` writes, in the order Podman reads them
    (containers-auth.json(5)): $REGISTRY_AUTH_FILE, the runtime folder's, the config's."""
    runtime = os.environ.get("XDG_RUNTIME_DIR") or f"/run/containers/{os.getuid()}"
    if os.environ.get("XDG_RUNTIME_DIR"):
        runtime = os.path.join(runtime, "containers")
    files = [os.environ.get("REGISTRY_AUTH_FILE"), os.path.join(runtime, "auth.json"),
             os.path.expanduser("~/.config/containers/auth.json")]
    return [path for path in files if path and os.path.isfile(path)]


def credentials(host: str) -> tuple[str, str] | None:
    """(user, secret) for ``host``: `docker login`'s, else `podman login`'s."""
    found = docker_config_credentials(host)
    for path in podman_auth_files() if found is None else ():
        found = docker_config_credentials(host, path)
        if found:
            break
    return found


def connect(host: str, registries=(), retries: int = DEFAULT_RETRIES) -> "Registry":
    """A client for ``host`` with the manifest's settings (tasks.model.registries.RegistrySettings):
    plain HTTP for loopback and declared-insecure hosts, a private CA where one is named;
    each request is retried ``retries`` times on a registry hiccup (builders.registry.retry)."""
    settings = next((r for r in registries if r.host == host), None)
    insecure = is_loopback(host) or bool(settings and settings.insecure)
    return Registry(host, insecure, settings.ca if settings else None, retries)


def repository_of(image: Image, registries=()) -> tuple["Registry", str]:
    """A client for the registry ``image`` is pushed to, with its retries, and the
    repository's path there."""
    host, path, _ = locate(image.repository)
    return connect(host, registries, image.retries), path


@dataclass
class Registry:
    """One registry host; ``insecure`` means plain HTTP, as the engine speaks to loopback."""

    host: str
    insecure: bool = False
    ca: Path | None = None
    retries: int = DEFAULT_RETRIES
    _token: str | None = field(default=None, repr=False)

    def _context(self) -> ssl.SSLContext | None:
        if self.insecure or self.ca is None:
            return None
        return ssl.create_default_context(cafile=str(self.ca))

    @property
    def base_url(self) -> str:
        scheme = "http" if self.insecure else "https"
        return f"{scheme}://{self.host}"

    def ping(self) -> None:
        """GET /v2/ with the user's credentials: raise one clear RegistryError if the registry
        is down, speaks another protocol, or refuses the credentials."""
        what = f"GET {self.base_url}/v2/"
        retry(partial(self._ping, what), what, self.host, self.retries)

    def _ping(self, what: str) -> None:
        try:
            self._send(f"{self.base_url}/v2/", what,
                       f"registry {self.host} is unreachable ({self.base_url})")
        except urllib.error.HTTPError as err:
            message = (f"registry {self.host} refuses the credentials of `docker login "
                       f"{self.host}`" if err.code == 401
                       else f"registry {self.host}: /v2/ answered {err.code}")
            raise RegistryError(message, host=self.host, operation=what,
                                status=err.code) from None

    def head(self, path: str, reference: str) -> str | None:
        """The digest ``path:reference`` points at, or None when the registry has no such tag."""
        response = self._request("HEAD", path, reference)
        return None if response is None else response[0].get("Docker-Content-Digest")

    def get(self, path: str, reference: str) -> tuple[bytes, str, str] | None:
        """(body, media type, digest) of a manifest, or None when absent."""
        response = self._request("GET", path, reference)
        if response is None:
            return None
        headers, body = response
        return body, headers.get("Content-Type", ""), headers.get("Docker-Content-Digest", "")

    def put(self, path: str, reference: str, body: bytes, media_type: str) -> str:
        """Store a manifest under ``reference`` (a tag); return the digest the registry gives."""
        response = self._request("PUT", path, reference, body, media_type)
        if response is None:
            raise RegistryError(f"{self.host}/{path}: repository not found for PUT {reference}",
                                host=self.host, operation=f"PUT {self.host}/{path}:{reference}",
                                status=404)
        return response[0].get("Docker-Content-Digest", "")

    def blob(self, path: str, digest: str) -> bytes | None:
        """A blob's bytes (an image's config), checked against ``digest``; None when absent."""
        what = f"GET {self.host}/{path}@{digest}"
        return retry(partial(self._blob_attempt, what, path, digest), what, self.host,
                     self.retries)

    def _blob_attempt(self, what: str, path: str, digest: str) -> bytes | None:
        answer = self._attempt(what, "GET", f"{self.base_url}/v2/{path}/blobs/{digest}")
        if answer is None:
            return None
        if "sha256:" + hashlib.sha256(answer[1]).hexdigest() != digest:
            raise RegistryError(f"{what}: the bytes served do not match the digest",
                                host=self.host, operation=what)
        return answer[1]

    def _request(self, method: str, path: str, reference: str, body: bytes | None = None,
                 media_type: str | None = None) -> tuple[dict, bytes] | None:
        """(headers, body) of one manifest request, retried; None when the registry says 404."""
        what = f"{method} {self.host}/{path}:{reference}"
        url = f"{self.base_url}/v2/{path}/manifests/{urllib.parse.quote(reference, safe=':')}"
        headers = {"Accept": _ACCEPT, **({"Content-Type": media_type} if media_type else {})}
        attempt = partial(self._attempt, what, method, url, body, headers)
        return retry(attempt, what, self.host, self.retries)

    def _attempt(self, what: str, method: str, url: str, body: bytes | None = None,
                 headers: dict | None = None) -> tuple[dict, bytes] | None:
        """(headers, body) of one request; None when the registry says 404."""
        try:
            return self._send(url, what, f"registry {self.host} unreachable", method, body,
                              headers)
        except urllib.error.HTTPError as err:
            if err.code == 404:
                return None
            raise RegistryError(f"{method} {url}: {err.code} {err.reason}", host=self.host,
                                operation=what, status=err.code) from None

    def _send(self, url: str, what: str, unreachable: str, method: str = "GET",
              body: bytes | None = None, headers: dict | None = None) -> tuple[dict, bytes]:
        """(headers, body) of one request, sent once more with credentials when the registry
        asks for them (401) and there are some.

        Raises:
            urllib.error.HTTPError: the registry's answer, when it is not a success.
            RegistryError: no answer came; its message starts with ``unreachable``.
        """
        for attempt in range(2):
            request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
            if self._token:
                request.add_header("Authorization", self._token)
            try:
                with urllib.request.urlopen(request, timeout=TIMEOUT,
                                            context=self._context()) as response:
                    return dict(response.headers), response.read()
            except urllib.error.HTTPError as err:
                if err.code == 401 and attempt == 0:
                    self._token = self._authorize(err.headers.get("WWW-Authenticate", ""))
                    if self._token:
                        continue
                raise
            except _NO_ANSWER as err:
                reason = getattr(err, "reason", err)
                raise RegistryError(f"{unreachable}: {reason}", host=self.host, operation=what,
                                    dropped=dropped(err)) from None
        raise AssertionError("unreachable")

    def _authorize(self, challenge: str) -> str | None:
        """An Authorization header value for a Basic or Bearer challenge, or None."""
        scheme = challenge.split(" ", 1)[0].lower()
        found = credentials(self.host)
        basic = None
        if found:
            basic = "Basic " + base64.b64encode(":".join(found).encode()).decode()
        if scheme == "basic":
            return basic
        if scheme != "bearer":
            return None
        params = dict(_CHALLENGE.findall(challenge))
        query = {k: v for k, v in params.items() if k in ("service", "scope")}
        realm = params.get("realm", "")
        request = urllib.request.Request(f"{realm}?{urllib.parse.urlencode(query)}")
        if basic:
            request.add_header("Authorization", basic)
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT,
                                        context=self._context()) as response:
                answer = json.loads(response.read())
        except (urllib.error.URLError, OSError, ValueError):
            return None
        token = answer.get("token") or answer.get("access_token")
        return f"Bearer {token}" if token else None
