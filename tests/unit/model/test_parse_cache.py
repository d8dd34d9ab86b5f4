"""tasks.model.dockerfile.parse_cached: Parsed kept as JSON on disk, read without Go."""

import hashlib
import json
import subprocess
import sys
import textwrap
from collections import OrderedDict

import pytest
from multiarch.tasks.model import dockerfile
from multiarch.tasks.model.dockerfile import DockerfileError, parse, parse_cached, pulls
from multiarch.tasks.model.instructions import FORMAT, from_json, to_json
from multiarch.tasks.model.platforms import parse_platform

AMD64, ARM64 = parse_platform("linux/amd64"), parse_platform("linux/arm64")
CROSS = ("# syntax=docker/dockerfile:1\nARG GO=1.22\n"
         "FROM --platform=$BUILDPLATFORM golang:${GO} AS build\nARG TARGETARCH\n"
         "RUN --mount=type=cache,target=/root/.cache GOARCH=$TARGETARCH go build\n"
         "FROM alpine:3 AS base\nONBUILD COPY --from=tools:1 /t /t\n"
         "ONBUILD ADD https://example.com/x.tgz /x\n"
         "FROM base\nCOPY --from=build /out /out\nADD --checksum=sha256:" + "a" * 64
         + " https://example.com/y.tgz /y\n")


@pytest.fixture
def fresh(monkeypatch):
    """A process that has parsed nothing yet: the in-memory memo is empty."""
    monkeypatch.setattr(dockerfile, "_parsed", OrderedDict())


def cache_file(cache_dir, text):
    return cache_dir / f"{hashlib.sha256(text.encode()).hexdigest()}.json"


def summary(parsed, target_platform=ARM64):
    return (pulls(parsed, {}, None, target_platform, AMD64),
            dockerfile.untracked(parsed, {}, None, target_platform, AMD64))


def test_a_miss_writes_the_file_and_a_hit_reads_it_without_parsing(tmp_path, fresh,
                                                                   monkeypatch):
    expected = summary(parse(CROSS))
    dockerfile._parsed.clear()
    assert summary(parse_cached(CROSS, tmp_path)) == expected
    assert json.loads(cache_file(tmp_path, CROSS).read_text())["format"] == FORMAT

    dockerfile._parsed.clear()
    monkeypatch.setattr(dockerfile, "read", lambda text: pytest.fail("parsed on a hit"))
    parsed = parse_cached(CROSS, tmp_path)
    assert summary(parsed) == expected
    assert summary(parsed, AMD64) == summary(parse(CROSS), AMD64)
    assert parse_cached(CROSS, tmp_path) is parsed  # then kept in memory, as parse() keeps


def test_a_hit_never_imports_the_go_parser(tmp_path):
    expected = summary(parse_cached(CROSS, tmp_path))
    script = textwrap.dedent("""
        import sys
        from pathlib import Path
        from multiarch.tasks.model.dockerfile import parse_cached, pulls, untracked
        from multiarch.tasks.model.platforms import parse_platform
        assert "dockerfile" not in sys.modules, "imported with the module"
        parsed = parse_cached(sys.argv[1], Path(sys.argv[2]))
        amd64, arm64 = parse_platform("linux/amd64"), parse_platform("linux/arm64")
        found = pulls(parsed, {}, None, arm64, amd64), untracked(parsed, {}, None, arm64, amd64)
        assert "dockerfile" not in sys.modules, "imported on a hit"
        print(repr(found))
    """)
    result = subprocess.run([sys.executable, "-c", script, CROSS, str(tmp_path)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == repr(expected)


@pytest.mark.parametrize("content", [
    b"{not json",
    b"",
    b"\xff\xfe",
    json.dumps({"format": FORMAT + 1}).encode(),
    b"[]",
])
def test_a_corrupt_or_other_format_file_is_parsed_again_and_rewritten(tmp_path, fresh, content):
    path = cache_file(tmp_path, CROSS)
    path.write_bytes(content)
    assert summary(parse_cached(CROSS, tmp_path)) == summary(parse(CROSS))
    assert from_json(json.loads(path.read_text())) is not None


@pytest.mark.parametrize(("key", "value"), [
    ("escape", "x"), ("stages", []), ("syntax", ["docker/dockerfile:1", "1"]),
    ("args", [["GO", "1.22", True]]), ("stages", [{"base": "alpine"}]),
])
def test_a_file_of_the_wrong_shape_is_refused(key, value):
    data = to_json(parse(CROSS))
    data[key] = value
    with pytest.raises(ValueError):
        from_json(data)


def test_a_use_of_the_wrong_shape_is_refused():
    data = to_json(parse(CROSS))
    data["stages"][1]["trigger_uses"] = [["tools:1", "FROM", 7]]
    with pytest.raises(ValueError):
        from_json(data)


def test_json_round_trips():
    data = to_json(parse(CROSS))
    assert data["syntax"] == ["docker/dockerfile:1", 1]
    assert to_json(from_json(json.loads(json.dumps(data)))) == data


def test_a_rejected_text_is_not_cached(tmp_path, fresh):
    text = "FROM alpine\nCOPY onlyone\n"
    for _ in range(2):
        with pytest.raises(DockerfileError) as caught:
            parse_cached(text, tmp_path)
        assert caught.value.line == 2
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_cache_only_costs_the_parse(tmp_path, fresh):
    blocked = tmp_path / "file"
    blocked.write_text("")
    assert summary(parse_cached(CROSS, blocked)) == summary(parse(CROSS))


def test_no_cache_dir_is_parse(fresh):
    assert parse_cached(CROSS, None) is parse(CROSS)
