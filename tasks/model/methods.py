"""How an image is built: strategy, how the architecture reaches the Dockerfile, exporters."""

import re
from dataclasses import dataclass
from pathlib import Path

from .fields import Fields, exists
from .platforms import Platform, parse_platform

STRATEGIES = ("manifest", "buildx")
ARCH_MODES = ("platform", "build-arg")
FALLBACKS = ("manifest", "none")
ATTESTATIONS = ("false", "provenance", "sbom")
OUTPUT_TYPES = ("registry", "image", "docker", "oci", "local", "tar", "cacheonly")
_NEEDS_DEST = ("oci", "local", "tar")
_NO_DEST = ("registry", "image", "cacheonly")
_SECRET_ID = re.compile(r"[A-Za-z0-9_.-]+")

# Docker Hub's per-architecture namespaces (https://github.com/docker-library/official-images
# #architectures-other-than-amd64), for `FROM ${ARCH}/busybox`.
ARCH_NAMESPACES = {
    "linux/amd64": "amd64",
    "linux/arm64": "arm64v8",
    "linux/arm/v7": "arm32v7",
    "linux/arm/v6": "arm32v6",
    "linux/arm/v5": "arm32v5",
    "linux/386": "i386",
    "linux/ppc64le": "ppc64le",
    "linux/s390x": "s390x",
    "linux/riscv64": "riscv64",
    "linux/mips64le": "mips64le",
}


@dataclass(frozen=True)
class Output:
    """One `--output`: an exporter type and, for files, where (``{platform}``/``{arch}`` ok)."""

    type: str
    dest: str | None = None

    @property
    def per_platform(self) -> bool:
        return self.dest is not None and ("{platform}" in self.dest or "{arch}" in self.dest)

    def path(self, base: Path, platform: Platform | None = None) -> Path | None:
        if self.dest is None:
            return None
        text = self.dest
        if platform is not None:
            text = text.replace("{platform}", str(platform).replace("/", "_"))
            text = text.replace("{arch}", platform.suffix)
        return base / text


@dataclass(frozen=True)
class Method:
    """Everything about *how* to build that is not *what*; defaults applied."""

    strategy: str = "manifest"
    arch: str = "platform"
    arch_arg: str = "ARCH"
    dockerfiles: tuple[tuple[Platform, Path], ...] = ()
    outputs: tuple[Output, ...] = (Output("registry"),)
    attestations: str | None = None
    fallback: str = "none"
    secrets: tuple[tuple[str, Path], ...] = ()  # BuildKit --secret id=…,src=…; never hashed

    def dockerfile(self, platform: Platform, default: Path) -> Path:
        return dict(self.dockerfiles).get(platform, default)

    @property
    def pushes(self) -> bool:
        return any(output.type == "registry" for output in self.outputs)


def parse_method(fields: Fields, image: dict, key: str, defaults: dict, context: Path,
                 platforms: tuple[Platform, ...], base: Path) -> Method:
    """The build method of one image, its keys falling back to the top level's."""

    def choice(name: str, allowed: tuple, default):
        value = image.get(name, defaults.get(name, default))
        if value is False and name == "attestations":
            value = "false"
        if value is not None and value not in allowed:
            where = f"{key}.{name}" if name in image else name
            raise fields.fail(where, f"unknown {name} {value!r}; allowed: {', '.join(allowed)}")
        return value

    strategy = choice("strategy", STRATEGIES, "manifest")
    arch = choice("arch", ARCH_MODES, "platform")
    arch_arg = fields.string(image, f"{key}.arch_arg", "ARCH")
    if arch == "build-arg":
        for platform in platforms:
            if str(platform) not in ARCH_NAMESPACES:
                raise fields.fail(f"{key}.platforms", f"{platform} has no Docker Hub namespace "
                                  f"for arch: build-arg; known: {', '.join(ARCH_NAMESPACES)}")
    if arch == "build-arg" and strategy == "buildx":
        raise fields.fail(f"{key}.arch", "arch: build-arg passes one ARCH per build; it needs "
                          "strategy: manifest")
    dockerfiles = _parse_dockerfiles(fields, image, f"{key}.dockerfiles", context, platforms)
    if dockerfiles and strategy == "buildx":
        raise fields.fail(f"{key}.dockerfiles", "per-platform Dockerfiles need strategy: manifest")
    return Method(
        strategy=strategy,
        arch=arch,
        arch_arg=arch_arg,
        dockerfiles=dockerfiles,
        outputs=_parse_outputs(fields, image, f"{key}.outputs", platforms),
        attestations=choice("attestations", ATTESTATIONS, None),
        fallback=choice("fallback", FALLBACKS, "none"),
        secrets=_parse_secrets(fields, image, f"{key}.secrets", base),
    )


def _parse_secrets(fields: Fields, image: dict, key: str, base: Path):
    """`secrets: {id: file}`: mounted with `RUN --mount=type=secret,id=…`, never build args,
    so the value reaches no layer, log or state; the file is relative to multiarch.yaml."""
    raw = fields.mapping(image.get("secrets"), key, None)
    secrets = []
    for secret_id, name in raw.items():
        where = f"{key}.{secret_id}"
        if not _SECRET_ID.fullmatch(secret_id):
            raise fields.fail(where, "a secret id is letters, digits, '_', '.' and '-'")
        if not isinstance(name, str) or not name:
            raise fields.fail(where, "expected the path of the file holding the secret")
        path = base / name
        if not exists(path.is_file):
            raise fields.fail(where, f"no such file: {path}")
        secrets.append((secret_id, path))
    return tuple(secrets)


def _parse_dockerfiles(fields: Fields, image: dict, key: str, context: Path, platforms):
    raw = fields.mapping(image.get("dockerfiles"), key, None)
    result = []
    for text, name in raw.items():
        try:
            platform = parse_platform(text)
        except ValueError as err:
            raise fields.fail(f"{key}.{text}", str(err)) from None
        if platform not in platforms:
            raise fields.fail(f"{key}.{text}", f"{platform} is not one of this image's platforms")
        if not isinstance(name, str) or not name:
            raise fields.fail(f"{key}.{text}", "expected a Dockerfile path")
        path = context / name
        if not exists(path.is_file):
            raise fields.fail(f"{key}.{text}", f"no such file: {path}")
        result.append((platform, path))
    return tuple(result)


def _parse_outputs(fields: Fields, image: dict, key: str, platforms) -> tuple[Output, ...]:
    raw = image.get("outputs", [{"type": "registry"}])
    if not isinstance(raw, list) or not raw:
        raise fields.fail(key, "expected a list of outputs like [{type: registry}]")
    outputs = []
    for index, item in enumerate(raw):
        where = f"{key}[{index}]"
        if isinstance(item, str):
            item = {"type": item}
        entry = fields.mapping(item, where, frozenset({"type", "dest"}))
        kind = fields.string(entry, f"{where}.type", required=True)
        if kind not in OUTPUT_TYPES:
            raise fields.fail(f"{where}.type",
                              f"unknown exporter {kind!r}; allowed: {', '.join(OUTPUT_TYPES)}")
        dest = fields.string(entry, f"{where}.dest", None)
        if kind in _NEEDS_DEST and dest is None:
            raise fields.fail(where, f"type {kind} writes files: add dest")
        if kind in _NO_DEST and dest is not None:
            raise fields.fail(f"{where}.dest", f"type {kind} writes no files; remove dest")
        outputs.append(Output(kind, dest))
        if kind == "docker" and dest and len(platforms) > 1 and not outputs[-1].per_platform:
            raise fields.fail(f"{where}.dest", f"type docker writes one file per platform; put "
                              f"{{arch}} or {{platform}} in {dest!r}")
    return tuple(outputs)
