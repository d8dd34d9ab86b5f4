"""builders.stages.bake and its bake file: targets, names, the pick out of a pushed index,
and the per-platform step times read from BuildKit's progress; no engine."""

import json
from dataclasses import replace
from pathlib import Path

import pytest
from multiarch.builders.errors import DockerError
from multiarch.builders.stages import bake as bake_module
from multiarch.builders.stages.argv import bake_target
from multiarch.builders.stages.bake import (
    MAX_TARGETS,
    Target,
    bake_file,
    platform_index,
    step_seconds,
    target_names,
    targets,
)
from multiarch.tasks.model.manifest import Image
from multiarch.tasks.model.methods import Method
from multiarch.tasks.model.platforms import parse_platform
from multiarch.tasks.model.routing import LOCAL

AMD64, ARM64, ARMV7 = (parse_platform(p) for p in ("linux/amd64", "linux/arm64", "linux/arm/v7"))
CTX = Path("/src/web")
IMAGE = Image(name="web", context=CTX, dockerfile=CTX / "Dockerfile",
              repository="localhost:5000/shop/web", tags=("v1",), platforms=(AMD64, ARM64))
INDEX = "application/vnd.oci.image.index.v1+json"


def digest(char: str) -> str:
    return "sha256:" + char * 64


def test_a_plain_image_is_what_docker_build_is_given():
    assert bake_target(IMAGE, [AMD64, ARM64], "localhost:5000/shop/web:cache-1") == {
        "context": "/src/web", "dockerfile": "/src/web/Dockerfile",
        "platforms": ["linux/amd64", "linux/arm64"], "args": {},
        "tags": ["localhost:5000/shop/web:cache-1"], "output": ["type=image,push=true"],
        "pull": True,
    }


def test_args_target_attestations_and_secrets_carry_over():
    image = replace(IMAGE, build_args=(("VERSION", "1.2"), ("VERSION", "1.3")), target="app",
                    pull=False,
                    method=Method(attestations="false", secrets=(("npm", Path("/s/npmrc")),)))
    target = bake_target(image, [ARM64], "r:t")
    assert target["args"] == {"VERSION": "1.3"}  # the last --build-arg wins, as in docker build
    assert target["target"] == "app"
    assert target["pull"] is False
    assert target["attest"] == ["type=provenance,disabled=true", "type=sbom,disabled=true"]
    assert target["secret"] == ["id=npm,src=/s/npmrc"]


@pytest.mark.parametrize(("attestations", "attest"), [
    ("provenance", ["type=provenance"]), ("sbom", ["type=provenance", "type=sbom"]),
    (None, None)])
def test_attestations_as_bake_spells_them(attestations, attest):
    target = bake_target(replace(IMAGE, method=Method(attestations=attestations)), [AMD64], "r:t")
    assert target.get("attest") == attest


def test_the_seed_arch_argument_goes_to_one_platform_targets():
    image = replace(IMAGE, method=Method(arch="build-arg"))
    assert bake_target(image, [ARM64], "r:t")["args"] == {"ARCH": "arm64v8"}


def test_interpolation_in_values_is_escaped():
    image = replace(IMAGE, build_args=(("GREETING", "${HOME} %{if x}"),))
    assert bake_target(image, [AMD64], "r:t")["args"] == {"GREETING": "$${HOME} %%{if x}"}


def test_platforms_of_one_dockerfile_share_a_target():
    [target] = targets(IMAGE, [AMD64, ARM64], [digest("a"), digest("b")])
    assert target.platforms == (AMD64, ARM64)
    assert target.input_digests == (digest("a"), digest("b"))


def test_a_platform_with_its_own_dockerfile_or_arch_argument_is_its_own_target():
    own = replace(IMAGE, platforms=(AMD64, ARM64, ARMV7),
                  method=Method(dockerfiles=((ARMV7, CTX / "Dockerfile.armv7"),)))
    assert [t.platforms for t in targets(own, [AMD64, ARM64, ARMV7], ["1", "2", "3"])] == [
        (AMD64, ARM64), (ARMV7,)]
    seed = replace(IMAGE, method=Method(arch="build-arg"))
    assert [t.platforms for t in targets(seed, [AMD64, ARM64], ["1", "2"])] == [
        (AMD64,), (ARM64,)]


def test_the_target_tag_names_its_inputs():
    one = Target(IMAGE, (AMD64, ARM64), (digest("a"), digest("b")))
    assert one.tag == Target(IMAGE, (AMD64, ARM64), (digest("a"), digest("b"))).tag
    assert one.tag != Target(IMAGE, (AMD64, ARM64), (digest("a"), digest("c"))).tag
    assert one.tag.startswith("cache-") and len(one.tag) == len("cache-") + 32


def test_target_names_are_image_names_bake_accepts_and_never_twice():
    dotted = replace(IMAGE, name="api.v2")
    underscored = replace(IMAGE, name="api_v2")
    batch = [Target(IMAGE, (AMD64,), ("1",)), Target(IMAGE, (ARM64,), ("2",)),
             Target(dotted, (AMD64,), ("3",)), Target(underscored, (AMD64,), ("4",))]
    assert target_names(batch) == ["web-amd64", "web-arm64", "api_v2", "api_v2-2"]
    document = bake_file(batch)
    assert document["group"]["default"]["targets"] == list(document["target"])


def entry(platform: str | None, char: str, attestation_of: str | None = None) -> dict:
    found = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest(char),
             "size": 500}
    if platform:
        os_name, _, arch = platform.partition("/")
        found["platform"] = {"os": os_name, "architecture": arch}
    else:
        found["platform"] = {"os": "unknown", "architecture": "unknown"}
        found["annotations"] = {"vnd.docker.reference.type": "attestation-manifest",
                                "vnd.docker.reference.digest": digest(attestation_of)}
    return found


def test_a_platform_takes_its_image_and_its_own_attestation_out_of_the_index():
    index = {"manifests": [entry("linux/amd64", "a"), entry("linux/arm64", "b"),
                           entry(None, "c", attestation_of="a"), entry(None, "d", "b")]}
    own = platform_index(index, ARM64, INDEX)
    assert own == {"schemaVersion": 2, "mediaType": INDEX,
                   "manifests": [entry("linux/arm64", "b"), entry(None, "d", "b")]}


def test_without_attestations_or_the_platform():
    index = {"manifests": [entry("linux/amd64", "a")]}
    assert platform_index(index, AMD64, INDEX)["manifests"] == [entry("linux/amd64", "a")]
    assert platform_index(index, ARM64, INDEX) is None


# Lines of `docker buildx bake --progress plain` (buildx 0.13, moby 26), shortened.
PROGRESS = """\
#5 [web linux/arm64 internal] load metadata for docker.io/library/busybox:1.35
#5 DONE 0.1s
#9 [web linux/amd64 1/3] FROM docker.io/library/busybox:1.35@sha256:b3ca
#9 CACHED
#11 [web linux/arm64 2/3] COPY . /data/
#11 DONE 0.1s
#12 [api linux/arm64 2/3] COPY . /data/
#14 [web linux/arm64 3/3] RUN for i in 1 2 3; do echo $i >> /log; done
#14 DONE 2.5s
#12 DONE 0.3s
#11 [api linux/arm64 2/3] COPY . /data/
#15 [web linux/amd64 3/3] RUN for i in 1 2 3; do echo $i >> /log; done
#15 DONE 0.2s
#16 [web] exporting to image
#16 DONE 1.1s
"""


def test_step_seconds_sum_each_builds_own_steps():
    assert step_seconds(PROGRESS) == pytest.approx(
        {("web", "linux/arm64"): 2.6, ("api", "linux/arm64"): 0.3, ("web", "linux/amd64"): 0.2})


def test_a_large_batch_is_baked_in_sessions_of_at_most_max_targets(monkeypatch):
    sessions = []
    monkeypatch.setattr(bake_module, "bake_once",
                        lambda batch, *rest: sessions.append(len(batch)) or {})
    batch = [Target(replace(IMAGE, name=f"img{n}"), (AMD64,), (str(n),)) for n in range(45)]
    bake_module.bake(batch, Path("/state"), LOCAL, arch="amd64")
    assert sessions == [MAX_TARGETS, MAX_TARGETS, 45 - 2 * MAX_TARGETS]


def test_a_timed_out_bake_bakes_what_it_did_not_push_once_more(monkeypatch, tmp_path):
    baked, pushed = [], set()

    def run(argv, *rest, **options):
        document = json.loads(Path(argv[argv.index("-f") + 1]).read_text())
        baked.append(sorted(document["target"]))
        if len(baked) == 1:  # the first pushes img0 only, then BuildKit times out
            pushed.add("img0")
            raise DockerError("bake failed (exit 1)", argv, "failed to solve: DeadlineExceeded")
        pushed.update(document["target"])
        return ""

    monkeypatch.setattr(bake_module, "run", run)
    monkeypatch.setattr(bake_module, "_content_tags", lambda target, registries: {
        AMD64: "sha256:" + target.image.name} if target.image.name in pushed else {})
    batch = [Target(replace(IMAGE, name=f"img{n}"), (AMD64,), (str(n),)) for n in range(3)]
    results = bake_module.bake(batch, tmp_path, LOCAL, arch="amd64")
    assert baked == [["img0", "img1", "img2"], ["img1", "img2"]]
    assert sorted(name for name, _ in results) == ["img0", "img1", "img2"]
