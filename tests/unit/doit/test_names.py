"""tasks.doit.names: the names generation gives tasks are the names the report reads back."""

import pytest
from multiarch.tasks.doit import names
from multiarch.tasks.model.methods import Method
from multiarch.tasks.model.platforms import parse_platform

from tests.unit.doit.test_generate import make_image

ARMV7 = parse_platform("linux/arm/v7")


@pytest.mark.parametrize(("name", "kind"), [
    ("build:demo:linux/arm/v7", ("build", "demo", "linux/arm/v7")),
    ("push:demo:linux/amd64", ("push", "demo", "linux/amd64")),
    ("build:demo", ("image", "demo", None)),
    ("manifest:demo", ("manifest", "demo", None)),
    ("registries", ("registries", None, None)),
    ("export:demo:oci", ("export", "demo", None)),
])
def test_kind(name, kind):
    assert names.kind(name) == kind


def test_made_names_read_back():
    assert names.build("demo", ARMV7) == "build:demo:linux/arm/v7"
    assert names.kind(names.build("demo", ARMV7)) == ("build", "demo", "linux/arm/v7")
    assert names.kind(names.push("demo", ARMV7)) == ("push", "demo", "linux/arm/v7")
    assert names.kind(names.build("demo")) == (names.IMAGE, "demo", None)
    assert names.kind(names.manifest("demo")) == ("manifest", "demo", None)
    assert names.subtask(names.push("demo", ARMV7)) == "demo:linux/arm/v7"


@pytest.mark.parametrize(("number", "platform", "expected"), [
    (None, None, "export:demo:oci"),
    (2, None, "export:demo:oci.2"),
    (None, ARMV7, "export:demo:oci:linux/arm/v7"),
    (1, ARMV7, "export:demo:oci.1:linux/arm/v7"),
])
def test_export_names(number, platform, expected):
    assert names.export("demo", "oci", number, platform) == expected


@pytest.mark.parametrize(("strategy", "expected"), [("manifest", "manifest:demo"),
                                                    ("buildx", "build:demo")])
def test_published_is_the_task_that_pushes_the_lists(tmp_path, strategy, expected):
    assert names.published(make_image(tmp_path, method=Method(strategy=strategy))) == expected
