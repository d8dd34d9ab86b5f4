"""tasks.model.reference: tables ported from distribution/reference."""

import pytest
from multiarch.tasks.model.reference import (
    repository_name,
    split_domain,
    validate_digest,
    validate_registry,
    validate_tag,
)

SHA256 = "sha256:" + "f" * 64
SHA512 = "sha512:" + "f" * 128
LONG_NAMESPACE = "this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255"

# Ported from github.com/distribution/reference reference_test.go (TestReferenceParse),
# normalize_test.go (TestValidateReferenceName, TestValidateRemoteName) and
# TestDomainAndPath. Each Parse input is split into (name, tag, digest); domain is what
# split_domain (splitDockerDomain) says, not Parse's regexp capture, which differs for
# "a/a/.../a" and "foo/foo_bar.com" (Parse: "a" and "foo"; Docker: no domain).
VALID = [
    ("test_com", "", "", ""),
    ("test.com", "tag", "", ""),
    ("test.com", "5000", "", ""),
    ("test.com/repo", "tag", "", "test.com"),
    ("test:5000/repo", "", "", "test:5000"),
    ("test:5000/repo", "tag", "", "test:5000"),
    ("test:5000/repo", "", SHA256, "test:5000"),
    ("test:5000/repo", "tag", SHA256, "test:5000"),
    ("lowercase", "Uppercase", "", ""),
    ("a/" * 127 + "a", "tag-puts-this-over-max", "", ""),
    ("sub-dom1.foo.com/bar/baz/quux", "", "", "sub-dom1.foo.com"),
    ("sub-dom1.foo.com/bar/baz/quux", "some-long-tag", "", "sub-dom1.foo.com"),
    ("b.gcr.io/test.example.com/my-app", "test.example.com", "", "b.gcr.io"),
    ("xn--n3h.com/myimage", "xn--n3h.com", "", "xn--n3h.com"),
    ("xn--7o8h.com/myimage", "xn--7o8h.com", SHA512, "xn--7o8h.com"),
    ("foo_bar.com", "8080", "", ""),
    ("foo/foo_bar.com", "8080", "", ""),
    ("192.168.1.1", "", "", ""),
    ("192.168.1.1", "tag", "", ""),
    ("192.168.1.1", "5000", "", ""),
    ("192.168.1.1/repo", "", "", "192.168.1.1"),
    ("192.168.1.1:5000/repo", "", "", "192.168.1.1:5000"),
    ("192.168.1.1:5000/repo", "5050", "", "192.168.1.1:5000"),
    ("[2001:db8::1]/repo", "", "", "[2001:db8::1]"),
    ("[2001:db8:1:2:3:4:5:6]/repo", "tag", "", "[2001:db8:1:2:3:4:5:6]"),
    ("[2001:db8::1]:5000/repo", "", "", "[2001:db8::1]:5000"),
    ("[2001:db8::1]:5000/repo", "tag", "", "[2001:db8::1]:5000"),
    ("[2001:db8::1]:5000/repo", "", SHA256, "[2001:db8::1]:5000"),
    ("[2001:db8::1]:5000/repo", "tag", SHA256, "[2001:db8::1]:5000"),
    ("[2001:db8::]:5000/repo", "", "", "[2001:db8::]:5000"),
    ("[::1]:5000/repo", "", "", "[::1]:5000"),
    ("docker/docker", "", "", ""),
    ("index.docker.io/library/debian", "", "", "index.docker.io"),
    ("127.0.0.1:5000/docker/docker", "", "", "127.0.0.1:5000"),
    ("192.168.0.1:8/debian", "", "", "192.168.0.1:8"),
    ("[fc00:1:2:3:4:5:6:7]:5000/library/debian", "", "", "[fc00:1:2:3:4:5:6:7]:5000"),
    ("thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev", "", "", ""),
    ("docker.io/" + "1a3f5e7d9c1b3a5f" * 4, "", "", "docker.io"),
    ("Docker/docker", "", "", "Docker"),
    ("DOCKER/docker", "", "", "DOCKER"),
    ("docker---rules/docker", "", "", ""),
    ("dock__er/docker", "", "", ""),
    ("d/docker", "", "", ""),
    ("test-com:8080/foo", "", "", "test-com:8080"),
    ("xn--n3h.com:18080/foo", "", "", "xn--n3h.com:18080"),
]


@pytest.mark.parametrize(("name", "tag", "digest", "domain"), VALID)
def test_valid_references(name, tag, digest, domain):
    assert repository_name(name, None) == name
    assert split_domain(name)[0] == domain
    if tag:
        assert validate_tag(tag) == tag
    if digest:
        assert validate_digest(digest) == digest


@pytest.mark.parametrize(
    ("name", "tag", "digest", "domain"), [r for r in VALID if r[1] or r[2]]
)
def test_name_with_tag_or_digest_is_not_a_repository_name(name, tag, digest, domain):
    reference = name + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")
    with pytest.raises(ValueError, match="must not include a (tag|digest)"):
        repository_name(reference, None)


# The error rows of the same tables; messages are ours, so only the gist is checked.
INVALID_NAMES = [
    ("", "must not be empty"),
    (":justtag", "must not include a tag"),
    ("@" + SHA256, "must not include a digest"),
    ("repo@sha256:" + "f" * 34, "must not include a digest"),
    ("validname@invaliddigest:" + "f" * 64, "must not include a digest"),
    ("Uppercase", "repository name must be lowercase"),
    ("test:5000/Uppercase/lowercase", "repository name must be lowercase"),
    ("docker/Docker", "repository name must be lowercase"),
    ("docker.io/docker/Docker", "repository name must be lowercase"),
    ("a/" * 128 + "a", "repository name must not be more than 255 characters"),
    ("_".join([LONG_NAMESPACE] * 4) + "/docker", "more than 255 characters"),
    ("aa/asdf$$^/aa", "lowercase [a-z0-9] components"),
    ("[2001:db8::1]", "must not include a tag"),
    ("[2001:db8::1]:5000", "must not include a tag"),
    ("[fc00::1]:5000", "must not include a tag"),
    ("[fe80::1%eth0]:5000/repo", "a registry is"),
    ("[fe80::1%@invalidzone]:5000/repo", "must not include a digest"),
    ("[2001:db8:3:4::192.0.2.33]:5000/debian", "a registry is"),
    ("fc00::1:5000/debian", "a registry is"),
    ("https://github.com/docker/docker", "a registry is"),
    ("-docker.io/docker/docker", 'registry "-docker.io" is invalid'),
    ("-docker", "lowercase [a-z0-9] components"),
    ("-docker/docker", "lowercase [a-z0-9] components"),
    ("docker-/docker", "lowercase [a-z0-9] components"),
    ("docker///docker", "lowercase [a-z0-9] components"),
    ("docker.io/docker///docker", "lowercase [a-z0-9] components"),
    ("____/____", "lowercase [a-z0-9] components"),
    ("_docker/_docker", "lowercase [a-z0-9] components"),
    ("dock..er/docker", 'registry "dock..er" is invalid'),
    ("dock_.er/docker", 'registry "dock_.er" is invalid'),
    ("dock-.er/docker", 'registry "dock-.er" is invalid'),
    ("docker/", "lowercase [a-z0-9] components"),
    ("1a3f5e7d9c1b3a5f" * 4, "64-hex image ID"),
]


@pytest.mark.parametrize(("name", "message"), INVALID_NAMES)
def test_invalid_repository_names(name, message):
    with pytest.raises(ValueError, match="invalid repository name") as excinfo:
        repository_name(name, "localhost:5000")
    assert message in str(excinfo.value)


@pytest.mark.parametrize(
    ("name", "default_registry", "expected"),
    [
        ("demo", "localhost:5000", "localhost:5000/demo"),
        ("team/app", "registry.corp.example:443", "registry.corp.example:443/team/app"),
        ("team/app", "[::1]:5000", "[::1]:5000/team/app"),
        ("10.77.0.2:5000/team/app", "localhost:5000", "10.77.0.2:5000/team/app"),
        ("docker.io/library/busybox", "localhost:5000", "docker.io/library/busybox"),
        ("localhost/demo", "10.77.0.2:5000", "localhost/demo"),
        ("team/app", None, "team/app"),
        ("busybox", None, "busybox"),
        ("localhost", "localhost:5000", "localhost:5000/localhost"),
    ],
)
def test_repository_name_qualifies_with_default_registry(
    name, default_registry, expected
):
    assert repository_name(name, default_registry) == expected


def test_length_limit_counts_the_default_registry():
    name = "a" * 250
    assert repository_name(name, None) == name
    with pytest.raises(ValueError, match="more than 255 characters"):
        repository_name(name, "localhost:5000")


def test_invalid_default_registry_is_rejected():
    with pytest.raises(ValueError, match='invalid registry "https://r.example"'):
        repository_name("demo", "https://r.example")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("test.com/foo", ("test.com", "foo")),
        ("test_com/foo", ("", "test_com/foo")),
        ("test:8080/foo", ("test:8080", "foo")),
        ("test.com:8080/foo", ("test.com:8080", "foo")),
        ("localhost/foo", ("localhost", "foo")),
        ("Foo/bar", ("Foo", "bar")),
        ("docker/migrator", ("", "docker/migrator")),
        ("docker.io/foo", ("docker.io", "foo")),
        ("index.docker.io/foo", ("index.docker.io", "foo")),
        ("foo", ("", "foo")),
        ("localhost", ("", "localhost")),
        ("example.com", ("", "example.com")),
        ("foo:tag", ("", "foo:tag")),
        ("[::1]:5000/foo:tag", ("[::1]:5000", "foo:tag")),
    ],
)
def test_split_domain(name, expected):
    assert split_domain(name) == expected


@pytest.mark.parametrize(
    "tag",
    [
        "latest",
        "v1.2.3",
        "1.0-rc.1",
        "_x",
        "X",
        "A_b.C-d",
        "5000",
        "a" * 128,
        "v" + "-" * 127,
    ],
)
def test_valid_tags(tag):
    assert validate_tag(tag) == tag


@pytest.mark.parametrize(
    "tag",
    [
        "",
        "a" * 129,
        ".hidden",
        "-foo",
        "v1:2",
        "v1/2",
        "v1@x",
        "tâg",
        "v1\n",
        "\nv1",
        "ｖ1",
    ],
)
def test_invalid_tags(tag):
    with pytest.raises(ValueError, match="a tag is up to 128 characters of"):
        validate_tag(tag)


def test_tag_message_names_the_value():
    with pytest.raises(ValueError) as excinfo:
        validate_tag("v1;rm")
    assert str(excinfo.value) == (
        'invalid tag "v1;rm": a tag is up to 128 characters of [A-Za-z0-9_.-],'
        ' not starting with "." or "-"'
    )


SHELLISH = [
    "v1; rm -rf /",
    "$(id)",
    "`id`",
    "a\nb",
    "a b",
    "a|b",
    "a&&b",
    "a>b",
    "'a'",
    "a\tb",
]


@pytest.mark.parametrize("value", SHELLISH)
def test_shell_looking_values_are_rejected_everywhere(value):
    for check in (validate_tag, validate_registry, validate_digest):
        with pytest.raises(ValueError):
            check(value)
    with pytest.raises(ValueError):
        repository_name(value, None)
    with pytest.raises(ValueError):
        repository_name(f"team/{value}", "localhost:5000")


def test_messages_stay_on_one_line():
    with pytest.raises(ValueError) as excinfo:
        repository_name("demo\n; rm -rf /", None)
    assert "\n" not in str(excinfo.value)
    assert '"demo\\n; rm -rf /"' in str(excinfo.value)


@pytest.mark.parametrize(
    "host",
    [
        "localhost",
        "localhost:5000",
        "10.77.0.2:5000",
        "registry.corp.example:443",
        "[::1]:5000",
        "[2001:db8::1]",
        "docker.io",
        "xn--n3h.com:18080",
        "Registry.Example",
    ],
)
def test_valid_registries(host):
    assert validate_registry(host) == host


@pytest.mark.parametrize(
    "host",
    [
        "",
        "https://registry.example",
        "registry.example/path",
        "registry.example:",
        "registry.example:port",
        "-registry.example",
        "registry-.example",
        "registry..example",
        "::1",
        "[fe80::1%eth0]:5000",
        "registry.example:5000\n",
        "foo_bar.com",
    ],
)
def test_invalid_registries(host):
    with pytest.raises(ValueError, match="without scheme or path"):
        validate_registry(host)


@pytest.mark.parametrize(
    ("digest", "valid"),
    [
        (SHA256, True),
        (SHA512, True),
        ("sha256:" + "F" * 32, True),
        ("sha256+b64u.v2:" + "0" * 32, True),
        ("sha256:" + "f" * 31, False),
        ("sha256:" + "g" * 64, False),
        ("256:" + "f" * 64, False),
        ("foo", False),
        (SHA256 + "\n", False),
    ],
)
def test_digests(digest, valid):
    if valid:
        assert validate_digest(digest) == digest
    else:
        with pytest.raises(ValueError, match='a digest is "algorithm:hex"'):
            validate_digest(digest)
