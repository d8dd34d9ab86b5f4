"""Generated and mutated multiarch.yaml documents and Dockerfiles: each loads, or fails as one
line naming the file and key; no traceback, and no docker command runs while loading."""

import subprocess

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from multiarch.tasks.model.errors import ManifestError
from multiarch.tasks.model.manifest import Manifest, load_manifest

KEYS = ["version", "registry", "platforms", "images", "cache", "builder", "strategy",
        "registries", "context", "dockerfile", "repository", "tags", "build_args", "target",
        "pull", "depends_on", "arch", "arch_arg", "dockerfiles", "outputs", "attestations",
        "fallback", "type", "dest", "insecure", "ca", "mirrors"]
WORDS = ["linux/amd64", "linux/arm64", "linux/arm/v7", "arm64/v8", "aarch64", "windows/amd64",
         "linux/foo", "v1", "v1; rm -rf /", "$(id)", "`id`", "a\nb", "latest", "x" * 129,
         "localhost:5000", "10.77.0.2:5000", "https://x", "Demo", "demo", "ctx", "ctx dir",
         "ünïcødé", "../outside", "/etc", "Dockerfile", "build-arg", "buildx", "manifest",
         "registry", "oci", "out/{arch}.tar", "", " ", "{}", "[]", "ARCH", "${ARCH}/busybox"]

scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.floats(allow_nan=False),
                    st.sampled_from(WORDS), st.text(max_size=12))
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.sampled_from(KEYS + WORDS), inner, max_size=5)),
    max_leaves=25,
)
dockerfiles = st.lists(st.sampled_from([
    "FROM busybox:1.35", "FROM localhost:5000/demo", "FROM localhost:5000/other:v1",
    "ARG ARCH=amd64", "FROM ${ARCH}/busybox:1.35", "FROM --platform=$BUILDPLATFORM x AS b",
    "COPY --from=b /a /a", "COPY --from=localhost:5000/demo /x /y", "RUN true", "FROM",
    "FROM scratch", "# comment", "\\", "ARG", "FROM ${", "COPY --from=", "FROM $X:${Y:-z}",
]), max_size=6).map("\n".join)


def valid() -> dict:
    return {"version": 1, "registry": "localhost:5000", "platforms": ["linux/amd64"],
            "images": {"demo": {"context": "ctx", "tags": ["v1"]},
                       "other": {"context": "ctx dir", "tags": ["v1"]}}}


def mutate(document: dict, path: list[str], value) -> dict:
    """Put ``value`` at the key path (creating mappings on the way)."""
    node = document
    for key in path[:-1]:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[path[-1]] = value
    return document


@pytest.fixture
def no_docker(monkeypatch):
    """Loading a manifest must never start a process."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"a process was started while loading: {args[:1]}")

    monkeypatch.setattr(subprocess, "Popen", refuse)
    monkeypatch.setattr(subprocess, "run", refuse)


def check(tmp_path, text: str, dockerfile: str) -> None:
    for folder in ("ctx", "ctx dir"):
        (tmp_path / folder).mkdir(exist_ok=True)
        (tmp_path / folder / "Dockerfile").write_text(dockerfile)
    path = tmp_path / "multiarch.yaml"
    path.write_text(text)
    try:
        manifest = load_manifest(path, "multiarch.yaml")
    except ManifestError as err:
        message = str(err)
        assert message.startswith("multiarch.yaml"), message
        assert "\n" not in message and "\r" not in message, message
        return
    assert isinstance(manifest, Manifest)


SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(document=documents, dockerfile=dockerfiles)
def test_generated_documents(tmp_path, no_docker, document, dockerfile):
    check(tmp_path, yaml.safe_dump(document, allow_unicode=True), dockerfile)


@SETTINGS
@given(path=st.lists(st.sampled_from(KEYS + ["demo", "other", "images"]), min_size=1,
                     max_size=4),
       value=documents, dockerfile=dockerfiles)
def test_mutated_valid_documents(tmp_path, no_docker, path, value, dockerfile):
    check(tmp_path, yaml.safe_dump(mutate(valid(), path, value), allow_unicode=True),
          dockerfile)


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=200))
def test_arbitrary_text(tmp_path, no_docker, text):
    check(tmp_path, text, "FROM busybox:1.35\n")
