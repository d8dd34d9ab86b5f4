"""`doit status`: per image and platform, up to date or why not, and what the registry has."""

from builders.probe import UNKNOWN
from builders.run import say
from tasks.inputs import Inputs, explain
from tasks.manifest import Manifest


def _registry_state(probe, ref: str) -> str:
    if probe is None:
        return ""
    found = probe.digest(ref)
    if found == UNKNOWN:
        return "registry did not answer"
    return "not in the registry" if found is None else f"pushed {found[:19]}"


def report(manifest: Manifest, inputs: Inputs, probe=None) -> list[str]:
    """One line per image and platform and one per list: state, then the reason or digest."""
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
                state = "up to date"
            else:
                state = "rebuild: " + "; ".join(explain(recorded, current))
            where = _registry_state(probe, image.platform_refs(platform)[0])
            lines.append(f"{image.name} {platform}: {state}" + (f" ({where})" if where else ""))
        for ref in image.refs:
            lines.append(f"{image.name} list {ref}: {_registry_state(probe, ref) or 'not checked'}")
    return lines


def print_report(manifest: Manifest, inputs: Inputs, probe=None) -> None:
    for line in report(manifest, inputs, probe):
        say(line)
