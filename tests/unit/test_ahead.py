"""tasks.inputs.ahead: contexts walked, and bases asked, in a forked worker give exactly what
the run would have walked and asked itself."""

import multiprocessing
import os
import signal
from dataclasses import replace

import pytest
from multiarch.builders.registry.probe import RegistryProbe
from multiarch.tasks.doit import session
from multiarch.tasks.inputs import digests
from multiarch.tasks.inputs.ahead import WalksAhead, check_order, outside_bases
from multiarch.tasks.inputs.walk import walk

from tests.unit.test_generate import AMD64, ARM64, PLATFORMS, make_image, make_manifest
from tests.unit.test_probe import registry  # noqa: F401 - the loopback registry fixture


def images_and_state(tmp_path, count=4):
    images = [make_image(tmp_path, f"img{n}") for n in range(count)]
    for n, image in enumerate(images):
        (image.context / "data").mkdir()
        for i in range(n + 3):
            (image.context / "data" / f"{i}.txt").write_text(f"{n}-{i}\n")
    return images, tmp_path / ".multiarch"


def test_the_worker_walks_exactly_what_the_run_would(tmp_path):
    images, state_dir = images_and_state(tmp_path)
    ahead = WalksAhead(images, state_dir, (state_dir,))
    walked = [ahead.entries(image, (state_dir,)) for image in images]
    here = [walk(image, state_dir, (state_dir,)) for image in images]
    # None: the worker had not started on it, and the caller walks it
    from_worker = [(got, own) for got, own in zip(walked, here, strict=True) if got is not None]
    assert from_worker and all(got == own for got, own in from_worker)


def test_what_the_worker_was_not_asked_for_is_walked_by_the_caller(tmp_path):
    images, state_dir = images_and_state(tmp_path)
    ahead = WalksAhead(images[:1], state_dir, (state_dir,))
    ahead.entries(images[0], (state_dir,))
    assert ahead.entries(images[1], (state_dir,)) is None  # not asked for
    assert ahead.entries(images[0], ()) is None  # other skip folders
    moved = replace(images[0], context=images[1].context)
    assert ahead.entries(moved, (state_dir,)) is None  # another image of that name


def test_a_forked_child_of_the_run_walks_for_itself(tmp_path):
    """A `doit -P process` worker has the run's WalksAhead, not its worker's answers."""
    images, state_dir = images_and_state(tmp_path, 1)
    ahead = WalksAhead(images, state_dir, (state_dir,))
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.write(write, b"none" if ahead.entries(images[0], (state_dir,)) is None else b"x")
        finally:
            os._exit(0)
    os.close(write)
    assert os.read(read, 8) == b"none"
    os.waitpid(pid, 0)
    os.close(read)


def test_a_context_that_cannot_be_walked_fails_where_it_is_asked(tmp_path):
    images, state_dir = images_and_state(tmp_path, 1)
    broken = replace(images[0], context=tmp_path / "missing")
    inputs = digests.Inputs(make_manifest(tmp_path, broken))
    inputs.ahead = WalksAhead([broken], state_dir, (state_dir,))
    with pytest.raises(OSError):  # the checker then counts the build as changed
        inputs.digest(broken, ARM64)


# CPython 3.11's pool thread then fails to mark a future it had cancelled as broken
# (InvalidStateError in its own thread); the walks are unaffected.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_worker_that_died_leaves_the_walks_to_the_caller(tmp_path):
    images, state_dir = images_and_state(tmp_path, 30)
    ahead = WalksAhead(images, state_dir, (state_dir,))
    for process in multiprocessing.active_children():
        os.kill(process.pid, signal.SIGKILL)
    inputs = digests.Inputs(make_manifest(tmp_path, *images))
    inputs.ahead = ahead
    assert inputs.context(images[-1])[1] == walk(images[-1], state_dir, (state_dir,))


def test_the_worker_asks_the_outside_bases_and_the_run_learns_them(tmp_path, registry):  # noqa: F811
    host, seen = registry
    image = make_image(tmp_path, base_images=(f"{host}/base:1", f"{host}/gone:1"))
    manifest = make_manifest(tmp_path, image)
    probe = RegistryProbe(retries=0)
    inputs = digests.Inputs(manifest, probe)
    inputs.ahead = WalksAhead([image], manifest.state_dir, (manifest.state_dir,), probe)
    parts = inputs.parts(image, AMD64)
    assert parts["base_images"] == {f"{host}/base:1": "sha256:" + "1" * 64,
                                    f"{host}/gone:1": None}
    assert seen.count("/v2/base/manifests/1") == 1  # asked by the worker, not again here
    assert outside_bases([image]) == sorted(
        {(ref, p) for ref in image.base_images for p in PLATFORMS}, key=str)


def test_images_to_check_follow_the_tasks_asked_for_and_their_bases(tmp_path):
    base = make_image(tmp_path, "base")
    app = make_image(tmp_path, "app", depends_on=("base",))
    other = make_image(tmp_path, "other")
    manifest = make_manifest(tmp_path, app, base, other)

    def names(tasks):
        return [image.name for image in session.images_to_check(manifest, tasks)]

    assert names([]) == ["app", "base", "other"]
    assert names(["build:app"]) == ["app", "base"]
    assert names([f"push:other:{AMD64}"]) == ["other"]
    assert names(["doctor", "inspect"]) == []
    assert [image.name for image in check_order([app, base, other])] == ["base", "other", "app"]
