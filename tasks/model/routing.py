"""The `builders:` section: which Docker engine builds each platform (native nodes, issue #7)."""

import re
from dataclasses import dataclass
from pathlib import Path

from .fields import Fields, kind_of, unknown
from .platforms import Platform, parse_platform

DEFAULT = "default"
SCHEMES = ("unix://", "tcp://", "ssh://", "npipe://")
NODE_KEYS = frozenset({"docker_host", "context", "connection", "emulate", "tls"})
TLS_KEYS = ("ca", "cert", "key")
TLS_FOLDER = "tls"  # under the state folder: one DOCKER_CERT_PATH per node
# The docker CLI's context name rule (cli/command/context.go, validateContextName).
_CONTEXT_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.+-]*")


@dataclass(frozen=True)
class NodeTLS:
    """A tcp:// node's mutual TLS: the CA its server certificate is checked against, and the
    client certificate and key it checks ours by.

    ``folder`` is the DOCKER_CERT_PATH the docker CLI is given: the CLI only reads `ca.pem`,
    `cert.pem` and `key.pem` there, so the three files (any names, anywhere) are copied in
    before a CLI command runs (builders.engine.client.cert_path).
    """

    ca: Path
    cert: Path
    key: Path
    folder: Path


@dataclass(frozen=True)
class Node:
    """One engine: a DOCKER_HOST, a docker context, a podman system connection, or (none of
    them) the environment's engine.

    ``emulate`` says what to do when the node does not answer: build on the default engine
    under QEMU (true), or fail at once (false).
    """

    docker_host: str | None = None
    context: str | None = None
    emulate: bool = True
    connection: str | None = None
    tls: NodeTLS | None = None

    @property
    def name(self) -> str:
        """The engine as the user wrote it: the DOCKER_HOST, the context, the connection, or
        ``default``."""
        return self.docker_host or self.context or self.connection or DEFAULT

    @property
    def from_environment(self) -> bool:
        """True for the engine DOCKER_HOST/DOCKER_CONTEXT (or podman's default connection) of
        the run itself point at."""
        return self.docker_host is None and self.context is None and self.connection is None


LOCAL = Node()


@dataclass(frozen=True)
class Routing:
    """Platform → engine; platforms without a route build on ``default``."""

    routes: tuple[tuple[Platform, Node], ...] = ()
    default: Node = LOCAL

    def node_for(self, platform: Platform) -> Node:
        return dict(self.routes).get(platform, self.default)

    def node_named(self, name: str | None) -> Node | None:
        """The node a build reported it used (``"builder"`` in its result), for the push."""
        if name is None:
            return None
        if name == self.default.name:
            return self.default
        return next((node for _, node in self.routes if node.name == name), None)

    @property
    def nodes(self) -> tuple[Node, ...]:
        return tuple(dict.fromkeys([self.default, *(node for _, node in self.routes)]))


def parse_builders(fields: Fields, raw, platforms: tuple[Platform, ...], base: Path = Path("."),
                   state_dir: Path = Path(".multiarch")) -> Routing:
    """Read `builders:`; ``platforms`` are every platform some image builds; `tls:` paths are
    relative to ``base`` (the manifest's folder) and copied under ``state_dir``.

    A key is ``default`` or a platform (normalised, so `linux/aarch64` routes linux/arm64);
    routing a platform no image builds is a typo until proven otherwise.
    """
    table = fields.mapping(raw, "builders", None)
    allowed = [DEFAULT, *(str(p) for p in platforms)]
    routes: dict[Platform, tuple[str, Node]] = {}
    default = LOCAL
    for text, entry in table.items():
        key = f"builders.{text}"
        if text == DEFAULT:
            default = _parse_node(fields, entry, key, True, base, state_dir)
            continue
        try:
            platform = parse_platform(text)
        except ValueError:
            raise fields.fail(key, unknown(text, allowed)) from None
        if platform not in platforms:
            raise fields.fail(key, f"no image builds {platform} (allowed: {', '.join(allowed)})")
        if platform in routes:
            raise fields.fail(key, f"{platform} is routed twice (also as {routes[platform][0]!r})")
        routes[platform] = (text, _parse_node(fields, entry, key, False, base, state_dir))
    return Routing(tuple((platform, node) for platform, (_, node) in routes.items()), default)


def _parse_node(fields: Fields, entry, key: str, is_default: bool, base: Path,
                state_dir: Path) -> Node:
    if entry is None and is_default:
        return LOCAL
    values = fields.mapping(entry, key, NODE_KEYS)
    docker_host = fields.string(values, f"{key}.docker_host", None)
    context = fields.string(values, f"{key}.context", None)
    connection = fields.string(values, f"{key}.connection", None)
    if sum(value is not None for value in (docker_host, context, connection)) > 1:
        raise fields.fail(key, "set one of docker_host, context or connection")
    if docker_host is not None:
        _check_host(fields, f"{key}.docker_host", docker_host)
    for name, value in (("context", context), ("connection", connection)):
        if value is not None and not _CONTEXT_NAME.fullmatch(value):
            raise fields.fail(f"{key}.{name}", f"invalid {name} name {value!r}: letters, "
                              "digits, '_', '.', '+', '-', not starting with a symbol")
    if "emulate" in values:
        if is_default:
            raise fields.fail(f"{key}.emulate", "the default engine has nothing to fall back "
                              "to; set emulate on a platform's builder")
        if not isinstance(values["emulate"], bool):
            raise fields.fail(f"{key}.emulate",
                              f"expected true or false, got {kind_of(values['emulate'])}")
    if not is_default and docker_host is None and context is None and connection is None:
        raise fields.fail(key, "name the engine: docker_host (unix://, tcp://, ssh://, "
                          "npipe://), context (a docker context) or connection (a podman "
                          "system connection)")
    tls = None
    if "tls" in values:
        tls = _parse_tls(fields, values["tls"], f"{key}.tls", docker_host, base, state_dir)
    return Node(docker_host, context, values.get("emulate", True), connection, tls)


def _parse_tls(fields: Fields, raw, key: str, docker_host: str | None, base: Path,
               state_dir: Path) -> NodeTLS:
    """`tls: {ca, cert, key}`: only a tcp:// engine speaks TLS itself (ssh:// has its own
    keys; a context carries its TLS), and all three files must be there now, not at the
    first build."""
    if docker_host is None or not docker_host.startswith("tcp://"):
        raise fields.fail(key, "tls needs a tcp:// docker_host")
    table = fields.mapping(raw, key, frozenset(TLS_KEYS))
    paths = []
    for name in TLS_KEYS:
        path = base / fields.string(table, f"{key}.{name}", required=True)
        if not path.is_file():
            raise fields.fail(f"{key}.{name}", f"no such file: {path}")
        paths.append(path)
    folder = state_dir / TLS_FOLDER / re.sub(r"[^A-Za-z0-9._-]+", "-", docker_host)
    return NodeTLS(*paths, folder)


def _check_host(fields: Fields, key: str, host: str) -> None:
    scheme = next((s for s in SCHEMES if host.startswith(s)), None)
    if scheme is None:
        raise fields.fail(key, f"unsupported address {host!r}; allowed schemes: "
                          f"{', '.join(SCHEMES)}")
    if len(host) == len(scheme) or any(c.isspace() for c in host):
        raise fields.fail(key, f"invalid address {host!r}: expected {scheme}<where>")
