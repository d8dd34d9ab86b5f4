"""The `registries:` section: insecure hosts, private CAs, mirrors; and buildkitd.toml from it."""

from dataclasses import dataclass
from pathlib import Path

from .fields import Fields, exists
from .reference import validate_registry

REGISTRY_KEYS = frozenset({"insecure", "ca", "mirrors"})


@dataclass(frozen=True)
class RegistrySettings:
    """How to reach one registry host; credentials are never here (`docker login` has them)."""

    host: str
    insecure: bool = False  # plain HTTP, or TLS without verification
    ca: Path | None = None
    mirrors: tuple[str, ...] = ()


def parse_registries(fields: Fields, raw, base: Path) -> tuple[RegistrySettings, ...]:
    table = fields.mapping(raw, "registries", None)
    settings = []
    for host, entry in table.items():
        key = f"registries.{host}"
        fields.call(key, validate_registry, host)
        values = fields.mapping(entry, key, REGISTRY_KEYS)
        ca = fields.string(values, f"{key}.ca", None)
        ca_path = None
        if ca is not None:
            ca_path = base / ca
            if not exists(ca_path.is_file):
                raise fields.fail(f"{key}.ca", f"no such file: {ca_path}")
        mirrors = fields.string_list(values, f"{key}.mirrors", [])
        for index, mirror in enumerate(mirrors):
            fields.call(f"{key}.mirrors[{index}]", validate_registry, mirror)
        settings.append(RegistrySettings(
            host=host,
            insecure=fields.boolean(values, f"{key}.insecure", False),
            ca=ca_path,
            mirrors=tuple(mirrors),
        ))
    return tuple(settings)


def buildkitd_config(registries: tuple[RegistrySettings, ...]) -> dict:
    """BuildKit's `[registry."host"]` tables (docs: buildkitd.toml), ready for tomli_w.

    `insecure: true` sets both `http` and `insecure`, as the seed's buildkitd.toml does: plain
    HTTP, and TLS without verification where the registry does speak it.
    """
    tables = {}
    for registry in registries:
        table = {}
        if registry.mirrors:
            table["mirrors"] = list(registry.mirrors)
        if registry.insecure:
            table["http"] = True
            table["insecure"] = True
        if registry.ca is not None:
            table["ca"] = [str(registry.ca)]
        if table:
            tables[registry.host] = table
    return {"registry": tables} if tables else {}
