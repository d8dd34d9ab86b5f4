"""A first multiarch.yaml for a repository: one image per Dockerfile found (`multiarch init`)."""

import contextlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

# Names a Dockerfile goes by: Docker's default, Podman's, and `<name>.Dockerfile` /
# `Dockerfile.<name>` variants of either.
_DOCKERFILE = re.compile(
    r"(Dockerfile|Containerfile)(\.[\w.-]+)?|[\w.-]+\.(Dockerfile|Containerfile)")
# Folders no image is built from: version control, dependencies, caches, our own state.
_SKIPPED = frozenset({".git", ".hg", ".svn", "node_modules", ".venv", "venv", "__pycache__",
                      ".multiarch", ".tox", ".mypy_cache", ".pytest_cache", "vendor"})
_IMAGE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")
# Folders that hold a Dockerfile for the project around them: the image is named after that.
_GENERIC = frozenset({"docker", "build", "container", "containers", "deploy", "ci", "image"})
PLACEHOLDER_REGISTRY = "registry.example.com"
PLACEHOLDER_NAMESPACE = "team"
PLACEHOLDER_PLATFORMS = ("linux/amd64", "linux/arm64")


@dataclass(frozen=True)
class Found:
    """One Dockerfile: the image named after it, its context, its file within the context."""

    name: str
    context: str  # relative to the repository, "." for its root
    dockerfile: str  # relative to the context


def find_dockerfiles(root: Path) -> list[Found]:
    """Every Dockerfile under ``root``, folders sorted, hidden and dependency folders skipped;
    each becomes an image named after its folder (and its file's suffix, if any)."""
    found, names = [], set()
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in _SKIPPED and not d.startswith("."))
        for file in sorted(files):
            if not _DOCKERFILE.fullmatch(file):
                continue
            context = Path(folder).relative_to(root)
            name = _name_for(root, context, file)
            while name in names:
                name += "-2"
            names.add(name)
            found.append(Found(name, context.as_posix(), file))
    return found


def _name_for(root: Path, context: Path, file: str) -> str:
    named = context
    while named.name.lower() in _GENERIC and named.parent != named:
        named = named.parent
    base = named.name or root.resolve().name or "app"
    variant = re.sub(r"^(Dockerfile|Containerfile)\.?|\.?(Dockerfile|Containerfile)$", "", file)
    name = f"{base}-{variant}" if variant else base
    return _IMAGE_NAME.sub("-", name).strip("-._").lower() or "app"


def manifest_text(found: list[Found], registry: str | None,
                  platforms: tuple[str, ...] | None) -> str:
    """The commented multiarch.yaml `multiarch init` writes; ``registry`` is
    HOST[:PORT][/NAMESPACE], the namespace going into each image's repository."""
    host, _, namespace = (registry or "").partition("/")
    lines = [
        "# multiarch.yaml: what to build for which platforms, and where to push it.",
        "# `multiarch build` (or `doit build`) builds each image per platform, pushes it and",
        "# publishes one manifest list per tag; `multiarch list` shows the tasks.",
        "version: 1",
    ]
    if host:
        lines.append(f"registry: {host}")
    else:
        namespace = PLACEHOLDER_NAMESPACE
        lines += ["# Where the images are pushed: a registry host, and each image's repository",
                  "# in it (set them, or run `multiarch init --registry HOST/NAMESPACE`).",
                  f"registry: {PLACEHOLDER_REGISTRY}"]
    shown = ", ".join(platforms or PLACEHOLDER_PLATFORMS)
    if not platforms:
        lines.append("# The platforms every image is built for (Docker's names; QEMU builds the")
        lines.append("# ones this machine cannot run natively).")
    lines += [f"platforms: [{shown}]", "images:"]
    if not found:
        lines += ["  # No Dockerfile was found; an image looks like this:",
                  "  # app:",
                  "  #   context: app        # the folder `docker build` is given",
                  "  #   tags: [latest]"]
    for image in found:
        lines += [f"  {image.name}:", f"    context: {image.context}"]
        if image.dockerfile != "Dockerfile":
            lines.append(f"    dockerfile: {image.dockerfile}")
        if namespace:
            lines.append(f"    repository: {namespace}/{image.name}")
        lines.append("    tags: [latest]")
    return "\n".join(lines) + "\n"


DODO_TEXT = (
    '"""doit finds multiarch\'s tasks here (`doit list`, `doit build`); `multiarch` needs no'
    ' dodo.py."""\n\nfrom multiarch.dodo import *  # noqa: F403\n'
)
GITIGNORE_TEXT = "# Created by multiarch: its state, never committed.\n*\n"


def make_state_dir(state_dir: Path) -> None:
    """``.multiarch/`` with its own .gitignore, as pytest's cache has: its records, caches and
    reports stay out of the user's commits without an edit to their .gitignore."""
    state_dir.mkdir(exist_ok=True)
    ignore = state_dir / ".gitignore"
    if not ignore.exists():
        with contextlib.suppress(OSError):  # a read-only checkout still builds
            ignore.write_text(GITIGNORE_TEXT)
