"""tasks.inputs.ahead and Inputs.look_ahead: contexts walked by a forked child are the ones
the parent would have walked, and a child that sent nothing leaves the parent to walk."""

import marshal
import os
import signal

from multiarch.tasks.doit.session import checked_images
from multiarch.tasks.inputs.ahead import WalkAhead
from multiarch.tasks.inputs.digests import Inputs
from multiarch.tasks.inputs.walk import digest_entries, walk

from tests.unit.doit.test_generate import PLATFORMS, make_image, make_manifest


def _images(tmp_path):
    base = make_image(tmp_path, "base")
    app = make_image(tmp_path, "app", depends_on=("base",))
    (app.context / "data").mkdir()
    (app.context / "data" / "file.txt").write_text("x\n")
    other = make_image(tmp_path, "other")
    return base, app, other


def test_the_child_sends_what_walk_finds(tmp_path):
    images = _images(tmp_path)
    ahead = WalkAhead(images, tmp_path / ".multiarch")
    try:
        for image in reversed(images):  # asked in another order than walked
            digest, dump = ahead.take(image.name)
            entries = walk(image, None)
            assert digest == digest_entries(entries)
            assert marshal.loads(dump) == entries
        assert ahead.take("base") is None  # taken once
    finally:
        ahead.close()


def test_inputs_digests_are_the_same_with_and_without_the_child(tmp_path):
    images = _images(tmp_path)
    manifest = make_manifest(tmp_path, *images)
    walked = Inputs(manifest)
    ahead = Inputs(manifest)
    ahead.look_ahead(images)
    try:
        for image in images:
            for platform in PLATFORMS:
                assert ahead.digest(image, platform) == walked.digest(image, platform)
            assert ahead.entries(image) == walked.entries(image)
    finally:
        ahead.close()


def test_a_killed_child_leaves_the_walk_to_the_parent(tmp_path):
    images = _images(tmp_path)
    ahead = WalkAhead(images, None)
    os.kill(ahead.pid, signal.SIGKILL)
    os.waitpid(ahead.pid, 0)
    # whatever it sent before it died may come; the rest is None, never a wrong context
    for image in images:
        sent = ahead.take(image.name)
        assert sent is None or sent[0] == digest_entries(walk(image, None))
    ahead.close()


def test_checked_images_are_the_named_ones_and_their_bases_first(tmp_path):
    images = _images(tmp_path)
    manifest = make_manifest(tmp_path, *images)
    names = lambda *args: [image.name for image in checked_images(manifest, args)]  # noqa: E731
    assert names() == ["base", "app", "other"]
    assert names("build") == ["base", "app", "other"]
    assert names("build:app") == ["base", "app"]
    assert names("push:app:linux/arm64", "manifest:other") == ["base", "app", "other"]
    assert names("doctor") == []
    assert names("registries", "build:nosuch") == []
