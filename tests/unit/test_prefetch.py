"""tasks.prefetch: contexts walked in a forked child give exactly what the parent would walk."""

import contextlib
import marshal
import os
import signal
import struct
import threading
import time
from dataclasses import replace

import pytest
from multiarch.builders.registry.probe import UNKNOWN
from multiarch.tasks.doit import cmdline
from multiarch.tasks.inputs import prefetch
from multiarch.tasks.inputs.digests import Inputs
from multiarch.tasks.inputs.walk import context_entries
from multiarch.tasks.model.manifest import load_manifest

from tests.unit.test_generate import AMD64, make_image, make_manifest


@pytest.fixture
def chain(tmp_path):
    """base ← app ← tool, and a lone image; contexts with an ignore file and an exception."""
    base = make_image(tmp_path, "base")
    app = make_image(tmp_path, "app", depends_on=("base",))
    tool = make_image(tmp_path, "tool", depends_on=("app",))
    lone = make_image(tmp_path, "lone")
    for image in (base, app, tool, lone):
        (image.context / ".dockerignore").write_text("*.log\n!keep.log\n")
        (image.context / "debug.log").write_text("ignored\n")
        (image.context / "keep.log").write_text(f"{image.name}\n")
        (image.context / "src").mkdir()
        (image.context / "src" / "main.c").write_text(f"int {image.name};\n")
        for path in image.context.rglob("*"):  # older than the stat cache's racy window
            os.utime(path, (time.time() - 60, time.time() - 60))
    return make_manifest(tmp_path, base, app, tool, lone)


def start(manifest, images) -> prefetch.Prefetch:
    """Prefetch.start, which forks only when no other thread runs: a thread that another test
    left running is named here, not met as a None further down."""
    assert threading.active_count() == 1, f"threads left running: {threading.enumerate()}"
    walked = prefetch.Prefetch.start(manifest, images)
    assert walked is not None
    return walked


def names(images) -> list[str]:
    return [image.name for image in images]


@pytest.mark.parametrize(("task_names", "expected"), [
    ([], ["base", "lone", "app", "tool"]),  # the default task, build: every image; bases first
    (["build"], ["base", "lone", "app", "tool"]),
    (["status"], ["base", "lone", "app", "tool"]),
    (["build:tool"], ["base", "app", "tool"]),  # and the bases it is built FROM
    (["push:app:linux/arm64", "manifest:lone"], ["base", "lone", "app"]),
    (["build:l*"], ["lone"]),
    (["doctor"], []),
    (["registries", "buildkitd"], []),
    (["build:nothing"], []),
])
def test_images_for_follows_the_tasks_asked_for_and_their_bases(chain, task_names, expected):
    assert names(prefetch.images_for(chain, task_names)) == expected


def test_the_child_sends_what_the_parent_would_walk(chain):
    walked = start(chain, list(chain.images))
    assert walked is not None
    skip = (chain.state_dir,)
    for image in chain.images:
        entries = walked.entries(image, skip)
        assert entries == context_entries(image.context, image.dockerfile, None, skip)
        assert "debug.log" not in entries and "keep.log" in entries
        assert prefetch.stat_cache_path(chain.state_dir, image.name).is_file()  # saved there


def test_inputs_digest_the_same_with_or_without_the_child(chain):
    walked = start(chain, list(chain.images))
    ahead, alone = Inputs(chain, prefetched=walked), Inputs(chain)
    for image in chain.images:
        assert ahead.digest(image, AMD64) == alone.digest(image, AMD64)
        assert ahead.entries(image) == alone.entries(image)


def test_a_one_byte_change_reaches_the_next_walk(chain):
    app = chain.image("app")
    before = Inputs(chain, prefetched=start(chain, [app])).digest(app, AMD64)
    (app.context / "src" / "main.c").write_text("int apq;\n")
    after = Inputs(chain, prefetched=start(chain, [app])).digest(app, AMD64)
    assert before != after == Inputs(chain).digest(app, AMD64)


def test_what_the_child_did_not_walk_is_left_to_the_parent(chain):
    base, lone = chain.image("base"), chain.image("lone")
    walked = start(chain, [base])
    skip = (chain.state_dir,)
    assert walked.entries(lone, skip) is None
    assert walked.entries(base, (*skip, base.context / "src")) is None  # walked with other skips
    assert walked.entries(base, skip) is not None


def test_an_image_the_child_cannot_walk_is_walked_again_by_the_parent(chain, tmp_path):
    broken = replace(chain.image("lone"), context=tmp_path / "missing")
    walked = start(chain, [chain.image("base"), broken])
    assert walked.entries(broken, (chain.state_dir,)) is None
    assert walked.entries(chain.image("base"), (chain.state_dir,)) is not None
    with pytest.raises(OSError):  # the parent's own walk reports the real error
        Inputs(chain, prefetched=walked).entries(broken)


def test_a_killed_child_leaves_the_rest_to_the_parent(chain):
    walked = start(chain, list(chain.images))
    os.kill(walked.pid, signal.SIGKILL)  # before or after it sent some images: either way
    skip = (chain.state_dir,)
    for image in chain.images:
        found = walked.entries(image, skip)
        assert found is None or found == context_entries(image.context, image.dockerfile,
                                                         None, skip)
        assert Inputs(chain, prefetched=walked).digest(image, AMD64) == \
            Inputs(chain).digest(image, AMD64)


def reading(pid: int, read_end: int, manifest, images) -> prefetch.Prefetch:
    """A Prefetch reading child ``pid``'s pipe, told to expect ``images``."""
    walked = prefetch.Prefetch(pid, read_end)
    walked.expect(manifest, images)
    return walked


def idle_child(sent: bytes = b"", seconds: float = 0) -> tuple[int, int]:
    """(pid, read end of its pipe) of a child that sends ``sent``, then idles ``seconds``."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # nothing may escape into a second pytest session
        try:
            os.close(read_end)
            with contextlib.suppress(BrokenPipeError):  # the parent gave up on it already
                os.write(write_end, sent)
            time.sleep(seconds)
        finally:
            os._exit(0)
    os.close(write_end)
    return pid, read_end


@pytest.mark.parametrize("sent", [b"", b"\x05\x00", b"\x09\x00\x00\x00not marshal",
                                  b"\xff\xff\x00\x00short"])
def test_a_broken_stream_leaves_the_walk_to_the_parent(chain, sent):
    pid, read_end = idle_child(sent)
    app, skip = chain.image("app"), (chain.state_dir,)
    walked = reading(pid, read_end, chain, [app])
    assert walked.entries(app, skip) == context_entries(app.context, app.dockerfile, None, skip)
    with contextlib.suppress(ChildProcessError):  # reaped already, or now
        os.waitpid(pid, 0)


@pytest.mark.parametrize("answers", [None, 7, ["sha256:" + "0" * 64], [("only", "two")]])
def test_a_bases_message_not_as_the_child_sends_it_is_left_out(chain, answers):
    sent = marshal.dumps(("", answers))
    pid, read_end = idle_child(struct.pack("<I", len(sent)) + sent)
    image = replace(chain.image("app"), pull=True, base_images=("127.0.0.1:9/base:1",))
    walked = reading(pid, read_end, chain, [image])
    assert walked.base_digests() == {}
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def test_a_child_still_at_work_at_exit_is_stopped_and_reaped(chain):
    pid, read_end = idle_child(seconds=30)
    walked = reading(pid, read_end, chain, list(chain.images))
    started = time.monotonic()
    walked._end()  # as atexit calls it
    assert time.monotonic() - started < 5
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reaped already


def test_the_parent_walks_from_the_end_while_the_child_is_slow(chain):
    pid, read_end = idle_child(seconds=30)  # sends nothing in time
    skip, images = (chain.state_dir,), list(chain.images)
    walked = reading(pid, read_end, chain, images)
    started = time.monotonic()
    try:
        first = walked.entries(images[0], skip)  # the walk from the end reaches it
        assert time.monotonic() - started < 10
        assert first == context_entries(images[0].context, images[0].dockerfile, None, skip)
        assert all(walked.entries(image, skip) is not None for image in images)
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def test_a_worker_process_does_not_read_the_parents_child(chain):
    walked = start(chain, list(chain.images))
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # as a `doit -P process` worker forked from the run would
        try:
            found = walked.entries(chain.image("app"), (chain.state_dir,))
            os.write(write, b"none" if found is None else b"some")
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 4) == b"none"
    assert walked.entries(chain.image("app"), (chain.state_dir,)) is not None


def test_no_fork_beside_other_threads_or_with_nothing_to_walk(chain):
    assert prefetch.Prefetch.start(chain, []) is None
    release = threading.Event()
    other = threading.Thread(target=release.wait)
    other.start()
    try:
        assert prefetch.Prefetch.start(chain, list(chain.images)) is None
    finally:
        release.set()
        other.join()


def test_the_child_sends_the_bases_as_its_probe_answers(chain, tmp_path):
    """The child asks a registry that does not answer: UNKNOWN per base and platform, as the
    parent's own probe would say."""
    image = replace(chain.image("app"), pull=True, base_images=("127.0.0.1:9/base:1",))
    walked = start(replace(chain, retries=0), [image])
    assert walked.base_digests() == {("127.0.0.1:9/base:1", platform): UNKNOWN
                                     for platform in image.platforms}


@pytest.mark.parametrize(("argv", "expected"), [
    ([], ("run", [])),
    (["-n", "2", "build:app", "verify=0"], ("run", ["build:app"])),
    (["-f", "dodo.py", "-n", "2", "build"], ("run", ["build"])),
    (["run", "-v", "2", "status"], ("run", ["status"])),
    (["--continue", "build:a*", "push"], ("run", ["build:a*", "push"])),
    (["-f", "dodo.py", "list", "--all"], ("list", ["--all"])),
    (["manifest=x.yaml", "forget", "build:a"], ("forget", ["build:a"])),
])
def test_the_command_line_is_read_as_doit_reads_it(argv, expected):
    assert cmdline.read(argv) == expected


def test_more_than_a_pipe_holds_arrives_whole(tmp_path):
    """Past the pipe's 1 MiB the child waits for the parent to read: no deadlock, no loss."""
    images = []
    for index in range(3):
        image = make_image(tmp_path, f"big{index}")
        folder = image.context / ("deep-folder-name-" * 4)
        folder.mkdir()
        for number in range(2500):
            (folder / f"{number:05d}-{'x' * 80}.txt").write_text(str(number))
        images.append(image)
    manifest = make_manifest(tmp_path, *images)
    walked = start(manifest, images)
    skip = (manifest.state_dir,)
    total = 0
    for image in reversed(images):  # the last one first: the others are read and kept
        entries = walked.entries(image, skip)
        assert entries == context_entries(image.context, image.dockerfile, None, skip)
        total += sum(len(path) + len(entry) for path, entry in entries.items())
    assert total > prefetch.PIPE_SIZE


def write_manifest(tmp_path, text: str) -> str:
    path = tmp_path / "multiarch.yaml"
    path.write_text("version: 1\nregistry: localhost:5000\nplatforms: [linux/amd64]\n" + text)
    for name in ("base", "app", "lone"):
        (tmp_path / name).mkdir(exist_ok=True)
        (tmp_path / name / "Dockerfile").write_text(
            "FROM localhost:5000/base:v1\n" if name == "app" else "FROM scratch\n")
        (tmp_path / name / f"{name}.txt").write_text(name)
    return str(path)


IMAGES = """images:
  lone: {context: lone, tags: [v1]}
  app: {context: app, tags: [v1]}
  base: {context: base, tags: [v1]}
"""


def test_an_early_child_reads_the_manifest_itself_and_walks_in_check_order(tmp_path):
    path = write_manifest(tmp_path, IMAGES)
    assert threading.active_count() == 1
    early = prefetch.Prefetch.start_early(path, [])
    assert early is not None
    manifest = load_manifest(path)
    walked = prefetch.for_run(early, manifest, [], waited=False)
    assert walked is early
    assert names(walked.images) == ["lone", "base", "app"]  # app is built FROM base
    skip = (manifest.state_dir,)
    for image in manifest.images:
        assert walked.entries(image, skip) == context_entries(image.context, image.dockerfile,
                                                              None, skip)
    assert Inputs(manifest, prefetched=walked).digest(manifest.image("app"), AMD64) == \
        Inputs(manifest).digest(manifest.image("app"), AMD64)


def test_what_the_early_child_walked_for_another_context_is_not_taken(tmp_path):
    """The file changed between the child's reading and this side's: the image the child
    walked under another context is walked again here."""
    path = write_manifest(tmp_path, IMAGES)
    early = prefetch.Prefetch.start_early(path, [])
    assert early is not None
    early._message("app")  # the child has read the manifest and walked app's context
    write_manifest(tmp_path, IMAGES.replace("app: {context: app", "app: {context: lone"))
    manifest = load_manifest(path)
    walked = prefetch.for_run(early, manifest, [], waited=False)
    app, skip = manifest.image("app"), (manifest.state_dir,)
    assert walked.context(app, skip) is None
    assert Inputs(manifest, prefetched=walked).entries(app) == \
        context_entries(tmp_path / "lone", tmp_path / "lone" / "Dockerfile", None, skip)


def test_after_waiting_for_another_run_the_early_child_is_left_and_another_forked(tmp_path):
    path = write_manifest(tmp_path, IMAGES)
    early = prefetch.Prefetch.start_early(path, [])
    assert early is not None
    manifest = load_manifest(path)
    walked = prefetch.for_run(early, manifest, [], waited=True)
    assert walked is not None and walked is not early and walked.pid != early.pid
    assert early.context(manifest.image("base"), (manifest.state_dir,)) is None
    assert walked.entries(manifest.image("base"), (manifest.state_dir,)) is not None


def test_no_early_child_for_tasks_that_need_no_context(tmp_path):
    assert prefetch.Prefetch.start_early(write_manifest(tmp_path, IMAGES),
                                         ["doctor", "registries"]) is None


def test_an_early_child_that_cannot_read_the_manifest_leaves_the_walk_here(tmp_path):
    path = write_manifest(tmp_path, "images: [not, a, mapping]\n")
    early = prefetch.Prefetch.start_early(path, [])
    assert early is not None
    base = make_image(tmp_path, "base")
    manifest = make_manifest(tmp_path, base)
    early.expect(manifest, [base])
    skip = (manifest.state_dir,)
    assert early.entries(base, skip) == context_entries(base.context, base.dockerfile, None, skip)
    assert early._messages.keys() == {"base"}  # walked here: the child sent nothing
