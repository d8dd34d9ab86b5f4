"""tasks.report.status: a build recorded as done is "up to date" only once the registry has it."""

import pytest
from multiarch.builders.registry.probe import UNKNOWN
from multiarch.tasks.inputs.digests import Inputs
from multiarch.tasks.model.methods import Method
from multiarch.tasks.model.tags import content_tag
from multiarch.tasks.report import status

from tests.unit.doit.test_generate import AMD64, make_image, make_manifest

OLD, NEW = "sha256:" + "a" * 64, "sha256:" + "b" * 64


class Probe:
    """The registry as a dict of reference → digest (absent: None)."""

    def __init__(self, digests: dict[str, str]):
        self.digests, self.expected = digests, set()

    def expect(self, refs) -> None:
        self.expected.update(refs)

    def digest(self, ref: str) -> str | None:
        return self.digests.get(ref)


def line(tmp_path, registry: dict[str, str], strategy: str = "manifest") -> str:
    image = make_image(tmp_path, method=Method(strategy=strategy))
    manifest = make_manifest(tmp_path, image)
    inputs = Inputs(manifest)
    inputs.record(image, AMD64, inputs.breakdown(image, AMD64))
    content = f"{image.repository}:{content_tag(inputs.digest(image, AMD64))}"
    tag = image.platform_refs(AMD64)[0]
    digests = {tag if key == "tag" else content: value for key, value in registry.items()}
    probe = Probe(digests)
    found = [text for text in status.report(manifest, inputs, probe) if " linux/amd64: " in text]
    assert (content in probe.expected) == (strategy == "manifest")  # asked all at once
    return found[0].split(": ", 1)[1]


@pytest.mark.parametrize(
    ("registry", "expected"),
    [
        ({"tag": NEW, "content": NEW}, "up to date (pushed sha256:bbbbbbbbbbbb)"),
        ({"tag": OLD}, "built, not pushed yet (pushed sha256:aaaaaaaaaaaa)"),  # stopped first
        ({"tag": OLD, "content": NEW}, "built, not pushed yet (pushed sha256:aaaaaaaaaaaa)"),
        ({}, "built, not pushed yet (not in the registry)"),
        ({"tag": UNKNOWN, "content": UNKNOWN}, "up to date (registry did not answer)"),
    ],
    ids=["pushed", "push-stopped", "tag-moved", "nothing", "no-answer"],
)
def test_a_built_platform_is_up_to_date_once_its_push_finished(tmp_path, registry, expected):
    assert line(tmp_path, registry) == expected


def test_buildx_images_have_no_platform_tags_to_ask_for(tmp_path):
    assert line(tmp_path, {}, strategy="buildx") == "up to date (not in the registry)"
