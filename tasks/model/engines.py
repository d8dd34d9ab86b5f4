"""`engine:`: the engine family that builds (Docker or Podman), and what each one cannot do."""

from .fields import Fields

DOCKER = "docker"
PODMAN = "podman"
ENGINES = (DOCKER, PODMAN)
# What a manifest for Podman asks instead of a Docker-only key.
_PODMAN_HAS_NO = {
    "strategy": "strategy buildx needs Docker's buildx; with engine: podman use strategy: "
                "manifest (a podman build per platform, then the list)",
    "builder": "builder names a buildx builder, which engine: podman has none of; remove it",
    "attestations": "attestations are BuildKit's; podman build makes none: remove "
                    "attestations or set it to false",
    "outputs": "outputs besides registry are exported by buildx; with engine: podman only "
               "[registry] is allowed",
}


def check_engine(fields: Fields, manifest, top: dict) -> None:
    """Refuse what ``manifest`` (a tasks.model.manifest.Manifest) asks of an engine family
    that cannot do it, naming the key; ``top`` is the document as written, to name where a
    setting came from (an image's own key or the top level's default)."""
    engine = manifest.engine
    if engine is not None and engine not in ENGINES:
        raise fields.fail("engine", f"unknown engine {engine!r}; allowed: {', '.join(ENGINES)}")
    routing = manifest.routing
    routes = [*routing.routes, *((("default", routing.default),)
                                 if not routing.default.from_environment else ())]
    for platform, node in routes:
        key = f"builders.{platform}"
        if engine == PODMAN and node.connection is None:
            raise fields.fail(key, "engine: podman reaches a node by connection (a `podman "
                              "system connection` name), not docker_host or context")
        if engine != PODMAN and node.connection is not None:
            raise fields.fail(f"{key}.connection", "connection names a podman system "
                              "connection: set `engine: podman`, or use docker_host or context")
    if engine != PODMAN:
        return
    if manifest.builder is not None:
        raise fields.fail("builder", _PODMAN_HAS_NO["builder"])
    raw_images = top.get("images") or {}
    for image in manifest.images:
        method = image.method
        found = {"strategy": method.strategy == "buildx",
                 "attestations": method.attestations not in (None, "false"),
                 "outputs": any(output.type != "registry" for output in method.outputs)}
        for name, refused in found.items():
            if refused:
                own = isinstance(raw_images.get(image.name), dict) \
                    and name in raw_images[image.name]
                key = f"images.{image.name}.{name}" if own or name == "outputs" else name
                raise fields.fail(key, _PODMAN_HAS_NO[name])
