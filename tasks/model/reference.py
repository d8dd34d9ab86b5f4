"""Image reference validation, ported from the distribution/reference grammar."""

import json
import re

# Pieces named as in distribution/reference regexp.go. Character classes are spelled out
# because Python's \w and [[:xdigit:]] differ from Go's (\w is Unicode-aware here).
_ALPHANUMERIC = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALPHANUMERIC}(?:{_SEPARATOR}{_ALPHANUMERIC})*"
_REMOTE_NAME = rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_DOMAIN_NAME_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = rf"{_DOMAIN_NAME_COMPONENT}(?:\.{_DOMAIN_NAME_COMPONENT})*"
_IPV6_ADDRESS = r"\[(?:[a-fA-F0-9:]+)\]"
_DOMAIN_AND_PORT = rf"(?:{_DOMAIN_NAME}|{_IPV6_ADDRESS})(?::[0-9]+)?"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_IDENTIFIER = r"[a-f0-9]{64}"

NAME_TOTAL_LENGTH_MAX = 255

_TAG_RULE = (
    'a tag is up to 128 characters of [A-Za-z0-9_.-], not starting with "." or "-"'
)
_DIGEST_RULE = (
    'a digest is "algorithm:hex" with 32 or more hex digits, like "sha256:..."'
)
_REGISTRY_RULE = (
    "a registry is a host name, IPv4 address or [IPv6] address with an optional :port,"
    " without scheme or path"
)
_NAME_RULE = (
    'a repository name is lowercase [a-z0-9] components separated by "/",'
    ' joined inside by ".", "_", "__" or "-", optionally after a registry like'
    ' "localhost:5000/"'
)


def _quote(value: str) -> str:
    # JSON escaping keeps messages on one line and shows newlines and look-alikes.
    return json.dumps(value)


def validate_tag(tag: str) -> str:
    """Return ``tag`` unchanged, or raise ValueError: tags end up in argv and URLs."""
    if not re.fullmatch(_TAG, tag):
        raise ValueError(f"invalid tag {_quote(tag)}: {_TAG_RULE}")
    return tag


def validate_digest(digest: str) -> str:
    """Return ``digest`` unchanged or raise ValueError; syntax only, like WithDigest."""
    if not re.fullmatch(_DIGEST, digest):
        raise ValueError(f"invalid digest {_quote(digest)}: {_DIGEST_RULE}")
    return digest


def validate_registry(host: str) -> str:
    """Return ``host`` unchanged if it is a registry domain[:port], else ValueError.

    Only the grammar's domain rule is checked, so ``localhost:5000`` and ``[::1]:5000``
    pass while ``https://registry`` and ``registry/path`` do not; nothing is resolved.
    """
    if not re.fullmatch(_DOMAIN_AND_PORT, host):
        raise ValueError(f"invalid registry {_quote(host)}: {_REGISTRY_RULE}")
    return host


def split_domain(name: str) -> tuple[str, str]:
    """Split ``name`` into (domain, remainder) as Docker decides what is a registry.

    Like distribution's ``splitDockerDomain``, the first component is a domain only
    when more components follow and it is ``localhost``, contains ``.`` or ``:``, or
    has uppercase (paths cannot). Unlike it, no ``docker.io``/``library/`` defaults
    are applied: the domain is ``""`` when the name has none. Nothing is validated.
    """
    first, sep, rest = name.partition("/")
    if sep and (
        first == "localhost" or any(c in first for c in ".:") or first != first.lower()
    ):
        return first, rest
    return "", name


def repository_name(name: str, default_registry: str | None) -> str:
    """Validate a repository name without tag or digest and return it fully qualified.

    A name with its own domain is kept; otherwise ``default_registry + "/"`` is
    prepended when given. With no default the name is returned as is, so Docker's
    own ``docker.io`` normalisation applies later.

    Raises:
        ValueError: empty, bad characters, uppercase path, a tag or digest present, an
            invalid domain, or a qualified name over 255 characters.
    """
    bad = f"invalid repository name {_quote(name)}"
    if not name:
        raise ValueError(f"{bad}: a repository name must not be empty")
    domain, path = split_domain(name)
    if "@" in name:
        raise ValueError(f"{bad}: a repository name must not include a digest")
    if ":" in path:
        raise ValueError(f"{bad}: a repository name must not include a tag")
    if re.fullmatch(_IDENTIFIER, name):
        raise ValueError(f"{bad}: a repository name must not be a 64-hex image ID")
    if domain and not re.fullmatch(_DOMAIN_AND_PORT, domain):
        raise ValueError(
            f"{bad}: its registry {_quote(domain)} is invalid; {_REGISTRY_RULE}"
        )
    if not re.fullmatch(_REMOTE_NAME, path):
        if re.fullmatch(_REMOTE_NAME, path.lower()):
            raise ValueError(f"{bad}: a repository name must be lowercase")
        raise ValueError(f"{bad}: {_NAME_RULE}")
    if not domain and default_registry is not None:
        name = f"{validate_registry(default_registry)}/{name}"
    if len(name) > NAME_TOTAL_LENGTH_MAX:
        raise ValueError(
            f"{bad}: a repository name must not be more than"
            f" {NAME_TOTAL_LENGTH_MAX} characters including its registry"
        )
    return name


def _split(ref: str) -> tuple[str, str | None, str | None]:
    """(name, tag, digest) of a reference as written; tag and digest None when absent."""
    name, _, digest = ref.partition("@")
    slash, colon = name.rfind("/"), name.rfind(":")
    tag = None
    if colon > slash:
        name, tag = name[:colon], name[colon + 1:]
    return name, tag, digest or None


def split_tag(ref: str) -> tuple[str, str]:
    """("localhost:5000/base", "v1") from "localhost:5000/base:v1"; no tag means latest."""
    name, tag, _ = _split(ref)
    return name, tag or "latest"


def locate(ref: str) -> tuple[str, str, str]:
    """(registry host, repository path, tag or digest) of a reference, with Docker's rules for
    Docker Hub: no host is ``docker.io``, and a one-component path is in ``library/``."""
    name, tag, digest = _split(ref)
    host, path = split_domain(name)
    if not host or host in ("docker.io", "index.docker.io"):
        host = "docker.io"
        if "/" not in path:
            path = f"library/{path}"
    return host, path, digest or tag or "latest"
