"""`inspect:<image>`: each tag's list as the registry has it, checked against the manifest."""

import json

from ...tasks.model.manifest import Image
from ...tasks.model.platforms import from_oci, oci_text
from ..engine.cli import say
from ..errors import DockerError
from ..registry.client import repository_of

FORMATS = {
    "application/vnd.oci.image.index.v1+json": "OCI index",
    "application/vnd.docker.distribution.manifest.list.v2+json": "Docker manifest list",
    "application/vnd.oci.image.manifest.v1+json": "OCI manifest",
    "application/vnd.docker.distribution.manifest.v2+json": "Docker manifest",
}


def describe(image: Image, registries=()) -> list[str]:
    """Print-ready lines for every tag's list; raise DockerError when one is not what we declared.

    Attestation entries (`unknown/unknown`) are shown but not counted as platforms.
    """
    registry, path = repository_of(image, registries)
    declared = {str(p) for p in image.platforms}
    lines, problems = [], []
    for tag in image.tags:
        ref = f"{image.repository}:{tag}"
        found = registry.get(path, tag)
        if found is None:
            problems.append(f"{ref} is not in the registry")
            continue
        body, media_type, digest = found
        document = json.loads(body)
        lines.append(f"{ref}  {digest}  {FORMATS.get(media_type, media_type)}")
        pushed = set()
        for entry in document.get("manifests", []):
            platform = oci_text(entry.get("platform", {}))
            present = registry.head(path, entry["digest"]) is not None
            lines.append(f"  {platform or '?':<16} {entry['digest']}  {entry.get('size', 0):>6} B"
                         f"  {FORMATS.get(entry.get('mediaType'), entry.get('mediaType'))}"
                         + ("" if present else "  MISSING"))
            if not present:
                problems.append(f"{ref}: the {platform} image {entry['digest']} is missing")
            if platform.startswith("unknown"):
                continue
            known = from_oci(entry.get("platform", {}))
            pushed.add(str(known) if known else platform)
        if "manifests" not in document:
            problems.append(f"{ref} is a single image ({FORMATS.get(media_type)}), not a list")
        elif pushed != declared:
            problems.append(f"{ref} lists {', '.join(sorted(pushed)) or 'nothing'}; "
                            f"declared {', '.join(sorted(declared))}")
    if problems:
        raise DockerError(f"inspect {image.name}: " + "; ".join(problems),
                          output="\n".join(lines))
    return lines


def inspect(image: Image, registries=()) -> dict:
    """The inspect stage: print the lists, fail on a mismatch; return each list's digest."""
    lines = describe(image, registries)
    for line in lines:
        say(f"[{image.name}] {line}")
    return {"lists": {line.split()[0]: line.split()[1] for line in lines if not line[0].isspace()}}
