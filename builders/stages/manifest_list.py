"""Stage three: assemble and push a manifest list over the pushed per-platform images.

Uses `docker manifest`, the seed's own tool, which brings the user's registry credentials and
`--insecure`. Two of its traps are handled here: `create --amend` merges into a stale local
list (docker/cli#954), so the local list is removed first and created from digests; and a
per-platform push from the containerd image store is itself an index (the image plus a
BuildKit attestation for `unknown/unknown`), so the platform's own manifest is picked out of it.
"""

import contextlib
import json
import re
from functools import partial

from ...tasks.model.manifest import Image
from ...tasks.model.platforms import Platform, from_oci
from ...tasks.model.reference import locate
from ...tasks.model.tags import platform_tag
from ..engine.cli import run
from ..engine.facts import is_loopback
from ..errors import DockerError
from ..registry.retry import is_retriable, retry
from .argv import annotate_argv, create_argv, inspect_argv, push_argv, rm_argv

_LIST_DIGEST = re.compile(r"^(sha256:[0-9a-f]{64})\s*$", re.MULTILINE)


def needs_insecure(repository: str, insecure_hosts: frozenset[str] = frozenset()) -> bool:
    """The CLI, unlike the engine, speaks plain HTTP only when told, even to loopback."""
    host = locate(repository)[0]
    return is_loopback(host) or host in insecure_hosts


def select_child(inspected: dict | list, platform: Platform, ref: str) -> dict:
    """Pick the descriptor of ``platform``'s image out of `docker manifest inspect --verbose`.

    A plain manifest is its own answer. In an index, attestation entries (`unknown/unknown`)
    are skipped and the entry whose platform normalises to ``platform`` is taken; when no
    entry says so but exactly one image is there, that one is taken and the list entry is
    annotated with the declared platform.
    """
    if isinstance(inspected, dict):
        return inspected["Descriptor"]
    images = [
        entry["Descriptor"] for entry in inspected
        if entry["Descriptor"].get("platform", {}).get("os", "unknown") != "unknown"
    ]
    matching = [d for d in images if from_oci(d.get("platform", {})) == platform]
    if len(matching) == 1:
        return matching[0]
    if not matching and len(images) == 1:
        return images[0]
    found = ", ".join(str(from_oci(d.get("platform", {}))) for d in images) or "none"
    raise DockerError(f"{ref} has no single image for {platform} (found: {found})")


# What `docker manifest inspect`/`create` (CLI 26) say when the manifest or config request
# fails with a 5xx, a reset or a stall: it tries its next endpoint and reports that one's
# complaint about the manifest it did get, not the cause.
_CLI_MASKED = "unsupported manifest format"


def cli_retriable(text: str) -> bool:
    """A registry hiccup as `docker manifest` reports it: the usual ones, and the fallback
    error that hides a 5xx or a dropped connection; the CLI's own words stay in the error."""
    return is_retriable(text) or _CLI_MASKED in text


def resolve_children(image: Image, tag: str, insecure: bool) -> list[tuple[str, Platform]]:
    """Each platform's pushed image for ``tag``, as ``repository@digest``, from the registry.

    Asking the registry rather than trusting the push stage means a list is only made of
    images that are really there.
    """
    children = []
    host = locate(image.repository)[0]
    for platform in image.platforms:
        ref = f"{image.repository}:{platform_tag(tag, platform)}"
        inspect_once = partial(run, inspect_argv(ref, insecure), f"inspect {ref}", echo=False)
        output = retry(inspect_once, f"inspect {ref}", host, image.retries, f"[{image.name}] ",
                       cli_retriable)
        try:
            inspected = json.loads(output)
        except json.JSONDecodeError:
            raise DockerError(f"inspect {ref}: not JSON", inspect_argv(ref, insecure),
                              output) from None
        descriptor = select_child(inspected, platform, ref)
        children.append((f"{image.repository}@{descriptor['digest']}", platform))
    return children


def publish(image: Image, insecure_hosts: frozenset[str] = frozenset()) -> dict:
    """Create and push ``repository:tag`` for every tag; return each list's digest.

    Every child of every list is resolved before the first list is pushed, so a missing
    platform stops the stage with nothing half-published.
    """
    insecure = needs_insecure(image.repository, insecure_hosts)
    prefix = f"[{image.name}] "
    planned = {tag: resolve_children(image, tag, insecure) for tag in image.tags}
    host = locate(image.repository)[0]
    lists = {}
    for tag, children in planned.items():
        list_ref = f"{image.repository}:{tag}"
        lists[list_ref] = retry(partial(_push_list, list_ref, children, insecure, prefix),
                                f"push manifest list {list_ref}", host, image.retries, prefix,
                                cli_retriable)
    return {"lists": lists, "children": {str(p): ref for ref, p in planned[image.tags[0]]}}


def _push_list(list_ref: str, children: list[tuple[str, Platform]], insecure: bool,
               prefix: str) -> str:
    """One attempt at a list: rm, create, annotate, `push --purge`; return its digest.

    A failed `push --purge` keeps the local list; every attempt starts from `rm` anyway, so
    a retry never pushes a list left half-made by the attempt before.
    """
    with contextlib.suppress(DockerError):  # no local list yet: the usual case
        run(rm_argv(list_ref), f"remove local list {list_ref}", echo=False)
    run(create_argv(list_ref, [ref for ref, _ in children], insecure),
        f"create manifest list {list_ref}", prefix=prefix)
    for child_ref, platform in children:
        run(annotate_argv(list_ref, child_ref, platform), f"annotate {child_ref}", prefix=prefix)
    output = run(push_argv(list_ref, insecure), f"push manifest list {list_ref}", prefix=prefix)
    found = _LIST_DIGEST.findall(output)
    if not found:
        raise DockerError(f"push manifest list {list_ref}: no digest in the output",
                          push_argv(list_ref, insecure), output)
    return found[-1]
