"""Registry HTTP API v2, for what the engine cannot do: cheap checks and remote re-tags.

HEAD of a manifest answers "is this tag there, and which digest" in one request; GET plus PUT
copies a manifest to a new tag without pulling or pushing a layer. Credentials come from the
user's docker config (`docker login`), are sent only to the registry or its token realm, and
are never printed.
"""

import base64
import http.client
import json
import os
import re
import ssl
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from ...tasks.model.manifest import DEFAULT_RETRIES
from ..errors import DockerError
from .retry import retry

MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
_ACCEPT = ", ".join(MANIFEST_TYPES)
_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')
_LOOPBACK = re.compile(r"(localhost|127(\.\d+){3}|\[::1\])(:\d+)?")
TIMEOUT = 10


def is_loopback(host: str) -> bool:
    return bool(_LOOPBACK.fullmatch(host))


def docker_config_credentials(host: str) -> tuple[str, str] | None:
    """(user, secret) for ``host`` from ~/.docker/config.json or its credential helper."""
    folder = Path(os.environ.get("DOCKER_CONFIG", Path.home() / ".docker"))
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return None
    helper = config.get("credHelpers", {}).get(host) or config.get("credsStore")
    if helper:
        try:
            answer = subprocess.run([f"docker-credential-{helper}", "get"], input=host,
                                    capture_output=True, text=True, timeout=TIMEOUT)
            found = json.loads(answer.stdout) if answer.returncode == 0 else None
        except (OSError, ValueError, subprocess.TimeoutExpired):
            found = None
        if found and found.get("Secret"):
            return found.get("Username", ""), found["Secret"]
    entry = config.get("auths", {}).get(host) or config.get("auths", {}).get(f"https://{host}")
    if entry and entry.get("auth"):
        user, _, secret = base64.b64decode(entry["auth"]).decode().partition(":")
        return user, secret
    return None


def connect(host: str, registries=(), retries: int = DEFAULT_RETRIES) -> "Registry":
    """A client for ``host`` with the manifest's settings (tasks.registries.RegistrySettings):
    plain HTTP for loopback and declared-insecure hosts, a private CA where one is named;
    each request is retried ``retries`` times on a registry hiccup (builders.retry)."""
    settings = next((r for r in registries if r.host == host), None)
    insecure = is_loopback(host) or bool(settings and settings.insecure)
    return Registry(host, insecure, settings.ca if settings else None, retries)


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
        """GET /v2/ with the user's credentials: raise one clear DockerError if the registry is
        down, speaks another protocol, or refuses the credentials."""
        retry(self._ping, f"GET {self.base_url}/v2/", self.host, self.retries)

    def _ping(self) -> None:
        url = f"{self.base_url}/v2/"
        for attempt in range(2):
            request = urllib.request.Request(url)
            if self._token:
                request.add_header("Authorization", self._token)
            try:
                with urllib.request.urlopen(request, timeout=TIMEOUT, context=self._context()):
                    return
            except urllib.error.HTTPError as err:
                if err.code == 401 and attempt == 0:
                    self._token = self._authorize(err.headers.get("WWW-Authenticate", ""))
                    if self._token:
                        continue
                if err.code == 401:
                    raise DockerError(f"registry {self.host} refuses the credentials of "
                                      f"`docker login {self.host}`") from None
                raise DockerError(f"registry {self.host}: /v2/ answered {err.code}") from None
            except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
                reason = getattr(err, "reason", err)
                raise DockerError(f"registry {self.host} is unreachable ({self.base_url}): "
                                  f"{reason}") from None

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
            raise DockerError(f"{self.host}/{path}: repository not found for PUT {reference}")
        return response[0].get("Docker-Content-Digest", "")

    def _request(self, method: str, path: str, reference: str, body: bytes | None = None,
                 media_type: str | None = None):
        return retry(lambda: self._attempt(method, path, reference, body, media_type),
                     f"{method} {self.host}/{path}:{reference}", self.host, self.retries)

    def _attempt(self, method: str, path: str, reference: str, body: bytes | None,
                 media_type: str | None):
        url = f"{self.base_url}/v2/{path}/manifests/{urllib.parse.quote(reference, safe=':')}"
        for attempt in range(2):
            request = urllib.request.Request(url, data=body, method=method)
            request.add_header("Accept", _ACCEPT)
            if media_type:
                request.add_header("Content-Type", media_type)
            if self._token:
                request.add_header("Authorization", self._token)
            try:
                with urllib.request.urlopen(request, timeout=TIMEOUT,
                                            context=self._context()) as response:
                    return dict(response.headers), response.read()
            except urllib.error.HTTPError as err:
                if err.code == 404:
                    return None
                if err.code == 401 and attempt == 0:
                    self._token = self._authorize(err.headers.get("WWW-Authenticate", ""))
                    continue
                raise DockerError(f"{method} {url}: {err.code} {err.reason}") from None
            except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
                reason = getattr(err, "reason", err)
                raise DockerError(f"registry {self.host} unreachable: {reason}") from None
        raise DockerError(f"{method} {url}: unauthorized; run `docker login {self.host}`")

    def _authorize(self, challenge: str) -> str | None:
        """An Authorization header value for a Basic or Bearer challenge, or None."""
        scheme = challenge.split(" ", 1)[0].lower()
        credentials = docker_config_credentials(self.host)
        basic = None
        if credentials:
            basic = "Basic " + base64.b64encode(":".join(credentials).encode()).decode()
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
