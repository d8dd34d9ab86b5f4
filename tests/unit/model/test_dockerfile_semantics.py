"""What a Dockerfile pulls, per platform, by BuildKit's rules (tasks/model/dockerfile.py)."""

import pytest
from multiarch.tasks.model.dockerfile import (
    DockerfileError,
    parse,
    pulls,
    referenced_images,
    untracked,
)
from multiarch.tasks.model.platforms import parse_platform

AMD64, ARM64, ARMV7 = "linux/amd64", "linux/arm64", "linux/arm/v7"

# (case, Dockerfile, build args, target, target platform, build platform, expected pulls as
# (reference, platform, stage, line, instruction))
CASES = [
    ("cross-compilation",
     "FROM --platform=$BUILDPLATFORM base:1 AS build\nARG TARGETARCH\nRUN make $TARGETARCH\n"
     "FROM base:1\nCOPY --from=build /out /out\n",
     {}, None, ARM64, AMD64,
     [("base:1", AMD64, "build", 1, "FROM"), ("base:1", ARM64, "1", 4, "FROM")]),
    ("cross-compilation, native",
     "FROM --platform=$BUILDPLATFORM base:1 AS build\nFROM base:1\nCOPY --from=build /o /o\n",
     {}, None, AMD64, AMD64,
     [("base:1", AMD64, "build", 1, "FROM"), ("base:1", AMD64, "1", 2, "FROM")]),
    ("quoted global ARG",
     'ARG BASE="127.0.0.1:5000/x/base:v1"\nFROM ${BASE} AS b\nRUN true\n',
     {}, None, AMD64, AMD64, [("127.0.0.1:5000/x/base:v1", AMD64, "b", 2, "FROM")]),
    ("quotes of both kinds around parts of a word",
     "ARG REPO='localhost:5000/team'\nFROM \"$REPO/app\":'v1'\n",
     {}, None, AMD64, AMD64, [("localhost:5000/team/app:v1", AMD64, "0", 2, "FROM")]),
    ("a build arg replaces a declared ARG's default",
     "ARG REGISTRY=localhost:5000\nFROM $REGISTRY/base\n",
     {"REGISTRY": "r.example"}, None, AMD64, AMD64, [("r.example/base", AMD64, "0", 2, "FROM")]),
    ("an undeclared build arg is not seen by FROM",
     "FROM base:${TAG:-v1}\n",
     {"TAG": "v9"}, None, AMD64, AMD64, [("base:v1", AMD64, "0", 1, "FROM")]),
    ("RUN --mount from an image, for the target platform; a cache mount pulls nothing",
     "FROM alpine:3\nRUN --mount=type=bind,from=localhost:5000/tools:1,target=/t \\\n"
     "    --mount=type=cache,target=/root/.cache cp /t/x /x\n",
     {}, None, ARM64, AMD64,
     [("alpine:3", ARM64, "0", 1, "FROM"),
      ("localhost:5000/tools:1", ARM64, "0", 2, "RUN --mount")]),
    ("RUN --mount from a stage",
     "FROM golang:1 AS build\nFROM alpine:3\nRUN --mount=from=build,target=/b cp /b/app /\n",
     {}, None, AMD64, AMD64,
     [("golang:1", AMD64, "build", 1, "FROM"), ("alpine:3", AMD64, "1", 2, "FROM")]),
    ("COPY --from an image in a $BUILDPLATFORM stage is pulled for the target",
     "FROM --platform=$BUILDPLATFORM golang:1 AS build\nCOPY --from=tools:1 /t /t\n"
     "FROM alpine:3\nCOPY --from=build /x /x\n",
     {}, None, ARM64, AMD64,
     [("golang:1", AMD64, "build", 1, "FROM"), ("tools:1", ARM64, "build", 2, "COPY --from"),
      ("alpine:3", ARM64, "1", 3, "FROM")]),
    ("a heredoc's FROM is no instruction",
     "FROM alpine:3\nRUN <<EOF\nFROM notapull\necho hi\nEOF\n",
     {}, None, AMD64, AMD64, [("alpine:3", AMD64, "0", 1, "FROM")]),
    ("a comment line inside a continued FROM",
     "# FROM commented:1\nFROM \\\n# not a word\n  continued:2\n",
     {}, None, AMD64, AMD64, [("continued:2", AMD64, "0", 2, "FROM")]),
    ("the backtick escape continues lines and escapes in words",
     "# escape=`\nARG TAG=v`1\nFROM base:${TAG} `\n  AS b\nRUN dir c:\\\n",
     {}, None, AMD64, AMD64, [("base:v1", AMD64, "b", 3, "FROM")]),
    ("stages by index and by name, any case",
     "FROM golang:1 AS Build\nFROM a AS one\nFROM one\nCOPY --from=0 /x /x\n"
     "COPY --from=BUILD /y /y\nCOPY --from=tools:1 /z /z\n",
     {}, None, AMD64, AMD64,
     [("golang:1", AMD64, "build", 1, "FROM"), ("a", AMD64, "one", 2, "FROM"),
      ("tools:1", AMD64, "2", 6, "COPY --from")]),
    ("unreachable stages are not pulled",
     "FROM debian:12 AS unused\nFROM golang:1 AS build\nFROM node:20 AS docs\n"
     "FROM alpine:3\nCOPY --from=build /x /x\n",
     {}, None, AMD64, AMD64,
     [("golang:1", AMD64, "build", 2, "FROM"), ("alpine:3", AMD64, "3", 4, "FROM")]),
    ("FROM binary-$TARGETOS is a stage, the platform args need no ARG",
     "FROM golang:1 AS binary-linux\nFROM windows/servercore AS binary-windows\n"
     "FROM binary-$TARGETOS\n",
     {}, None, ARM64, AMD64, [("golang:1", ARM64, "binary-linux", 1, "FROM")]),
    ("a later stage's name is an image to FROM",
     "FROM later\nFROM alpine:3 AS later\n",
     {}, None, AMD64, AMD64, [("alpine:3", AMD64, "later", 2, "FROM")]),
    ("an ARG without default is unset; ${VAR:+word}",
     "ARG TAG\nFROM base${TAG:+:$TAG}\n",
     {}, None, AMD64, AMD64, [("base", AMD64, "0", 2, "FROM")]),
    ("${VAR:+word} with the build arg",
     "ARG TAG\nFROM base${TAG:+:$TAG}\n",
     {"TAG": "v2"}, None, AMD64, AMD64, [("base:v2", AMD64, "0", 2, "FROM")]),
    ("unset and empty differ for ${VAR-word}, not for ${VAR:-word}",
     'ARG EMPTY=""\nARG UNSET\nFROM a:${EMPTY-x}${EMPTY:-y}${UNSET-z}\n',
     {}, None, AMD64, AMD64, [("a:yz", AMD64, "0", 3, "FROM")]),
    ("prefix and suffix removal",
     "ARG REF=docker.io/library/alpine:3.19\nFROM ${REF%:*}:${REF##*:}\n",
     {}, None, AMD64, AMD64, [("docker.io/library/alpine:3.19", AMD64, "0", 2, "FROM")]),
    ("TARGETVARIANT is set, and empty without a variant",
     "FROM base:${TARGETARCH}${TARGETVARIANT:+-$TARGETVARIANT}${TARGETVARIANT+-set}\n",
     {}, None, ARMV7, AMD64, [("base:arm-v7-set", ARMV7, "0", 1, "FROM")]),
    ("TARGETVARIANT empty",
     "FROM base:${TARGETARCH}${TARGETVARIANT:+-$TARGETVARIANT}${TARGETVARIANT+-set}\n",
     {}, None, AMD64, AMD64, [("base:amd64-set", AMD64, "0", 1, "FROM")]),
    ("--platform fixed; a stage FROM it keeps it",
     "FROM --platform=linux/arm64 tools:1 AS t\nFROM t AS t2\nFROM alpine:3\n"
     "COPY --from=t2 /x /x\n",
     {}, None, AMD64, AMD64,
     [("tools:1", ARM64, "t", 1, "FROM"), ("alpine:3", AMD64, "2", 3, "FROM")]),
    ("a target given, in any case",
     "FROM a:1 AS one\nFROM b:1 AS two\nFROM c:1\n",
     {}, "TWO", AMD64, AMD64, [("b:1", AMD64, "two", 2, "FROM")]),
    ("the syntax frontend is pulled for the build platform",
     "# syntax=docker/dockerfile:1\n# escape=\\\nFROM alpine:3\n",
     {}, None, ARM64, AMD64,
     [("docker/dockerfile:1", AMD64, "syntax", 1, "# syntax"),
      ("alpine:3", ARM64, "0", 3, "FROM")]),
    ("a syntax line after another comment is no directive",
     "# hello\n# syntax=docker/dockerfile:1\nFROM alpine:3\n",
     {}, None, AMD64, AMD64, [("alpine:3", AMD64, "0", 3, "FROM")]),
    ("BUILDKIT_SYNTAX replaces the directive",
     "# syntax=docker/dockerfile:1\nFROM alpine:3\n",
     {"BUILDKIT_SYNTAX": "docker/dockerfile:1.7"}, None, AMD64, AMD64,
     [("docker/dockerfile:1.7", AMD64, "syntax", 0, "# syntax"),
      ("alpine:3", AMD64, "0", 2, "FROM")]),
    ("scratch is no image",
     "FROM scratch\nCOPY --from=scratch / /\nCOPY app /app\n", {}, None, AMD64, AMD64, []),
    ("a stage built FROM another runs its ONBUILD triggers",
     "FROM alpine:3 AS base\nONBUILD COPY --from=tools:1 /t /t\nFROM base\n",
     {}, None, ARM64, AMD64,
     [("alpine:3", ARM64, "base", 1, "FROM"), ("tools:1", ARM64, "1", 3, "COPY --from")]),
]


@pytest.mark.parametrize(("text", "build_args", "target", "target_platform", "build_platform",
                          "expected"), [case[1:] for case in CASES], ids=[c[0] for c in CASES])
def test_pulls(text, build_args, target, target_platform, build_platform, expected):
    found = pulls(parse(text), build_args, target, parse_platform(target_platform),
                  parse_platform(build_platform))
    assert [(p.reference, str(p.platform), p.stage, p.line, p.instruction)
            for p in found] == expected


def test_referenced_images_is_the_union_over_platforms_in_order():
    text = ("FROM --platform=$BUILDPLATFORM golang:1 AS build\nFROM base-${TARGETARCH}\n"
            "COPY --from=build /app /app\n")
    platforms = [parse_platform(ARM64), parse_platform(AMD64)]
    assert referenced_images(text, {}, platforms=platforms) == [
        "golang:1", "base-arm64", "base-amd64"]
    assert referenced_images(text, {}) == ["golang:1", "base-amd64"]


def test_untracked_inputs():
    text = (
        "FROM alpine:3 AS unused\nADD https://example.com/unused.tgz /\n"
        "FROM alpine:3\n"
        "ADD https://example.com/tool.tgz /opt/\n"
        "ADD --checksum=sha256:" + "a" * 64 + " https://example.com/pinned.tgz /opt/\n"
        "ADD git@github.com:moby/buildkit.git#v0.13.0 /src\n"
        "ADD https://github.com/moby/buildkit.git /src2\n"
        "ADD local.tgz /opt/\n"
    )
    assert untracked(parse(text), {}, None, parse_platform(AMD64), parse_platform(AMD64)) == (
        "line 4: ADD https://example.com/tool.tgz: a URL without --checksum is not tracked",
        "line 6: ADD git@github.com:moby/buildkit.git#v0.13.0: a git source without --checksum"
        " is not tracked",
        "line 7: ADD https://github.com/moby/buildkit.git: a git source without --checksum"
        " is not tracked",
    )


@pytest.mark.parametrize(
    ("text", "target", "line", "message"),
    [
        ("FROM alpine:3\nRUN <<EOF\necho hi\n", None, 2, "unterminated heredoc"),
        ("# syntax=a\n# syntax=b\nFROM alpine\n", None, 2,
         "only one syntax parser directive can be used"),
        ("", None, None, "file with no instructions"),
        ("ARG BASE\nFROM $BASE\n", None, 2, "base name ($BASE) should not be blank"),
        ("FROM --platform=linux/bogus alpine\n", None, 1, 'FROM --platform=linux/bogus: '),
        ("FROM --platform=$NOPE alpine\n", None, 1, "empty platform value from expression $NOPE"),
        ("FROM alpine\nCOPY --from=5 /x /x\n", None, 2, "invalid stage index 5"),
        ("FROM alpine AS a\nCOPY --from=b /x /x\nFROM alpine AS b\n", "a", 2,
         "cannot copy from stage 'b', it needs to be defined before current stage 'a'"),
        ("FROM alpine AS a\nRUN --mount=from=b,target=/b true\nFROM alpine AS b\n", "a", 2,
         "cannot mount from stage 'b', stage needs to be defined before current command"),
        ("FROM alpine AS a\nCOPY --from=a /x /x\n", None, 2,
         "circular dependency detected on stage: a"),
        ("FROM a AS one\nFROM b\n", "tow", None, "target stage 'tow' could not be found"),
        ("FROM Alpine\n", None, 1, 'FROM Alpine: invalid repository name "Alpine"'),
        ("FROM alpine\nCOPY --from=$STAGE /x /x\n", None, 2,
         "variable expansion is not supported for --from"),
        ("FROM alpine\nRUN --mount=from=$IMG,target=/i true\n", None, 2,
         "'from' doesn't support variable expansion"),
        ("FROM a:${TAG:?required}\n", None, 1, "failed to process 'a:${TAG:?required}':"
         " TAG: required"),
        ("FROM a:${TAG\n", None, 1, "failed to process 'a:${TAG': "),
        ("FROM alpine\nCOPY --form=x /x /x\n", None, 2,
         "unknown flag: --form; did you mean 'from'?"),
        ("RUN true\nFROM alpine\n", None, 1, "no build stage in current context"),
        ("FROM alpine\nFOO bar\n", None, 2, "unknown instruction: 'FOO'"),
        ("FROM alpine\n\\", None, 2, "unknown instruction: ''"),
        ("FROM alpine AS 1st\n", None, 1, "invalid name for build stage: '1st'"),
    ],
)
def test_errors_name_the_line(text, target, line, message):
    with pytest.raises(DockerfileError) as caught:
        pulls(parse(text), {}, target, parse_platform(AMD64), parse_platform(AMD64))
    assert caught.value.line == line
    assert caught.value.message.startswith(message)
    assert str(caught.value) == (caught.value.message if line is None
                                 else f"line {line}: {caught.value.message}")
    assert "\n" not in str(caught.value)


def test_a_read_from_a_later_stage_only_fails_when_that_stage_is_built():
    text = "FROM alpine AS a\nCOPY --from=b /x /x\nFROM busybox AS b\n"
    assert [p.reference for p in pulls(parse(text), {}, None, parse_platform(AMD64),
                                       parse_platform(AMD64))] == ["busybox"]


def test_an_onbuild_trigger_fails_only_in_a_stage_that_runs_it():
    text = "FROM alpine AS base\nONBUILD COPY onlyone\nFROM base\n"
    assert pulls(parse(text), {}, "base", parse_platform(AMD64), parse_platform(AMD64))
    with pytest.raises(DockerfileError) as caught:
        pulls(parse(text), {}, None, parse_platform(AMD64), parse_platform(AMD64))
    assert caught.value.line == 3


def test_a_text_is_parsed_once():
    text = "FROM alpine:3\n"
    assert parse(text) is parse(text)
