"""BuildKit as the oracle (#15): the images a build pulls, by its provenance, against pulls().

Each fixture under tests/fixtures/oracle is built for each target platform on this (amd64)
host with `--provenance=mode=max --push`. BuildKit records every image it pulled as a SLSA v0.2
material, `{"uri": "pkg:docker/busybox@1.35?platform=linux%2Farm64", "digest": {"sha256":
...}}`: the reference as a purl, the platform it was pulled for, and the digest the reference
resolved to (an index's own digest, not its platform's child). Its LLB sources carry the same
pulls with their Dockerfile lines (none for a RUN --mount from=) and, when BuildKit kept them,
the layers of the platform's image: the per-platform check. A fixture naming an image that
exists nowhere proves it is not pulled, since pulling it would fail the build.
"""

import json
import shutil
import urllib.error
import urllib.request
import uuid
from urllib.parse import parse_qs, unquote

import pytest
from multiarch.tasks.model.dockerfile import parse, pulls
from multiarch.tasks.model.platforms import parse_platform
from multiarch.tasks.model.reference import locate

from tests.conftest import ROOT, docker

pytestmark = pytest.mark.engine

FIXTURES = ROOT / "tests" / "fixtures" / "oracle"
# The registry serves localhost:5000 and, as the engine's mirror, docker.io.
REGISTRY_HTTP = "http://127.0.0.1:5000"
SERVED = {"docker.io", "localhost:5000", "127.0.0.1:5000"}
ACCEPT = ", ".join([
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
])
BUILD_PLATFORM = "linux/amd64"
PLATFORMS = ["linux/amd64", "linux/arm64"]
TOOLS_MARK = "@TOOLS@"  # a fixture's stand-in for the image the setup pushes
# (fixture folder, build args)
CASES = [
    ("plain", {}),
    ("cross-compilation", {}),
    ("quoted-arg", {}),
    ("quoted-arg", {"BASE": "localhost:5000/library/busybox:1.35"}),
    ("mount-from", {}),
    ("copy-from", {}),
    ("unreachable", {}),
    ("stage-index", {}),
    ("binary-targetos", {}),
    ("fixed-platform", {}),
    ("heredoc", {}),
]
# No `# syntax=` fixture: its frontend image (docker/dockerfile:1) is neither in the engine's
# docker.io mirror nor reachable without internet, so BuildKit cannot be asked here; the unit
# tests cover how multiarch reads the directive.


def case_id(case: tuple[str, dict]) -> str:
    folder, build_args = case
    return " ".join([folder, *(f"{name}={value}" for name, value in build_args.items())])


def normalised(ref: str) -> str:
    """``ref`` as Docker spells it in full: docker.io/library/busybox:1.35."""
    host, path, tag_or_digest = locate(ref)
    return f"{host}/{path}{'@' if ':' in tag_or_digest else ':'}{tag_or_digest}"


def registry_manifest(ref: str) -> tuple[dict, str]:
    """(the manifest or index at ``ref``, its digest), read from the registry itself."""
    host, path, tag_or_digest = locate(ref)
    assert host in SERVED, f"{ref}: no registry here serves {host}"
    request = urllib.request.Request(f"{REGISTRY_HTTP}/v2/{path}/manifests/{tag_or_digest}",
                                     headers={"Accept": ACCEPT})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response), response.headers["Docker-Content-Digest"]
    except urllib.error.HTTPError as err:
        pytest.fail(f"{ref}: the registry answered {err.code} for {request.full_url}",
                    pytrace=False)


def platform_layers(ref: str, platform: str) -> list[str]:
    """The layer digests of ``platform``'s image behind ``ref`` (an index or one manifest)."""
    document, _ = registry_manifest(ref)
    host, path, _ = locate(ref)
    for entry in document.get("manifests", []):
        fields = entry.get("platform", {})
        if "/".join(filter(None, (fields.get("os"), fields.get("architecture"),
                                  fields.get("variant")))) == platform:
            document, _ = registry_manifest(f"{host}/{path}@{entry['digest']}")
            break
    return [layer["digest"] for layer in document.get("layers", [])]


def from_purl(uri: str) -> tuple[str, str]:
    """(normalised reference, platform) of a material: pkg:docker/<name>@<tag>?platform=..."""
    assert uri.startswith("pkg:docker/"), f"a material that is no image: {uri}"
    name_version, _, query = uri.removeprefix("pkg:docker/").partition("?")
    name, _, version = name_version.rpartition("@")
    name, version = unquote(name), unquote(version)
    ref = f"{name}@{version}" if ":" in version else f"{name}:{version}"
    return normalised(ref), parse_qs(query).get("platform", [""])[0]


def recorded_pulls(slsa: dict) -> set[tuple[str, str, str]]:
    """What BuildKit says it pulled: (reference, platform, digest) of each material."""
    found = set()
    for material in slsa["materials"]:
        ref, platform = from_purl(material["uri"])
        found.add((ref, platform, "sha256:" + material["digest"]["sha256"]))
    return found


def recorded_sources(slsa: dict) -> dict[tuple[str, str], tuple[set[int], list[str] | None]]:
    """Each image source of the LLB, by (reference, platform): its Dockerfile lines (none for
    a RUN --mount from=) and, when BuildKit kept them (a stage's base), the layers of the image
    it pulled."""
    metadata = slsa["metadata"]["https://mobyproject.org/buildkit@v1#metadata"]
    locations = metadata["source"]["locations"]
    found = {}
    for step in slsa["buildConfig"]["llbDefinition"]:
        source = (step["op"].get("Op") or {}).get("source", {})
        if not source.get("identifier", "").startswith("docker-image://"):
            continue
        ref = normalised(source["identifier"].removeprefix("docker-image://").split("@")[0])
        fields = step["op"]["platform"]
        platform = "/".join(filter(None, (fields["OS"], fields["Architecture"],
                                          fields.get("Variant"))))
        lines = {span["start"]["line"]
                 for where in locations.get(step["id"], {}).get("locations", [])
                 for span in where.get("ranges", [])}
        chains = metadata.get("layers", {}).get(f"{step['id']}:0")
        found[(ref, platform)] = (lines, [layer["digest"] for layer in chains[0]]
                                  if chains else None)
    return found


def computed_pulls(text: str, build_args: dict, platform: str) -> list[tuple[str, str, int]]:
    """What multiarch says the build pulls: (reference, platform, line)."""
    found = pulls(parse(text), build_args, None, parse_platform(platform),
                  parse_platform(BUILD_PLATFORM))
    return [(normalised(pull.reference), str(pull.platform), pull.line) for pull in found]


def differences(what: str, buildkit: set, multiarch: set) -> str:
    def rows(items) -> str:
        return "".join(f"\n    {item}" for item in sorted(items, key=str)) or "\n    (none)"

    return (f"{what} disagree\n  BuildKit:{rows(buildkit)}\n  multiarch:{rows(multiarch)}\n"
            f"  only BuildKit:{rows(buildkit - multiarch)}\n"
            f"  only multiarch:{rows(multiarch - buildkit)}")


@pytest.fixture(scope="module")
def oracle(engine, tmp_path_factory) -> dict:
    """A repository namespace of this run's own, and a tools image for both platforms that
    the mount-from and copy-from fixtures name."""
    namespace = f"oracle-{uuid.uuid4().hex[:10]}"
    context = tmp_path_factory.mktemp("tools")
    (context / "marker").write_text(f"{namespace}\n")
    (context / "Dockerfile").write_text("FROM busybox:1.35\nCOPY marker /marker\n")
    tools = f"localhost:5000/{namespace}/tools:1"
    docker("buildx", "build", "--platform", ",".join(PLATFORMS), "--provenance=false",
           "--push", "-t", tools, str(context))
    return {"namespace": namespace, "tools": tools}


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize(("folder", "build_args"), CASES, ids=[case_id(c) for c in CASES])
def test_pulls_are_what_buildkit_pulled(oracle, tmp_path, folder, build_args, platform):
    context = tmp_path / folder
    shutil.copytree(FIXTURES / folder, context)
    text = (context / "Dockerfile").read_text().replace(TOOLS_MARK, oracle["tools"])
    (context / "Dockerfile").write_text(text)
    image = f"localhost:5000/{oracle['namespace']}/{folder}:{platform.replace('/', '-')}" \
            f"-{uuid.uuid4().hex[:6]}"
    docker("buildx", "build", "--platform", platform, "--provenance=mode=max", "--push",
           *(f"--build-arg={name}={value}" for name, value in build_args.items()),
           "-t", image, str(context))
    slsa = json.loads(docker("buildx", "imagetools", "inspect", image, "--format",
                             "{{json .Provenance}}"))["SLSA"]

    computed = computed_pulls(text, build_args, platform)
    recorded = recorded_pulls(slsa)
    ours = {(ref, pulled_for, registry_manifest(ref)[1]) for ref, pulled_for, _ in computed}
    assert recorded == ours, differences("materials", recorded, ours)
    assert_sources_agree(recorded_sources(slsa), computed)


def assert_sources_agree(sources: dict, computed: list[tuple[str, str, int]]) -> None:
    """The lines BuildKit placed each image source at are the pulls' lines, and each base it
    kept layers for is the image multiarch finds for that platform."""
    theirs = {(ref, platform, line) for (ref, platform), (lines, _) in sources.items()
              for line in lines}
    placed = {(ref, platform) for ref, platform, _ in theirs}
    ours = {pull for pull in computed if pull[:2] in placed}
    assert theirs == ours, differences("Dockerfile lines", theirs, ours)
    for (ref, platform), (_, layers) in sources.items():
        if layers is not None:
            assert layers == platform_layers(ref, platform), \
                f"{ref} for {platform}: BuildKit pulled other layers than that platform's image"
