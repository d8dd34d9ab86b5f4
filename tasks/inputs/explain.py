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
    for name, digest in after.get("bases", {}).items():
        if before.get("bases", {}).get(name) != digest:
            reasons.append(f"base image {name} changed")
    for ref, digest in after.get("base_images", {}).items():
        if before.get("base_images", {}).get(ref) != digest:
            reasons.append(f"{ref} now points at {str(digest)[:19]}")
    return reasons or ["inputs unchanged; not yet recorded as done"]
