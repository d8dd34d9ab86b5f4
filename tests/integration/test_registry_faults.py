"""A registry that fails now and then: pushes and lists retry (`retries:`), and what the registry
ends up holding is byte for byte what a run without faults leaves. When the faults outlast the
retries, the error names the registry and the operation, and no list is published.

Every request goes through tests/support/faultproxy.py on localhost:<port>, in front of the
registry on 127.0.0.1:5000; results are read from 127.0.0.1:5000 directly, never via the proxy.
"""

import hashlib
import json
import re
import subprocess
import urllib.request
import uuid

import pytest
import yaml
from multiarch.builders.errors import DockerError
from multiarch.builders.registry.client import Registry

from tests.conftest import Workspace, raw_manifest
from tests.support.faultproxy import FaultProxy

PLATFORMS = ["linux/amd64", "linux/arm64"]
REGISTRY = "127.0.0.1:5000"
IMAGES = ("app", "tool")


def project(workspace: Workspace, token: str, registry: str, retries: int) -> None:
    """Two images FROM busybox with ``token`` as content; attestations off, so the same
    content makes the same image (an attestation records when it was made)."""
    images = {}
    for name in IMAGES:
        context = workspace.context(name, f"FROM busybox:1.35\nCOPY {name}.txt /\n")
        (context / f"{name}.txt").write_text(f"{token} {name}\n")
        images[name] = {"context": name, "tags": ["v1"]}
    path = workspace.manifest(images, PLATFORMS)
    document = yaml.safe_load(path.read_text())
    document.update(registry=registry, retries=retries, attestations="false")
    path.write_text(yaml.safe_dump(document))


def raw(ref: str) -> bytes | None:
    """The manifest bytes the registry serves for ``ref`` (skopeo, straight from 5000)."""
    result = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false",
                             f"docker://{ref}"], capture_output=True)
    return result.stdout if result.returncode == 0 else None


def blob_ok(repository: str, digest: str) -> bool:
    """The registry serves the blob, and its bytes hash to its digest."""
    url = f"http://{REGISTRY}/v2/{repository}/blobs/{digest}"
    with urllib.request.urlopen(url, timeout=30) as response:
        return "sha256:" + hashlib.sha256(response.read()).hexdigest() == digest


def registry_content(namespace: str) -> dict[str, bytes]:
    """Every tag's manifest bytes, and every blob they name checked, for both images."""
    content = {}
    for name in IMAGES:
        repository = f"{namespace}/{name}"
        for tag in ["v1", *(f"v1-{p.split('/')[1]}" for p in PLATFORMS)]:
            body = raw(f"{REGISTRY}/{repository}:{tag}")
            assert body is not None, f"{repository}:{tag} is missing"
            content[f"{name}:{tag}"] = body
            document = json.loads(body)
            for blob in [document.get("config"), *document.get("layers", [])]:
                if blob:
                    assert blob_ok(repository, blob["digest"]), f"{repository} {blob['digest']}"
    return content


def retries_made(output: str) -> int:
    return len(re.findall(r"; retry \d+/\d+ in ", output))


def test_pushes_and_lists_survive_faults_byte_identical(workspace, tmp_path):
    token = uuid.uuid4().hex
    clean = workspace
    project(clean, token, "localhost:5000", retries=5)
    clean.doit("build")

    faulty = Workspace(tmp_path / "faulty")
    with FaultProxy(share=0.5, seed=6, clean_after=12, stall_seconds=0.5) as proxy:
        project(faulty, token, f"localhost:{proxy.port}", retries=5)
        result = faulty.doit("build")
    output = result.stdout + result.stderr
    print(f"\nfaults: {proxy.summary()}; retries made: {retries_made(output)}; "
          f"doit build exit {result.returncode}")
    print("\n".join(proxy.log))

    assert proxy.faults >= 3, proxy.summary()
    assert retries_made(output) >= 1
    assert registry_content(faulty.namespace) == registry_content(clean.namespace)


def test_faults_beyond_the_retries_name_the_registry_and_operation(workspace):
    with FaultProxy(share=1.0, kinds=["503"], methods={"PUT", "POST", "PATCH"}) as proxy:
        host = f"localhost:{proxy.port}"
        project(workspace, uuid.uuid4().hex, host, retries=1)
        repository = f"{host}/{workspace.namespace}/app"
        stored = f"{REGISTRY}/{workspace.namespace}/app"
        namespace = re.escape(f"{host}/{workspace.namespace}")

        pushing = workspace.doit("build", check=False)
        said = pushing.stdout + pushing.stderr
        assert pushing.returncode != 0
        assert re.search(rf"push {namespace}/(app|tool):v1-(amd64|arm64): registry "
                         rf"{re.escape(host)} answered 503 Service Unavailable \(2 attempts\)",
                         said), said[-3000:]
        assert raw_manifest(f"{stored}:v1") is None
        assert raw_manifest(f"{REGISTRY}/{workspace.namespace}/tool:v1") is None

        proxy.share = 0.0
        workspace.doit("push")
        proxy.share = 1.0
        listing = workspace.doit("build", check=False)
        said = listing.stdout + listing.stderr
        assert listing.returncode != 0
        assert (f"PUT {repository}:v1: registry {host} answered 503 Service "
                "Unavailable (2 attempts)") in said, said[-3000:]
        assert raw_manifest(f"{stored}:v1") is None
        print(f"\nfaults: {proxy.summary()}; retries made: "
              f"{retries_made(pushing.stdout) + retries_made(listing.stdout)}")

        proxy.share = 0.0
        workspace.doit("build")
        assert raw_manifest(f"{stored}:v1") is not None


def test_the_registry_client_retries_each_request(engine):
    """multiarch's own requests (probes, content-tag re-tags, inspect) ride out faults too:
    with every other request failing, a failed request passes on its one retry."""
    namespace = f"it-{uuid.uuid4().hex[:10]}"
    subprocess.run(["skopeo", "copy", "-q", "--src-tls-verify=false", "--dest-tls-verify=false",
                    "--override-arch", "arm64", "docker://127.0.0.1:5000/library/busybox:1.35",
                    f"docker://{REGISTRY}/{namespace}/bb:v1"], check=True)
    with FaultProxy(share=1.0, seed=2, clean_after=1, stall_seconds=0.2) as proxy:
        client = Registry(f"localhost:{proxy.port}", insecure=True, retries=1)
        client.ping()
        body, media_type, digest = client.get(f"{namespace}/bb", "v1")
        assert client.put(f"{namespace}/bb", "v2", body, media_type) == digest
        assert client.head(f"{namespace}/bb", "v2") == digest
        # A stall after the headers of an answer whose body is not read goes unnoticed.
        assert proxy.faults >= 3, proxy.summary()
        print(f"\nfaults: {proxy.summary()}; retries made: {proxy.requests - 4}")

        proxy.clean_after = 0
        gone = Registry(f"localhost:{proxy.port}", insecure=True, retries=2)
        with pytest.raises(DockerError) as info:
            gone.get(f"{namespace}/bb", "v1")
    assert raw(f"{REGISTRY}/{namespace}/bb:v2") == raw(f"{REGISTRY}/{namespace}/bb:v1") == body
    assert re.fullmatch(rf"GET localhost:{proxy.port}/{namespace}/bb:v1: registry "
                        rf"localhost:{proxy.port} .+ \(3 attempts\)", info.value.message)


def test_a_buildx_push_is_retried(workspace):
    """The buildx strategy's one `buildx build --push`. BuildKit retries each request itself
    (3 times, 1 s, 2 s, 4 s), so the list's PUT fails 4 times: BuildKit gives up, multiarch
    runs the build again (from the cache), and that push goes through."""
    with FaultProxy(share=1.0, limit=4, methods={"PUT"}, paths="/manifests/v1",
                    kinds=["503"]) as proxy:
        project(workspace, uuid.uuid4().hex, f"localhost:{proxy.port}", retries=2)
        path = workspace.path / "multiarch.yaml"
        path.write_text(path.read_text() + "strategy: buildx\n")
        result = workspace.doit("build")
    print(f"\nfaults: {proxy.summary()}; retries made: {retries_made(result.stdout)}")

    assert proxy.faults == 4
    assert retries_made(result.stdout) == 1
    assert result.stdout.count("$ docker buildx build") == len(IMAGES) + 1
    for name in IMAGES:
        listed = raw_manifest(f"{REGISTRY}/{workspace.namespace}/{name}:v1")
        assert sorted(f"{m['platform']['os']}/{m['platform']['architecture']}"
                      for m in listed["manifests"]) == PLATFORMS


def engine_list_put(headers) -> bool:
    """The engine's own push of a multi-platform index (after BuildKit's), not multiarch's."""
    kind = headers.get("Content-Type", "")
    return (("manifest.list" in kind or "image.index" in kind)
            and headers.get("User-Agent", "").startswith("docker/"))


def architecture_of(ref: str) -> str:
    """The architecture an image's own config records (skopeo, straight from 5000)."""
    result = subprocess.run(["skopeo", "inspect", "--config", "--tls-verify=false",
                             f"docker://{ref}"], capture_output=True, text=True, check=True)
    return json.loads(result.stdout)["architecture"]


def test_a_bake_stopped_before_its_index_lends_no_platform_s_image_to_another(workspace):
    """With the containerd image store, the engine pushes a bake's image again after
    BuildKit: each manifest under the image's tag, then the index. When that index PUT fails
    (the bake fails), the tag is left on one platform's image, which must not be taken for the
    first platform's: every tag and list entry holds its own architecture."""
    with FaultProxy(share=1.0, kinds=["500"], methods={"PUT"}, paths="/manifests/",
                    when=engine_list_put) as proxy:
        project(workspace, uuid.uuid4().hex, f"localhost:{proxy.port}", retries=1)
        result = workspace.doit("build")
    output = result.stdout + result.stderr
    assert proxy.faults >= 1, proxy.summary()
    assert "built one platform at a time" in output, output[-3000:]
    for name in IMAGES:
        repository = f"{REGISTRY}/{workspace.namespace}/{name}"
        listed = {entry["platform"]["architecture"]: entry["digest"]
                  for entry in raw_manifest(f"{repository}:v1")["manifests"]}
        assert set(listed) == {"amd64", "arm64"}
        for arch, digest in listed.items():
            assert architecture_of(f"{repository}@{digest}") == arch, (name, arch, output)
            assert architecture_of(f"{repository}:v1-{arch}") == arch, (name, arch)
