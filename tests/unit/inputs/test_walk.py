"""tasks.inputs.dockerignore and tasks.inputs.walk: .dockerignore matching, the sent file set,
and context digests."""

import os
import time
from dataclasses import replace
from pathlib import Path

import pytest
from multiarch.tasks.inputs import digests
from multiarch.tasks.inputs.dockerignore import PatternMatcher, _clean, _compile, read_ignore_file
from multiarch.tasks.inputs.walk import (
    StatCache,
    context_digest,
    context_entries,
    sent_files,
    stat_cache_path,
    walk,
)

from tests.unit.doit.test_generate import ARM64, PLATFORMS, make_image, make_manifest

# Tables ported from github.com/moby/patternmatcher, patternmatcher_test.go (Linux rows).
FAIL, EXACT, INEXACT = "fail", "exact", "inexact"

MATCHES = [
    ("**", "file", EXACT), ("**", "file/", EXACT), ("**/", "file", EXACT), ("**/", "file/", EXACT),
    ("**", "/", EXACT), ("**/", "/", EXACT), ("**", "dir/file", EXACT), ("**/", "dir/file", EXACT),
    ("**", "dir/file/", EXACT), ("**/", "dir/file/", EXACT), ("**/**", "dir/file", EXACT),
    ("**/**", "dir/file/", EXACT), ("dir/**", "dir/file", EXACT), ("dir/**", "dir/file/", EXACT),
    ("dir/**", "dir/dir2/file", EXACT), ("dir/**", "dir/dir2/file/", EXACT),
    ("**/dir", "dir", EXACT), ("**/dir", "dir/file", INEXACT),
    ("**/dir2/*", "dir/dir2/file", EXACT), ("**/dir2/*", "dir/dir2/file/", INEXACT),
    ("**/dir2/**", "dir/dir2/dir3/file", EXACT), ("**/dir2/**", "dir/dir2/dir3/file/", EXACT),
    ("**file", "file", EXACT), ("**file", "dir/file", EXACT), ("**/file", "dir/file", EXACT),
    ("**file", "dir/dir/file", EXACT), ("**/file", "dir/dir/file", EXACT),
    ("**/file*", "dir/dir/file", EXACT), ("**/file*", "dir/dir/file.txt", EXACT),
    ("**/file*txt", "dir/dir/file.txt", EXACT), ("**/file*.txt", "dir/dir/file.txt", EXACT),
    ("**/file*.txt*", "dir/dir/file.txt", EXACT), ("**/**/*.txt", "dir/dir/file.txt", EXACT),
    ("**/**/*.txt2", "dir/dir/file.txt", FAIL), ("**/*.txt", "file.txt", EXACT),
    ("**/**/*.txt", "file.txt", EXACT), ("a**/*.txt", "a/file.txt", EXACT),
    ("a**/*.txt", "a/dir/file.txt", EXACT), ("a**/*.txt", "a/dir/dir/file.txt", EXACT),
    ("a/*.txt", "a/dir/file.txt", FAIL), ("a/*.txt", "a/file.txt", EXACT),
    ("a/*.txt**", "a/file.txt", EXACT), ("a[b-d]e", "ae", FAIL), ("a[b-d]e", "ace", EXACT),
    ("a[b-d]e", "aae", FAIL), ("a[^b-d]e", "aze", EXACT), (".*", ".foo", EXACT),
    (".*", "foo", FAIL), ("abc.def", "abcdef", FAIL), ("abc.def", "abc.def", EXACT),
    ("abc.def", "abcZdef", FAIL), ("abc?def", "abcZdef", EXACT), ("abc?def", "abcdef", FAIL),
    ("**/foo/bar", "foo/bar", EXACT), ("**/foo/bar", "dir/foo/bar", EXACT),
    ("**/foo/bar", "dir/dir2/foo/bar", EXACT), ("abc/**", "abc", FAIL),
    ("abc/**", "abc/def", EXACT), ("abc/**", "abc/def/ghi", EXACT), ("**/.foo", ".foo", EXACT),
    ("**/.foo", "bar.foo", FAIL), ("a(b)c/def", "a(b)c/def", EXACT),
    ("a(b)c/def", "a(b)c/xyz", FAIL), ("a.|)$(}+{bc", "a.|)$(}+{bc", EXACT),
    ("dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
     "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", EXACT),
    ("dist/*.whl", "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", EXACT),
    ("a\\\\", "a\\", EXACT), ("a\\*b", "a*b", EXACT),
]

MULTI_PATTERN = [
    (["**", "!util/docker/web"], "util/docker/web/foo", FAIL),
    (["**", "!util/docker/web", "util/docker/web/foo"], "util/docker/web/foo", EXACT),
    (["**", "!dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl"],
     "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", FAIL),
    (["**", "!dist/*.whl"], "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", FAIL),
]

ERR = "error"
MATCH_TESTS = [  # moby's copy of Go's filepath.Match tests, run through Matches()
    ("abc", "abc", True), ("*", "abc", True), ("*c", "abc", True), ("a*", "a", True),
    ("a*", "abc", True), ("a*", "ab/c", True), ("a*/b", "abc/b", True), ("a*/b", "a/c/b", False),
    ("a*b*c*d*e*/f", "axbxcxdxe/f", True), ("a*b*c*d*e*/f", "axbxcxdxexxx/f", True),
    ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", False), ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", False),
    ("a*b?c*x", "abxbbxdbxebxczzx", True), ("a*b?c*x", "abxbbxdbxebxczzy", False),
    ("ab[c]", "abc", True), ("ab[b-d]", "abc", True), ("ab[e-g]", "abc", False),
    ("ab[^c]", "abc", False), ("ab[^b-d]", "abc", False), ("ab[^e-g]", "abc", True),
    ("a\\*b", "a*b", True), ("a\\*b", "ab", False), ("a?b", "a☺b", True),
    ("a[^a]b", "a☺b", True), ("a???b", "a☺b", False), ("a[^a][^a][^a]b", "a☺b", False),
    ("[a-ζ]*", "α", True), ("*[a-ζ]", "A", False), ("a?b", "a/b", False), ("a*b", "a/b", False),
    ("[\\]a]", "]", True), ("[\\-]", "-", True), ("[x\\-]", "x", True), ("[x\\-]", "-", True),
    ("[x\\-]", "z", False), ("[\\-x]", "x", True), ("[\\-x]", "-", True), ("[\\-x]", "a", False),
    ("[]a]", "]", ERR), ("[-]", "-", ERR), ("[x-]", "x", ERR), ("[x-]", "-", ERR),
    ("[x-]", "z", ERR), ("[-x]", "x", ERR), ("[-x]", "-", ERR), ("[-x]", "a", ERR),
    ("\\", "a", ERR), ("[a-b-c]", "a", ERR), ("[", "a", ERR), ("[^", "a", ERR),
    ("[^bc", "a", ERR), ("a[", "a", ERR), ("a[", "ab", ERR), ("*x", "xxx", True),
]

COMPILE_TESTS = [
    ("*", "regexp", "^[^/]*$"), ("file*", "regexp", "^file[^/]*$"),
    ("*file", "regexp", "^[^/]*file$"), ("a*/b", "regexp", "^a[^/]*/b$"), ("**", "suffix", ""),
    ("**/**", "regexp", "^(.*/)?.*$"), ("dir/**", "prefix", ""), ("**/dir", "suffix", ""),
    ("**/dir2/*", "regexp", "^(.*/)?dir2/[^/]*$"), ("**/dir2/**", "regexp", "^(.*/)?dir2/.*$"),
    ("**file", "suffix", ""), ("**/file*txt", "regexp", "^(.*/)?file[^/]*txt$"),
    ("**/**/*.txt", "regexp", "^(.*/)?(.*/)?[^/]*\\.txt$"), ("a[b-d]e", "regexp", "^a[b-d]e$"),
    (".*", "regexp", "^\\.[^/]*$"), ("abc.def", "exact", ""), ("abc?def", "regexp", "^abc[^/]def$"),
    ("**/foo/bar", "suffix", ""), ("a(b)c/def", "exact", ""), ("a.|)$(}+{bc", "exact", ""),
    ("dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", "exact", ""),
]


def moby_matches(file: str, patterns: list[str]) -> bool:
    """patternmatcher.Matches(): clean the path, never exclude the context root itself."""
    matcher = PatternMatcher(patterns)
    file = _clean(file)
    return file != "." and matcher.matches(file)


def walker_matches(matcher: PatternMatcher, text: str) -> bool:
    """MatchesUsingParentResults fed its parents' results, as the context walker does."""
    parents: list[bool] = []
    parent = text.rsplit("/", 1)[0] if "/" in text else "."
    if _clean(parent) != ".":
        dirs = _clean(parent).split("/")
        for depth in range(len(dirs)):
            parents = matcher.matches_using_parents("/".join(dirs[: depth + 1]), parents)[1]
    return matcher.matches_using_parents(text, parents)[0]


@pytest.mark.parametrize(("pattern", "text", "expected"), MATCHES)
def test_matches_table(pattern, text, expected):
    matcher = PatternMatcher([pattern])
    assert matcher.patterns[0].match(text) == (expected == EXACT)  # MatchesExact
    assert matcher.matches(text) == (expected != FAIL)  # MatchesOrParentMatches
    # MatchesUsingParentResultsNoContext
    assert matcher.matches_using_parents(text, [])[0] == (expected != FAIL)
    assert walker_matches(matcher, text) == (expected != FAIL)  # ...UsingParentResults


@pytest.mark.parametrize(("patterns", "text", "expected"), MULTI_PATTERN)
def test_matches_multi_pattern_table(patterns, text, expected):
    matcher = PatternMatcher(patterns)
    assert matcher.matches(text) == (expected != FAIL)
    assert walker_matches(matcher, text) == (expected != FAIL)


@pytest.mark.parametrize(("pattern", "text", "expected"), MATCH_TESTS)
def test_filepath_match_table(pattern, text, expected):
    if expected == ERR:
        with pytest.raises(ValueError, match="pattern"):
            PatternMatcher([pattern])
    else:
        assert moby_matches(text, [pattern]) is expected


@pytest.mark.parametrize(("pattern", "kind", "regexp"), COMPILE_TESTS)
def test_compile_table(pattern, kind, regexp):
    assert _compile(_clean(pattern)) == (kind, regexp)


@pytest.mark.parametrize(
    ("file", "patterns", "expected"),
    [
        ("fileutils.go", ["*"], True),
        ("fileutils.go", ["*.go"], True),
        ("fileutils.go", ["!fileutils.go", "*.go"], True),  # exclusion before inclusion
        ("docs/README.md", ["docs", "!docs/README.md"], False),
        ("docs/README.md", ["docs/", "!docs/README.md"], False),
        ("docs/README.md", ["docs/*", "!docs/README.md"], False),
        ("fileutils.go", ["*.go", "!fileutils.go"], False),
        (".", ["*.go"], False),  # the whole context is never excluded
        ("/any/path/there", [], False),
    ],
)
def test_exclusion_cases(file, patterns, expected):
    assert moby_matches(file, patterns) is expected


@pytest.mark.parametrize("patterns", [["!"], ["docs", "  !  "], ["["]])
def test_malformed_patterns_raise_naming_them(patterns):
    with pytest.raises(ValueError, match=r'"!"|\[') as caught:
        moby_matches("/any/path/there", patterns)
    assert "!" in str(caught.value) or "'['" in str(caught.value)


def test_pattern_that_go_accepts_but_regexp_rejects_fails_at_construction():
    # moby's New() accepts "[Local-Only]/" and fails on the first match (moby/moby#52203).
    with pytest.raises(ValueError, match="Local-Only"):
        PatternMatcher(["[Local-Only]/"])


@pytest.mark.parametrize(
    "patterns", [["docs", "!docs/README.md"], ["docs", "  !docs/README.md"], ["docs", "!x  "]]
)
def test_clean_patterns_exception_flag_with_spaces_trimmed(patterns):
    assert PatternMatcher(patterns).exclusions


def test_clean_patterns_strip_empty():
    assert [p.text for p in PatternMatcher(["docs", "config", "", "  "]).patterns] == [
        "docs",
        "config",
    ]


def write(path: Path, text: str = "x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_read_ignore_file_like_ignorefile_readall(tmp_path):
    # ignorefile_test.go TestReadAll, plus a BOM, CRLF and a space-indented '#'.
    content = "\ufefftest1\r\n/test2\n/a/file/here\n\nlastfile\n# this is a comment\n"
    content += "! /inverted/abs/path\n!\n! \n  # not a comment\n./x/../y/ \n/\n"
    (tmp_path / ".dockerignore").write_text(content)
    assert read_ignore_file(tmp_path, tmp_path / "Dockerfile") == [
        "test1", "test2", "a/file/here", "lastfile", "!inverted/abs/path", "!", "!",
        "# not a comment", "y", "/",
    ]


def test_read_ignore_file_precedence(tmp_path):
    assert read_ignore_file(tmp_path, tmp_path / "Dockerfile") == []
    write(tmp_path / ".dockerignore", "general\n")
    assert read_ignore_file(tmp_path, tmp_path / "Dockerfile") == ["general"]
    write(tmp_path / "Dockerfile.dockerignore", "specific\n")
    assert read_ignore_file(tmp_path, tmp_path / "Dockerfile") == ["specific"]
    write(tmp_path / "build" / "app.Dockerfile.dockerignore", "app\n")
    assert read_ignore_file(tmp_path, tmp_path / "build" / "app.Dockerfile") == ["app"]
    assert read_ignore_file(tmp_path, tmp_path / "other.Dockerfile") == ["general"]


@pytest.fixture
def context(tmp_path):
    root = tmp_path / "ctx"
    for name in ("Dockerfile", "app.py", "docs/README.md", "docs/guide.md", "build/out.o",
                 "node_modules/a/index.js", "logs/keep/today.log", "logs/old.log", "src/x.pyc"):
        write(root / name, name)
    write(root / ".dockerignore", "# ignore\ndocs\n!docs/README.md\nnode_modules\n/build/\n"
          "logs\n!logs/keep\n**/*.pyc\n")
    return root


def test_sent_files_with_exclusions_and_exceptions(context):
    (context / "link").symlink_to("app.py")
    os.mkfifo(context / "pipe")
    assert sent_files(context, context / "Dockerfile") == [
        ".dockerignore", "Dockerfile", "app.py", "docs/README.md", "link", "logs/keep/today.log",
    ]


def test_excluded_dir_is_pruned_unless_an_exception_could_match_inside(context, monkeypatch):
    opened = []
    scandir = os.scandir
    monkeypatch.setattr(os, "scandir", lambda path: opened.append(Path(path).name) or scandir(path))
    sent_files(context, context / "Dockerfile")
    assert "node_modules" not in opened and "build" not in opened  # pruned
    assert "docs" in opened and "logs" in opened  # '!docs/README.md', '!logs/keep' lie inside


def test_wildcard_exception_walks_every_excluded_dir(context):
    write(context / ".dockerignore", "docs\nbuild\n!**/*.md\n")
    assert "docs/guide.md" in sent_files(context, context / "Dockerfile")
    assert "build/out.o" not in sent_files(context, context / "Dockerfile")


def test_digest_ignores_touch_and_ignored_files(context):
    dockerfile = context / "Dockerfile"
    before = context_digest(context, dockerfile)
    os.utime(context / "app.py", ns=(1, 1))
    write(context / "docs/guide.md", "changed")
    write(context / "node_modules/b.js", "new")
    assert context_digest(context, dockerfile) == before


def test_digest_sees_content_mode_and_new_empty_dirs(context):
    dockerfile = context / "Dockerfile"
    before = context_digest(context, dockerfile)
    write(context / "app.py", "app.pY")
    one_byte = context_digest(context, dockerfile)
    assert one_byte != before
    (context / "app.py").chmod(0o755)
    executable = context_digest(context, dockerfile)
    assert executable != one_byte
    (context / "empty").mkdir()
    assert context_digest(context, dockerfile) != executable


def test_digest_follows_dockerignore_edits_and_dockerfile_specific_file(context):
    dockerfile = context / "Dockerfile"
    before = context_digest(context, dockerfile)
    write(context / ".dockerignore", (context / ".dockerignore").read_text() + "!docs/guide.md\n")
    assert context_digest(context, dockerfile) != before
    write(context / "Dockerfile.dockerignore", "**\n!Dockerfile\n")
    only_dockerfile = context_digest(context, dockerfile)
    write(context / "docs/guide.md", "ignored now")
    assert context_digest(context, dockerfile) == only_dockerfile
    write(context / "Dockerfile", "FROM scratch")
    assert context_digest(context, dockerfile) != only_dockerfile


def test_symlinks_hash_their_target_text_and_skip_folders_are_left_out(context):
    (context / "link").symlink_to("/etc/passwd")
    write(context / ".multiarch/state.json", "1")
    before = context_digest(context, context / "Dockerfile", skip=(context / ".multiarch",))
    write(context / ".multiarch/state.json", "2")
    assert context_digest(context, context / "Dockerfile", skip=(context / ".multiarch",)) == before
    (context / "link").unlink()
    (context / "link").symlink_to("/etc/hosts")
    assert context_digest(context, context / "Dockerfile", skip=(context / ".multiarch",)) != before


def old_tree(root: Path, count: int) -> None:
    """Files with mtimes well in the past, so the cache trusts them (no racy window)."""
    for index in range(count):
        path = write(root / f"d{index % 10}" / f"f{index}.txt", f"{index:04d}")
        os.utime(path, ns=(10**18, 10**18 + index))


def test_stat_cache_reads_only_changed_files(tmp_path):
    root = tmp_path / "ctx"
    old_tree(root, 200)
    cache = StatCache(None)
    first = context_digest(root, root / "Dockerfile", cache)
    assert cache.reads == 200
    assert context_digest(root, root / "Dockerfile", cache) == first
    assert cache.reads == 200
    path = write(root / "d3" / "f3.txt", "9999")
    os.utime(path, ns=(10**18, 10**18 + 5000))
    assert context_digest(root, root / "Dockerfile", cache) != first
    assert cache.reads == 201


def test_stat_cache_does_not_trust_just_modified_files(tmp_path):
    write(tmp_path / "fresh", "a")
    cache = StatCache(None)
    cache.file_digest(tmp_path, "fresh")
    cache.file_digest(tmp_path, "fresh")
    assert cache.reads == 2


def test_stat_cache_save_load_round_trip(tmp_path):
    root, state = tmp_path / "ctx", tmp_path / "cache.json"
    old_tree(root, 20)
    cache = StatCache(state)
    digest = context_digest(root, root / "Dockerfile", cache)
    cache.save()
    loaded = StatCache(state)
    assert context_digest(root, root / "Dockerfile", loaded) == digest
    assert loaded.reads == 0
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize(
    "text", ["{not json", "[]", "{}", '{"entries": []}', '{"version": 2, "entries": {"a": 1}}',
             '{"version": 1, "entries": {"a": [1, 2, 3, 4, "ab"]}}']  # v1: lists, not strings
)
def test_corrupt_cache_file_is_treated_as_empty(tmp_path, text):
    write(tmp_path / "cache.json", text)
    old_tree(tmp_path / "ctx", 3)
    cache = StatCache(tmp_path / "cache.json")
    assert cache.entries == {}
    context_digest(tmp_path / "ctx", tmp_path / "Dockerfile", cache)
    assert cache.reads == 3


def test_save_into_unwritable_place_is_skipped(tmp_path):
    # A path below a regular file fails like a read-only folder does, even when run as root.
    blocker = write(tmp_path / "blocker")
    StatCache(blocker / "cache.json").save()
    folder = tmp_path / "ro"
    folder.mkdir(mode=0o555)
    StatCache(folder / "cache.json").save()  # read-only for non-root users; must not raise
    folder.chmod(0o755)
    assert blocker.read_text() == "x"


def test_walk_keeps_each_images_stat_cache_in_the_state_folder(tmp_path):
    image, state_dir = make_image(tmp_path), tmp_path / ".multiarch"
    for path in image.context.rglob("*"):  # older than the stat cache's racy window
        os.utime(path, (time.time() - 60, time.time() - 60))
    entries = walk(image, state_dir, (state_dir,))
    assert entries == context_entries(image.context, image.dockerfile, None, (state_dir,))
    assert stat_cache_path(state_dir, image.name).is_file()
    assert stat_cache_path(None, image.name) is None  # no state folder: no cache
    assert walk(image, None) == entries


def test_inputs_walk_a_context_once_per_run_and_report_what_cannot_be(tmp_path, monkeypatch):
    image = make_image(tmp_path)
    broken = replace(make_image(tmp_path, "broken"), context=tmp_path / "missing")
    inputs = digests.Inputs(make_manifest(tmp_path, image, broken))
    walked = []
    monkeypatch.setattr(digests, "walk", lambda *args: walked.append(args[0].name) or
                        walk(*args))
    assert len({inputs.digest(image, platform) for platform in PLATFORMS}) == 3
    assert inputs.breakdown(image, ARM64)["context"] == inputs.entries(image)
    assert walked == ["demo"]
    with pytest.raises(OSError):  # raised where it is asked: the checker counts it as changed
        inputs.digest(broken, ARM64)
