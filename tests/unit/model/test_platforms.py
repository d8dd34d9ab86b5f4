"""tasks.model.platforms: containerd's specifier table, tag suffixes, errors, duplicates."""

import pytest
from multiarch.tasks.model.platforms import DEFAULT_OS, Platform, parse_platform, parse_platforms

# Ported from TestParseSelector and TestParseSelectorInvalid in platforms_test.go of
# github.com/containerd/platforms (containerd/containerd 1.7 has the same non-Windows
# rows in platforms/platforms_test.go). Expected values are Normalize(Parse(input)):
# "linux/arm" carries v7, "linux/arm64/v8" drops it, and a bare architecture gets
# DEFAULT_OS where containerd uses the host's OS. Rows: input, expected, and the other
# spellings containerd's matcher accepts for the same platform.
CONTAINERD_TABLE = [
    (
        "linux/arm64",
        Platform("linux", "arm64"),
        ["linux/aarch64", "linux/aarch64/v8", "linux/arm64/v8"],
    ),
    (
        "linux/arm64/v8",
        Platform("linux", "arm64"),
        ["linux/aarch64", "linux/aarch64/v8", "linux/arm64"],
    ),
    (
        "linux/arm",
        Platform("linux", "arm", "v7"),
        ["linux/arm/v7", "linux/armhf", "linux/arm/7"],
    ),
    ("linux/arm/v6", Platform("linux", "arm", "v6"), ["linux/armel"]),
    ("linux/arm/v7", Platform("linux", "arm", "v7"), ["linux/arm", "linux/armhf"]),
    ("arm", Platform(DEFAULT_OS, "arm", "v7"), []),
    ("armel", Platform(DEFAULT_OS, "arm", "v6"), []),
    ("armhf", Platform(DEFAULT_OS, "arm", "v7"), []),
    ("Aarch64", Platform(DEFAULT_OS, "arm64"), []),
    ("x86_64", Platform(DEFAULT_OS, "amd64"), []),
    ("Linux/x86_64", Platform("linux", "amd64"), []),
    ("i386", Platform(DEFAULT_OS, "386"), []),
    ("s390x", Platform(DEFAULT_OS, "s390x"), []),
    ("linux/s390x", Platform("linux", "s390x"), []),
]

# The rest of database.go's normalizeOS / normalizeArch that the table doesn't reach.
NORMALIZE_TABLE = [
    ("macos/arm64", Platform("darwin", "arm64")),
    ("MacOS/AMD64", Platform("darwin", "amd64")),
    ("windows/amd64", Platform("windows", "amd64")),
    ("freebsd/arm64", Platform("freebsd", "arm64")),
    ("linux/x86-64", Platform("linux", "amd64")),
    ("linux/amd64/v1", Platform("linux", "amd64")),
    ("linux/x86_64/V1", Platform("linux", "amd64")),
    ("linux/amd64/v2", Platform("linux", "amd64", "v2")),
    ("linux/amd64/v3", Platform("linux", "amd64", "v3")),
    ("linux/x86_64/V4", Platform("linux", "amd64", "v4")),
    ("linux/aarch64/8", Platform("linux", "arm64")),
    ("linux/arm64/v8.2", Platform("linux", "arm64", "v8.2")),
    ("linux/arm/5", Platform("linux", "arm", "v5")),
    ("linux/arm/v5", Platform("linux", "arm", "v5")),
    ("linux/arm/6", Platform("linux", "arm", "v6")),
    ("linux/arm/7", Platform("linux", "arm", "v7")),
    ("linux/arm/8", Platform("linux", "arm", "v8")),
    ("linux/armhf/v6", Platform("linux", "arm", "v7")),  # armhf always means v7
    ("linux/i386", Platform("linux", "386")),
    ("linux/386", Platform("linux", "386")),
    ("linux/ppc64le", Platform("linux", "ppc64le")),
    ("linux/riscv64", Platform("linux", "riscv64")),
    ("linux/riscv64/rva22u64", Platform("linux", "riscv64", "rva22u64")),
    # What `uname -m` prints on LoongArch, taken as Go's and OCI's loong64 (as aarch64 is arm64).
    ("linux/loongarch64", Platform("linux", "loong64")),
    ("linux/LoongArch64", Platform("linux", "loong64")),
    ("linux/loong64", Platform("linux", "loong64")),
    # containerd reads two parts whose first is no OS as architecture/variant.
    ("arm64/v8", Platform("linux", "arm64")),
    ("aarch64/v8", Platform("linux", "arm64")),
    ("arm/v6", Platform("linux", "arm", "v6")),
]

PARSED = [(text, expected) for text, expected, _ in CONTAINERD_TABLE] + NORMALIZE_TABLE


@pytest.mark.parametrize(("text", "expected"), PARSED)
def test_parse_platform(text, expected):
    assert parse_platform(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [(other, expected) for _, expected, others in CONTAINERD_TABLE for other in others],
)
def test_other_spellings_parse_alike(text, expected):
    assert parse_platform(text) == expected


@pytest.mark.parametrize("text", [text for text, _ in PARSED])
def test_round_trip(text):
    platform = parse_platform(text)
    assert parse_platform(str(platform)) == platform


@pytest.mark.parametrize(
    ("text", "written"),
    [
        ("linux/amd64", "linux/amd64"),
        ("linux/arm64/v8", "linux/arm64"),
        ("armhf", "linux/arm/v7"),
        ("linux/amd64/v3", "linux/amd64/v3"),
    ],
)
def test_str_is_dockers_written_form(text, written):
    assert str(parse_platform(text)) == written


@pytest.mark.parametrize(
    ("text", "suffix"),
    [
        ("linux/amd64", "amd64"),
        ("linux/arm64", "arm64"),
        ("linux/arm/v7", "armv7"),
        ("linux/arm/v6", "armv6"),
        ("linux/ppc64le", "ppc64le"),
        ("linux/s390x", "s390x"),
        ("linux/386", "386"),
        ("linux/riscv64", "riscv64"),
    ],
)
def test_suffix(text, suffix):
    assert parse_platform(text).suffix == suffix


@pytest.mark.parametrize(
    ("text", "fields"),
    [
        ("linux/amd64", {"architecture": "amd64", "os": "linux"}),
        ("linux/arm", {"architecture": "arm", "os": "linux", "variant": "v7"}),
    ],
)
def test_to_oci(text, fields):
    assert parse_platform(text).to_oci() == fields


def test_platforms_are_hashable_and_ordered():
    platforms = [
        parse_platform(t) for t in ("linux/arm/v7", "linux/amd64", "linux/arm/v6")
    ]
    assert sorted(platforms) == [
        Platform("linux", "amd64"),
        Platform("linux", "arm", "v6"),
        Platform("linux", "arm", "v7"),
    ]
    assert len({*platforms, parse_platform("linux/armhf")}) == 3


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        # TestParseSelectorInvalid
        ("", "empty component"),
        ("/linux/arm", "empty component"),
        ("linux/arm/", "empty component"),
        ("linux /arm", '"linux " may only contain letters, digits'),
        ("linux/&arm", '"&arm" may only contain letters, digits'),
        ("linux/arm/foo/bar", "expected os/arch[/variant]"),
        # TestParseSelector rows containerd skips: wildcards aren't supported
        ("*", '"*" may only contain'),
        ("linux/*", '"*" may only contain'),
        ("*/arm64", '"*" may only contain'),
        # TestParseSelector rows we refuse: an OS alone takes the host's architecture
        ("linux", "an operating system alone names no architecture"),
        ("macOS", "an operating system alone names no architecture"),
        ("windows", "an operating system alone names no architecture"),
        # OS options (newer containerd): 1.7 rejects them, and Platform has no field
        ("linux(+gpu)", "may only contain"),
        ("windows(10.0.17763)/amd64", "may only contain"),
        # Stricter than containerd: names must be in database.go's lists
        ("linux/foo", 'unknown architecture "foo" (known: 386, amd64,'),
        ("foo", 'unknown architecture "foo"'),
        ("linux/Foo/v7", 'unknown architecture "Foo"'),
        ("foo/amd64", 'unknown operating system "foo" (known: aix,'),
        ("linux//v7", "empty component"),
        ("linux/arm/v7 ", '"v7 " may only contain'),
        ("linux/amd64\n", "may only contain"),
        ("linux/amd64/v2/x/y", "got 5 components"),
    ],
)
def test_parse_platform_rejects(text, reason):
    with pytest.raises(ValueError) as excinfo:
        parse_platform(text)
    message = str(excinfo.value)
    assert message.startswith(f'"{text}" is not a valid platform: ')
    assert reason in message


def test_unknown_names_list_what_is_allowed():
    with pytest.raises(ValueError) as excinfo:
        parse_platform("linux/amd46")
    assert all(
        arch in str(excinfo.value) for arch in ("amd64", "arm64", "riscv64", "s390x")
    )
    with pytest.raises(ValueError) as excinfo:
        parse_platform("lnux/amd64")
    assert all(os in str(excinfo.value) for os in ("linux", "windows", "darwin"))


def test_parse_platforms_keeps_order():
    items = ["linux/arm/v7", "linux/amd64", "linux/amd64/v2", "linux/arm/v6"]
    assert parse_platforms(items) == (
        Platform("linux", "arm", "v7"),
        Platform("linux", "amd64"),
        Platform("linux", "amd64", "v2"),
        Platform("linux", "arm", "v6"),
    )


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (
            ["linux/arm64", "linux/aarch64"],
            'duplicate platform "linux/aarch64" (same as "linux/arm64")',
        ),
        (
            ["linux/amd64", "linux/amd64"],
            'duplicate platform "linux/amd64" (same as "linux/amd64")',
        ),
        (
            ["linux/arm", "linux/s390x", "linux/arm/v7"],
            'duplicate platform "linux/arm/v7" (same as "linux/arm")',
        ),
        (
            ["amd64", "Linux/x86_64/v1"],
            'duplicate platform "Linux/x86_64/v1" (same as "amd64")',
        ),
        (
            ["linux/arm64/v8", "arm64"],
            'duplicate platform "arm64" (same as "linux/arm64/v8")',
        ),
    ],
)
def test_parse_platforms_rejects_duplicates(items, message):
    with pytest.raises(ValueError) as excinfo:
        parse_platforms(items)
    assert str(excinfo.value) == message


def test_parse_platforms_reports_the_bad_item():
    with pytest.raises(ValueError, match='"linux/foo" is not a valid platform'):
        parse_platforms(["linux/amd64", "linux/foo"])
