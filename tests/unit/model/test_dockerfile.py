"""Image dependencies: what a Dockerfile builds FROM, depends_on, cycles, and base digests."""

import pytest
import yaml
from multiarch.tasks.inputs.digests import input_digest
from multiarch.tasks.model.errors import ManifestError
from multiarch.tasks.model.manifest import find_cycle, load_manifest
from multiarch.tasks.model.reference import split_tag


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("localhost:5000/base:v1", ("localhost:5000/base", "v1")),
        ("localhost:5000/base", ("localhost:5000/base", "latest")),
        ("base@sha256:" + "a" * 64, ("base", "latest")),
        ("team/base:1.0-arm64", ("team/base", "1.0-arm64")),
    ],
)
def test_split_tag(ref, expected):
    assert split_tag(ref) == expected


def test_find_cycle():
    assert find_cycle({"a": ("b",), "b": ("c",), "c": ()}) is None
    assert find_cycle({"a": ("b",), "b": ("c",), "c": ("a",)}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": ("a",)}) == ["a", "a"]


def write(tmp_path, images: dict, dockerfiles: dict) -> str:
    for name, text in dockerfiles.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "Dockerfile").write_text(text)
    for name, image in images.items():
        image.setdefault("context", name)
    document = {"version": 1, "registry": "localhost:5000", "platforms": ["linux/amd64"],
                "images": images}
    (tmp_path / "multiarch.yaml").write_text(yaml.safe_dump(document))
    return str(tmp_path / "multiarch.yaml")


def test_from_another_image_of_the_manifest_is_a_dependency(tmp_path):
    path = write(
        tmp_path,
        {"base": {"tags": ["v1"]}, "app": {}, "tool": {"depends_on": ["app"]}},
        {"base": "FROM busybox:1.35\n",
         "app": "ARG REGISTRY=localhost:5000\nFROM ${REGISTRY}/base:v1-amd64\n",
         "tool": "FROM busybox:1.35\n"},
    )
    manifest = load_manifest(path)
    assert manifest.image("base").depends_on == ()
    assert manifest.image("app").depends_on == ("base",)
    assert manifest.image("tool").depends_on == ("app",)


def test_other_tags_of_the_same_repository_are_outside_bases(tmp_path):
    path = write(tmp_path, {"base": {"tags": ["v2"]}},
                 {"base": "FROM localhost:5000/base:v1\n"})
    assert load_manifest(path).image("base").depends_on == ()


def test_a_cycle_is_one_line_naming_it(tmp_path):
    path = write(
        tmp_path, {"a": {}, "b": {}},
        {"a": "FROM localhost:5000/b\n", "b": "FROM localhost:5000/a:latest\n"},
    )
    with pytest.raises(ManifestError) as caught:
        load_manifest(path, "multiarch.yaml")
    assert str(caught.value) == "multiarch.yaml: images: dependency cycle: a -> b -> a"


def test_depends_on_an_unknown_image(tmp_path):
    path = write(tmp_path, {"base": {}, "app": {"depends_on": ["bsae"]}},
                 {"base": "FROM busybox\n", "app": "FROM busybox\n"})
    with pytest.raises(ManifestError) as caught:
        load_manifest(path, "multiarch.yaml")
    assert str(caught.value) == (
        "multiarch.yaml: images.app.depends_on[0]: no image 'bsae' in this manifest;"
        " did you mean 'base'?"
    )


def test_a_change_in_a_base_changes_every_image_above_it(tmp_path):
    path = write(
        tmp_path, {"base": {}, "mid": {}, "top": {}, "other": {}},
        {"base": "FROM busybox\n", "mid": "FROM localhost:5000/base\n",
         "top": "FROM localhost:5000/mid\n", "other": "FROM busybox\n"},
    )
    manifest = load_manifest(path)
    platform = manifest.platforms[0]

    def digests():
        return {image.name: input_digest(image, platform, manifest=manifest)
                for image in manifest.images}

    before = digests()
    (tmp_path / "base" / "file.txt").write_text("x")
    after = digests()
    assert {name for name in before if before[name] != after[name]} == {"base", "mid", "top"}
