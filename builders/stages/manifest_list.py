"""Stage three: assemble and push a manifest list over the pushed per-platform images.

Spoken over the registry's HTTP API (builders.registry.client): one GET per child and one PUT
per list, instead of a `docker manifest` process, and a rewrite of its local store, for every
inspect, create, annotate and push. The list is byte for byte the one `docker manifest create`
+ `annotate` + `push` would make. A per-platform push from the containerd image store is itself
an index (the image plus a BuildKit attestation for `unknown/unknown`), so the platform's own
manifest is picked out of it.
"""

import hashlib
import json

from ...tasks.model.manifest import Image
from ...tasks.model.platforms import Platform, from_oci
from ...tasks.model.registries import RegistrySettings
from ...tasks.model.tags import platform_tag
from ..engine.cli import say
from ..errors import DockerError
from ..registry.client import Registry, repository_of

DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def digest_of(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


def select_child(manifests: list[dict], platform: Platform, ref: str) -> dict:
    """Pick the descriptor of ``platform``'s image out of an index's ``manifests``.

    Attestation entries (`unknown/unknown`) are skipped and the entry whose platform
    normalises to ``platform`` is taken; when no entry says so but exactly one image is
    there, that one is taken, and the list gives it the declared platform.
    """
    images = [d for d in manifests if d.get("platform", {}).get("os", "unknown") != "unknown"]
    matching = [d for d in images if from_oci(d.get("platform", {})) == platform]
    if len(matching) == 1:
        return matching[0]
    if not matching and len(images) == 1:
        return images[0]
    found = ", ".join(str(from_oci(d.get("platform", {}))) for d in images) or "none"
    raise DockerError(f"{ref} has no single image for {platform} (found: {found})")


def child_descriptor(body: bytes, media_type: str, platform: Platform, ref: str) -> dict:
    """The list entry for ``platform``, from the manifest the registry serves at ``ref``.

    Only mediaType, size and digest are kept, as `docker manifest create` fetches the child
    by digest; the platform is the declared one, as `annotate --os --arch --variant` sets it.
    """
    try:
        document = json.loads(body)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise DockerError(f"{ref}: the registry's manifest is not a JSON object",
                          output=body[:200].decode(errors="replace"))
    if "manifests" in document:
        chosen = select_child(document["manifests"], platform, ref)
        descriptor = {key: chosen[key] for key in ("mediaType", "size", "digest")}
    else:
        descriptor = {"mediaType": media_type or document.get("mediaType", ""),
                      "size": len(body), "digest": digest_of(body)}
    return {**descriptor, "platform": platform.to_oci()}


def in_cli_order(children: list[dict]) -> list[dict]:
    """``children`` in the order `docker manifest push` lists them: its local store hands them
    back in file-name order, which within one repository is digest order."""
    return sorted(children, key=lambda child: child["digest"])


def list_body(children: list[dict]) -> tuple[bytes, str]:
    """The list over ``children``, in their order, as `docker manifest push` serialises it, and
    its media type: the same children give the same bytes, and so the same digest.

    As docker/distribution's manifestlist.FromDescriptors decides: an OCI index when the
    first child is an OCI manifest, a Docker manifest list otherwise, mixed children or not;
    the 3-space indent is its MarshalIndent.
    """
    media_type = OCI_INDEX if children and children[0]["mediaType"] == OCI_MANIFEST \
        else DOCKER_LIST
    document = {"schemaVersion": 2, "mediaType": media_type, "manifests": children}
    return json.dumps(document, indent=3).encode(), media_type


def resolve_children(image: Image, tag: str, registry: Registry, path: str) -> list[dict]:
    """Each platform's list entry for ``tag``, from its per-platform tag in the registry.

    Asking the registry rather than trusting the push stage means a list is only made of
    images that are really there.
    """
    children = []
    for platform in image.platforms:
        child_tag = platform_tag(tag, platform)
        ref = f"{image.repository}:{child_tag}"
        found = registry.get(path, child_tag)
        if found is None:
            raise DockerError(f"{ref} is not in the registry")
        body, media_type, _ = found
        children.append(child_descriptor(body, media_type, platform, ref))
    return children


def publish(image: Image, registries: tuple[RegistrySettings, ...] = ()) -> dict:
    """Push the list ``repository:tag`` for every tag; return each list's digest.

    Every child of every list is resolved before the first list is pushed, so a missing
    platform stops the stage with nothing half-published. A list is one PUT, retried on a
    registry hiccup by the client, so the registry never holds half of one.

    Args:
        registries: the manifest's RegistrySettings (plain HTTP, private CAs).
    """
    registry, path = repository_of(image, registries)
    prefix = f"[{image.name}] "
    planned = {tag: resolve_children(image, tag, registry, path) for tag in image.tags}
    lists = {}
    for tag, children in planned.items():
        list_ref = f"{image.repository}:{tag}"
        listed = in_cli_order(children)
        body, media_type = list_body(listed)
        sources = " ".join(f"{image.repository}@{child['digest']}" for child in listed)
        say(f"{prefix}$ docker buildx imagetools create -t {list_ref} {sources}")
        lists[list_ref] = registry.put(path, tag, body, media_type) or digest_of(body)
    first = planned[image.tags[0]]
    return {"lists": lists,
            "children": {str(platform): f"{image.repository}@{child['digest']}"
                         for platform, child in zip(image.platforms, first, strict=True)}}
