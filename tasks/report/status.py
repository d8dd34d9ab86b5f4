"""`doit status`: per image and platform, up to date or why not, and what the registry has."""

import contextlib

from ...builders.engine.cli import say
from ...builders.registry.probe import UNKNOWN
from ..inputs.digests import Inputs
from ..inputs.explain import explain
from ..model.manifest import Image, Manifest
from ..model.platforms import Platform
from ..model.tags import content_tag


def _registry_state(probe, ref: str) -> str:
    if probe is None:
        return ""
    found = probe.digest(ref)
    if found == UNKNOWN:
        return "registry did not answer"
    return "not in the registry" if found is None else f"pushed {found[:19]}"


def _push_state(probe, image: Image, platform: Platform, digest: str) -> str:
    """"up to date" once the registry has this build: the recorded inputs say only that it
    was built, and a run stopped before its push leaves the tag at an older image. A push
    sends the content tag after the platform's tags, so both at one digest mean it finished.
    """
    if probe is None or image.method.strategy != "manifest":
        return "up to date"
    tag = probe.digest(image.platform_refs(platform)[0])
    cached = probe.digest(f"{image.repository}:{content_tag(digest)}")
    if UNKNOWN in (tag, cached) or (cached is not None and tag == cached):
        return "up to date"
    return "built, not pushed yet"


def _expect_content_tags(manifest: Manifest, inputs: Inputs, probe) -> None:
    """Ask for every content tag in the probe's one concurrent round, not one by one."""
    for image in manifest.images:
        if image.method.strategy == "manifest":
            for platform in image.platforms:
                with contextlib.suppress(OSError, ValueError):
                    digest = inputs.digest(image, platform)
                    probe.expect([f"{image.repository}:{content_tag(digest)}"])


def report(manifest: Manifest, inputs: Inputs, probe=None) -> list[str]:
    """One line per image and platform and one per list: state, then the reason or digest."""
    if probe is not None:
        _expect_content_tags(manifest, inputs, probe)
    lines = []
    for image in manifest.images:
        for platform in image.platforms:
            try:
                current = inputs.breakdown(image, platform)
            except OSError as err:
                lines.append(f"{image.name} {platform}: cannot read inputs: {err}")
                continue
            recorded = inputs.recorded(image, platform)
            if recorded == current:
                state = _push_state(probe, image, platform, inputs.digest(image, platform))
            else:
                state = "rebuild: " + "; ".join(explain(recorded, current))
            where = _registry_state(probe, image.platform_refs(platform)[0])
            lines.append(f"{image.name} {platform}: {state}" + (f" ({where})" if where else ""))
        for ref in image.refs:
            lines.append(f"{image.name} list {ref}: {_registry_state(probe, ref) or 'not checked'}")
        for note in image.untracked:  # what its digest cannot cover: a rebuild will not follow
            lines.append(f"{image.name}: {note}")
    return lines


def print_report(manifest: Manifest, inputs: Inputs, probe=None) -> None:
    for line in report(manifest, inputs, probe):
        say(line)
