"""Platform specifiers ("linux/arm/v7"), parsed and normalised as containerd does."""

import platform as host
import re
from collections.abc import Iterable
from dataclasses import dataclass

# We only build Linux images, so a bare architecture ("arm64") means linux/arm64.
# containerd takes the host's OS instead; that would make the matrix machine-dependent.
DEFAULT_OS = "linux"

# Go's syslist, as containerd's database.go spells it in isKnownOS and isKnownArch.
# fmt: off
KNOWN_OS = frozenset({
    "aix", "android", "darwin", "dragonfly", "freebsd", "hurd", "illumos", "ios", "js",
    "linux", "nacl", "netbsd", "openbsd", "plan9", "solaris", "windows", "zos",
})
KNOWN_ARCHITECTURES = frozenset({
    "386", "amd64", "amd64p32", "arm", "armbe", "arm64", "arm64be", "ppc64", "ppc64le",
    "loong64", "mips", "mipsle", "mips64", "mips64le", "mips64p32", "mips64p32le",
    "ppc", "riscv", "riscv64", "s390", "s390x", "sparc", "sparc64", "wasm",
})
# fmt: on

_COMPONENT = re.compile(r"[A-Za-z0-9_.-]+")
_SHAPE = 'expected os/arch[/variant], e.g. "linux/arm64"'


@dataclass(frozen=True, order=True)
class Platform:
    """One normalised OCI platform; made by parse_platform so that equal means same."""

    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        if self.variant:
            return f"{self.os}/{self.architecture}/{self.variant}"
        return f"{self.os}/{self.architecture}"

    @property
    def suffix(self) -> str:
        """Tag suffix for the per-platform image ("armv7" in "demo:1.0-armv7").

        The OS is left out: every image we build is a Linux one.
        """
        return self.architecture + self.variant

    def to_oci(self) -> dict[str, str]:
        """The ``platform`` object of a manifest list / OCI index entry."""
        fields = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            fields["variant"] = self.variant
        return fields


def _normalize_os(os: str) -> str:
    os = os.lower()
    return "darwin" if os == "macos" else os


def _normalize_arch(arch: str, variant: str) -> tuple[str, str]:
    """containerd's normalizeArch: one spelling per arch, implied variants dropped; and the
    kernel's name for LoongArch, as `aarch64` is taken for arm64."""
    arch, variant = arch.lower(), variant.lower()
    if arch == "i386":
        return "386", ""
    if arch in ("x86_64", "x86-64", "amd64"):
        return "amd64", "" if variant == "v1" else variant
    if arch in ("aarch64", "arm64"):
        return "arm64", "" if variant in ("8", "v8") else variant
    if arch == "loongarch64":  # what `uname -m` prints; Go and OCI say loong64
        return "loong64", variant
    if arch == "armhf":
        return "arm", "v7"
    if arch == "armel":
        return "arm", "v6"
    if arch == "arm" and variant in ("", "7"):
        return "arm", "v7"
    if arch == "arm" and variant in ("5", "6", "8"):
        return "arm", "v" + variant
    return arch, variant


def _invalid(text: str, reason: str) -> ValueError:
    return ValueError(f'"{text}" is not a valid platform: {reason}')


def parse_platform(text: str) -> Platform:
    """Parse and normalise a specifier the way containerd's Parse + Normalize does.

    Normalising up front makes "linux/aarch64" and "linux/arm64/v8" the same Platform,
    so duplicates and tags are decided on one spelling. Unlike containerd we reject
    unknown OS and architecture names, since a typo would otherwise only surface as a
    failed build; an OS alone ("linux"), which containerd completes with the host's
    architecture; and OS options ("linux(+gpu)"), which Platform has no field for.

    Raises:
        ValueError: naming ``text`` and what would have been accepted.
    """
    parts = text.split("/")
    if len(parts) > 3:
        raise _invalid(text, f"{_SHAPE}, got {len(parts)} components")
    for part in parts:
        if not part:
            raise _invalid(text, f"empty component; {_SHAPE}")
        if not _COMPONENT.fullmatch(part):
            raise _invalid(
                text, f'"{part}" may only contain letters, digits, "_", "." and "-"'
            )

    if len(parts) == 1:
        if _normalize_os(text) in KNOWN_OS:
            raise _invalid(
                text, f"an operating system alone names no architecture; {_SHAPE}"
            )
        parts = [DEFAULT_OS, text]
    elif (
        len(parts) == 2
        and _normalize_os(parts[0]) not in KNOWN_OS
        and _normalize_arch(parts[0], "")[0] in KNOWN_ARCHITECTURES
    ):
        # containerd reads "arm64/v8" as architecture/variant when the first part is no OS.
        parts = [DEFAULT_OS, *parts]
    os = _normalize_os(parts[0])
    arch, variant = _normalize_arch(parts[1], parts[2] if len(parts) == 3 else "")

    if os not in KNOWN_OS:
        known = ", ".join(sorted(KNOWN_OS))
        raise _invalid(text, f'unknown operating system "{parts[0]}" (known: {known})')
    if arch not in KNOWN_ARCHITECTURES:
        known = ", ".join(sorted(KNOWN_ARCHITECTURES))
        raise _invalid(text, f'unknown architecture "{parts[1]}" (known: {known})')
    return Platform(os, arch, variant)


def parse_platforms(items: Iterable[str]) -> tuple[Platform, ...]:
    """Parse a platform list, keeping its order; two spellings of one platform fail.

    Items that normalise alike would build and push one image twice under one tag.

    Raises:
        ValueError: for an invalid item, or naming a duplicate and the item it repeats.
    """
    seen: dict[Platform, str] = {}
    for item in items:
        platform = parse_platform(item)
        if platform in seen:
            raise ValueError(
                f'duplicate platform "{item}" (same as "{seen[platform]}")'
            )
        seen[platform] = item
    return tuple(seen)


def oci_text(fields: dict) -> str:
    """"os/architecture/variant" of an OCI ``platform`` object, as written ("" for none)."""
    return "/".join(filter(None, (fields.get("os"), fields.get("architecture"),
                                  fields.get("variant"))))


def from_oci(fields: dict) -> Platform | None:
    """The Platform an index entry's ``platform`` object names; None for one we do not know
    (BuildKit's attestations say unknown/unknown)."""
    try:
        return parse_platform(oci_text(fields))
    except ValueError:
        return None


def host_platform() -> Platform:
    """This machine's platform (linux/amd64 on x86_64): the build platform of a build on the
    local engine, which a `FROM --platform=$BUILDPLATFORM` stage runs on."""
    return parse_platform(f"linux/{host.machine()}")
