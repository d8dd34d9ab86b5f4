"""Why a build is not up to date: two input breakdowns (Inputs.breakdown) compared."""


def explain(before: dict | None, after: dict) -> list[str]:
    """Why a build is not up to date: what differs between two breakdowns, most telling first."""
    if before is None:
        return ["never built here"]
    reasons = []
    if before.get("dockerfile") != after["dockerfile"]:
        reasons.append("Dockerfile changed")
    old, new = before.get("context", {}), after["context"]
    changed = sorted(path for path in new if path in old and old[path] != new[path])
    added = sorted(set(new) - set(old))
    removed = sorted(set(old) - set(new))
    for label, paths in (("changed", changed), ("added", added), ("removed", removed)):
        if paths:
            more = f" (+{len(paths) - 3} more)" if len(paths) > 3 else ""
            reasons.append(f"{label}: {', '.join(paths[:3])}{more}")
    old_args, new_args = before.get("build_args", {}), after["build_args"]
    for name in sorted(set(old_args) | set(new_args)):
        if old_args.get(name) != new_args.get(name):
            reasons.append(f"build arg {name} changed")
    for key in ("target", "platform", "tags", "repository"):
        if before.get(key) != after.get(key):
            reasons.append(f"{key} changed")
    reasons += _pulls_moved(before.get("pulls", []), after.get("pulls", []))
    return reasons or ["inputs unchanged; not yet recorded as done"]


def _pulls_moved(before: list, after: list) -> list[str]:
    """Which pull moved: its stage, reference and the platform it is pulled for."""
    old = {tuple(pull[:4]): pull[4] for pull in before}
    new = {tuple(pull[:4]): pull[4] for pull in after}
    reasons = []
    for (stage, instruction, ref, platform), digest in new.items():
        where = f"stage {stage}: {instruction} {ref} ({platform})"
        if (stage, instruction, ref, platform) not in old:
            reasons.append(f"{where} is new")
        elif old[(stage, instruction, ref, platform)] != digest:
            shown = digest if isinstance(digest, str) else "its platforms"
            reasons.append(f"{where} now points at {str(shown)[:19]}")
    for stage, instruction, ref, platform in sorted(old.keys() - new.keys()):
        reasons.append(f"stage {stage}: {instruction} {ref} ({platform}) is no longer pulled")
    return reasons
