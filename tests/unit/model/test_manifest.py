"""tasks.model.manifest: defaults, normalisation, one ManifestError line per bad manifest."""

import copy
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from multiarch.tasks.model.errors import ManifestError
from multiarch.tasks.model.manifest import TOP_KEYS, Image, load_manifest, parse_manifest
from multiarch.tasks.model.platforms import Platform
from multiarch.tasks.model.reference import validate_tag

TOP_ALLOWED = ", ".join(sorted(TOP_KEYS))

FILE = "multiarch.yaml"
AMD64 = Platform("linux", "amd64")
ARM64 = Platform("linux", "arm64")
ARMV7 = Platform("linux", "arm", "v7")
PPC64LE = Platform("linux", "ppc64le")
VALID = {
    "version": 1,
    "registry": "localhost:5000",
    "platforms": ["linux/amd64", "linux/arm64"],
    "images": {"app": {"context": "app"}},
}
DROP = object()


def patched(changes: dict) -> dict:
    """VALID with each dotted key set to its value, or removed for DROP."""
    document = copy.deepcopy(VALID)
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        table = document
        for part in parents:
            table = table[part]
        if value is DROP:
            table.pop(last, None)
        else:
            table[last] = value
    return document


def image(**fields) -> dict:
    """VALID with images.app given these fields besides its context."""
    return patched({"images.app": {"context": "app", **fields}})


def make_context(folder: Path, dockerfile: str = "Dockerfile") -> Path:
    (folder / dockerfile).parent.mkdir(parents=True, exist_ok=True)
    (folder / dockerfile).write_text("FROM scratch\n")
    return folder


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """tmp_path with an `app` context, as the cwd, so errors name plain `multiarch.yaml`."""
    make_context(tmp_path / "app")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def load(document: dict | str):
    text = document if isinstance(document, str) else yaml.safe_dump(document, sort_keys=False)
    Path(FILE).write_text(text)
    return load_manifest(FILE)


def error(document: dict | str, file: str = FILE) -> str:
    with pytest.raises(ManifestError) as info:
        load(document) if file == FILE else load_manifest(file)
    text = str(info.value)
    assert len(text.splitlines()) == 1, text
    return text


# --- the model -------------------------------------------------------------------------------


def test_defaults_are_applied(project):
    manifest = load(VALID)
    assert manifest.path == project / FILE
    assert manifest.registry == "localhost:5000"
    assert manifest.platforms == (AMD64, ARM64)
    assert manifest.state_dir == project / ".multiarch"
    assert manifest.images == (
        Image(
            name="app",
            context=project / "app",
            dockerfile=project / "app" / "Dockerfile",
            repository="localhost:5000/app",
            tags=("latest",),
            platforms=(AMD64, ARM64),
            build_args=(),
            target=None,
            pull=True,
            pulls=((AMD64, ()), (ARM64, ())),  # FROM scratch pulls nothing
        ),
    )
    assert manifest.image("app") is manifest.images[0]


def test_every_field_is_read(project):
    make_context(project / "app", "build/Containerfile")
    (project / "app" / "build" / "Containerfile").write_text("FROM scratch AS runtime\n")
    got = load(
        image(
            dockerfile="build/Containerfile",
            repository="team/app",
            tags=["v1", "1.0"],
            platforms=["linux/arm/v7"],
            build_args={"BASE": "alpine"},
            target="runtime",
            pull=False,
        )
    ).image("app")
    assert got == Image(
        "app",
        project / "app",
        project / "app" / "build" / "Containerfile",
        "localhost:5000/team/app",
        ("v1", "1.0"),
        (ARMV7,),
        (("BASE", "alpine"),),
        "runtime",
        False,
        pulls=((ARMV7, ()),),
    )


def test_images_keep_their_order_and_platform_overrides(project):
    make_context(project / "b")
    document = patched({"images.b": {"context": "b", "platforms": ["linux/ppc64le"]}})
    manifest = load(document)
    assert [i.name for i in manifest.images] == ["app", "b"]
    assert manifest.image("app").platforms == (AMD64, ARM64)
    assert manifest.image("b").platforms == (PPC64LE,)


@pytest.mark.parametrize(
    "registry, repository, expected",
    [
        ("localhost:5000", "team/app", "localhost:5000/team/app"),
        ("localhost:5000", "10.77.0.2:5000/team/app", "10.77.0.2:5000/team/app"),
        ("localhost:5000", "localhost/app", "localhost/app"),
        ("localhost:5000", "ghcr.io/org/app", "ghcr.io/org/app"),
        ("[::1]:5000", "app", "[::1]:5000/app"),
        (DROP, "team/app", "team/app"),
        (DROP, DROP, "app"),
    ],
)
def test_repository_gets_the_registry_unless_it_names_a_domain(
    project, registry, repository, expected
):
    document = patched({"registry": registry, "images.app.repository": repository})
    assert load(document).image("app").repository == expected


def test_retries_default_to_3_top_level_sets_them_an_image_overrides(project):
    make_context(project / "b")
    assert load(VALID).retries == 3
    assert load(VALID).image("app").retries == 3
    manifest = load(patched({"retries": 5, "images.b": {"context": "b", "retries": 0}}))
    assert manifest.retries == 5
    assert manifest.image("app").retries == 5
    assert manifest.image("b").retries == 0


def test_build_args_are_stringified_in_order(project):
    args = {"N": 3, "ON": True, "OFF": False, "RATIO": 1.5, "NAME": "x", "EMPTY": ""}
    got = load(image(build_args=args)).image("app").build_args
    assert got == (
        ("N", "3"),
        ("ON", "true"),
        ("OFF", "false"),
        ("RATIO", "1.5"),
        ("NAME", "x"),
        ("EMPTY", ""),
    )


@pytest.mark.parametrize(
    "spelling, platform",
    [
        ("linux/aarch64", ARM64),
        ("linux/arm64/v8", ARM64),
        ("arm64/v8", ARM64),
        ("x86_64", AMD64),
        ("linux/x86_64", AMD64),
        ("armhf", ARMV7),
        ("linux/arm", ARMV7),
    ],
)
def test_platforms_are_normalised(project, spelling, platform):
    manifest = load(patched({"platforms": [spelling], "images.app.platforms": [spelling]}))
    assert manifest.platforms == (platform,)
    assert manifest.image("app").platforms == (platform,)


@pytest.mark.parametrize(
    "key, value, field, expected",
    [
        ("platforms", "linux/arm64", "platforms", (ARM64,)),
        ("images.app.platforms", "armhf", "platforms", (ARMV7,)),
        ("images.app.tags", "v1", "tags", ("v1",)),
    ],
)
def test_a_single_string_is_a_one_item_list(project, key, value, field, expected):
    assert getattr(load(patched({key: value})).image("app"), field) == expected


def test_contexts_resolve_against_the_manifest_folder_not_the_cwd(tmp_path, monkeypatch):
    folder = tmp_path / "project"
    make_context(folder / "app")
    (folder / FILE).write_text(yaml.safe_dump(VALID))
    (tmp_path / "elsewhere" / "app").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "elsewhere")
    for path in (folder / FILE, f"../project/{FILE}"):
        manifest = load_manifest(path)
        assert manifest.path == folder / FILE
        assert manifest.image("app").context == folder / "app"
        assert manifest.image("app").dockerfile == folder / "app" / "Dockerfile"


def test_per_platform_tags_and_refs(project):
    platforms = ["linux/amd64", "linux/arm64", "linux/arm/v7", "linux/ppc64le"]
    app = load(image(tags=["v1", "latest"], platforms=platforms)).image("app")
    suffixes = {AMD64: "amd64", ARM64: "arm64", ARMV7: "armv7", PPC64LE: "ppc64le"}
    assert app.platforms == tuple(suffixes)
    for platform, suffix in suffixes.items():
        assert app.platform_tags(platform) == (f"v1-{suffix}", f"latest-{suffix}")
        assert app.platform_refs(platform) == (
            f"localhost:5000/app:v1-{suffix}",
            f"localhost:5000/app:latest-{suffix}",
        )
    assert app.refs == ("localhost:5000/app:v1", "localhost:5000/app:latest")


@pytest.mark.parametrize(
    "platforms, longest",
    [(["linux/amd64", "linux/arm64"], 122), (["linux/amd64", "linux/ppc64le"], 120)],
)
def test_the_longest_tag_leaves_room_for_the_longest_suffix(project, platforms, longest):
    fits = "t" * longest
    app = load(image(tags=[fits], platforms=platforms)).image("app")
    assert max(len(tag) for p in app.platforms for tag in app.platform_tags(p)) == 128
    assert all(tag == f"{fits}-{p.suffix}" for p in app.platforms for tag in app.platform_tags(p))


def test_a_128_character_tag_gets_short_distinct_per_platform_tags(project):
    one, two = "t" * 127 + "1", "t" * 127 + "2"
    app = load(image(tags=[one, two], platforms=["linux/amd64", "linux/ppc64le"])).image("app")
    children = [tag for p in app.platforms for tag in app.platform_tags(p)]
    assert len(set(children)) == 4
    for p in app.platforms:
        for tag in app.platform_tags(p):
            assert len(tag) == 128 and tag.startswith("t" * 100) and tag.endswith(f"-{p.suffix}")
            validate_tag(tag)


# --- one line per mistake --------------------------------------------------------------------

# fmt: off
TAG_RULE = 'a tag is up to 128 characters of [A-Za-z0-9_.-], not starting with "." or "-"'
BAD = [
    # (changes to VALID, key, the message or its start)
    ({"platfroms": ["linux/amd64"]}, "platfroms",
     "unknown key 'platfroms'; did you mean 'platforms'?"
     f" (allowed: {TOP_ALLOWED})"),
    ({"zzz": 1}, "zzz", f"unknown key 'zzz' (allowed: {TOP_ALLOWED})"),
    ({"images.app.dockerfle": "D"}, "images.app.dockerfle",
     "unknown key 'dockerfle'; did you mean 'dockerfile'?"),
    ({"version": DROP}, "version", "missing; write `version: 1`"),
    ({"version": 2}, "version", "unsupported version 2; allowed: 1"),
    ({"version": "1"}, "version", "unsupported version '1'; allowed: 1"),
    ({"version": True}, "version", "unsupported version True; allowed: 1"),
    ({"version": 1.0}, "version", "unsupported version 1.0; allowed: 1"),
    ({"images": DROP}, "images", "no images; add at least one under `images:`"),
    ({"images": {}}, "images", "no images; add at least one under `images:`"),
    ({"images": None}, "images", "no images; add at least one under `images:`"),
    ({"images": [{"context": "app"}]}, "images", "expected a mapping, got a list"),
    ({"images": {1: {"context": "app"}}}, "images", "keys must be strings, got 1"),
    ({"images.app": None}, "images.app", "expected a mapping, got nothing"),
    ({"images.app": ["app"]}, "images.app", "expected a mapping, got a list"),
    ({"images": {"-app": {"context": "app"}}}, "images.-app", "an image name is letters"),
    ({"images.app.context": DROP}, "images.app.context", "missing"),
    ({"images.app.context": "nope"}, "images.app.context", "no such directory: "),
    ({"images.app.context": "app/Dockerfile"}, "images.app.context", "no such directory: "),
    ({"images.app.context": ""}, "images.app.context",
     "expected a non-empty string, got an empty one"),
    ({"images.app.context": 7}, "images.app.context", "expected a non-empty string, got a number"),
    ({"images.app.dockerfile": "Containerfile"}, "images.app.dockerfile", "no such file: "),
    ({"images.app.dockerfile": "."}, "images.app.dockerfile", "no such file: "),
    ({"images.app.repository": "team/App"}, "images.app.repository",
     'invalid repository name "team/App": a repository name must be lowercase'),
    ({"images.app.repository": "team/app:v1"}, "images.app.repository",
     'invalid repository name "team/app:v1": a repository name must not include a tag'),
    ({"images": {"App": {"context": "app"}}}, "images.App.repository",
     'invalid repository name "App": a repository name must be lowercase'),
    ({"registry": "https://x"}, "registry", 'invalid registry "https://x": a registry is'),
    ({"registry": "x/y"}, "registry", 'invalid registry "x/y": a registry is'),
    ({"registry": 5000}, "registry", "expected a non-empty string, got a number"),
    ({"images.app.tags": {"v1": None}}, "images.app.tags",
     "expected a list of strings, got a mapping"),
    ({"images.app.tags": ["v1", 1.10]}, "images.app.tags[1]",
     "expected a string, got a number; quote it"),
    ({"images.app.tags": [None]}, "images.app.tags[0]", "expected a string, got nothing"),
    ({"images.app.tags": ["v1;rm -rf /"]}, "images.app.tags[0]",
     f'invalid tag "v1;rm -rf /": {TAG_RULE}'),
    ({"images.app.tags": ["v1", "$(id)"]}, "images.app.tags[1]",
     f'invalid tag "$(id)": {TAG_RULE}'),
    ({"images.app.tags": ["-v1"]}, "images.app.tags[0]", f'invalid tag "-v1": {TAG_RULE}'),
    ({"images.app.tags": ["v1", "v2", "v1"]}, "images.app.tags[2]", "duplicate tag 'v1'"),
    ({"images.app.tags": ["t" * 129]}, "images.app.tags[0]",
     f'invalid tag "{"t" * 129}": {TAG_RULE}'),
    ({"images.app.tags": []}, "images.app.tags", "no tags; leave `tags` out for [latest]"),
    ({"platforms": ["linux/sparc128"]}, "platforms",
     '"linux/sparc128" is not a valid platform: unknown architecture "sparc128"'),
    ({"images.app.platforms": ["linux/amd64", "linux"]}, "images.app.platforms",
     '"linux" is not a valid platform: an operating system alone names no architecture'),
    ({"images.app.platforms": ["linux/arm64", "linux/aarch64"]}, "images.app.platforms",
     'duplicate platform "linux/aarch64" (same as "linux/arm64")'),
    ({"platforms": ["linux/arm64", "arm64/v8"]}, "platforms",
     'duplicate platform "arm64/v8" (same as "linux/arm64")'),
    ({"images.app.platforms": []}, "images.app.platforms",
     "no platforms; set `platforms:` here or at the top level"),
    ({"platforms": DROP}, "images.app.platforms",
     "no platforms; set `platforms:` here or at the top level"),
    ({"platforms": {"linux": "amd64"}}, "platforms", "expected a list of strings, got a mapping"),
    ({"images.app.platforms": [64]}, "images.app.platforms[0]",
     "expected a string, got a number; quote it"),
    ({"images.app.build_args": ["A=1"]}, "images.app.build_args",
     "expected a mapping, got a list"),
    ({"images.app.build_args": {"1A": "x"}}, "images.app.build_args.1A",
     "a build arg name is letters, digits and '_'"),
    ({"images.app.build_args": {"A-B": "x"}}, "images.app.build_args.A-B",
     "a build arg name is letters, digits and '_'"),
    ({"images.app.build_args": {"A": [1]}}, "images.app.build_args.A",
     "expected a string, got a list"),
    ({"images.app.build_args": {"A": None}}, "images.app.build_args.A",
     "expected a string, got nothing"),
    ({"images.app.build_args": {1: "x"}}, "images.app.build_args", "keys must be strings, got 1"),
    ({"images.app.target": "-stage"}, "images.app.target",
     "invalid stage name '-stage': letters, digits, '_', '.', '-'"),
    ({"images.app.target": "a b"}, "images.app.target", "invalid stage name 'a b'"),
    ({"images.app.target": ["a"]}, "images.app.target",
     "expected a non-empty string, got a list"),
    ({"images.app.pull": "yes"}, "images.app.pull", "expected true or false, got a str"),
    ({"images.app.pull": None}, "images.app.pull", "expected true or false, got nothing"),
    ({"images.app.pull": 1}, "images.app.pull", "expected true or false, got a number"),
    ({"retries": -1}, "retries", "expected a whole number from 0 to 10, got -1"),
    ({"retries": 11}, "retries", "expected a whole number from 0 to 10, got 11"),
    ({"retries": "3"}, "retries", "expected a whole number from 0 to 10, got a str"),
    ({"retries": True}, "retries", "expected a whole number from 0 to 10, got a boolean"),
    ({"retries": 2.5}, "retries", "expected a whole number from 0 to 10, got a number"),
    ({"images.app.retries": 99}, "images.app.retries",
     "expected a whole number from 0 to 10, got 99"),
    ({"images.app.retries": None}, "images.app.retries",
     "expected a whole number from 0 to 10, got nothing"),
    ({"images.app.retires": 2}, "images.app.retires",
     "unknown key 'retires'; did you mean 'retries'?"),
    # User text with a line break is escaped, so the error stays on one line.
    ({"images": {"a\nb": {"context": "app"}}}, "images.a\\nb", "an image name is letters"),
    ({"images.app.x\ny": 1}, "images.app.x\\ny", "unknown key 'x\\ny'"),
    ({"images.app.build_args": {"A\nB": "x"}}, "images.app.build_args.A\\nB",
     "a build arg name is letters"),
    ({"images.app.platforms": ["linux/amd64\n"]}, "images.app.platforms",
     '"linux/amd64\\n" is not a valid platform'),
    ({"images.app.context": "ap\np"}, "images.app.context", "no such directory: "),
    ({"images.app.dockerfile": "Docker\u2028file"}, "images.app.dockerfile", "no such file: "),
    ({"images.app.context": "x" * 300}, "images.app.context", "no such directory: "),
    ({"images.app.dockerfile": "x" * 300}, "images.app.dockerfile", "no such file: "),
]
# fmt: on


@pytest.mark.parametrize("changes, key, message", BAD, ids=[row[1] for row in BAD])
def test_bad_input_is_one_line_naming_file_and_key(project, changes, key, message):
    text = error(patched(changes))
    assert text.startswith(f"{FILE}: {key}: {message}")


@pytest.mark.parametrize("field", ["context", "dockerfile"])
def test_missing_paths_are_shown_resolved(project, field):
    value = {"context": "nope", "dockerfile": "nope"}[field]
    folder = project if field == "context" else project / "app"
    kind = "directory" if field == "context" else "file"
    expected = f"{FILE}: images.app.{field}: no such {kind}: {folder / 'nope'}"
    assert error(patched({f"images.app.{field}": value})) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("", "expected a mapping, got nothing"),
        ("- version: 1\n", "expected a mapping, got a list"),
        ("{1: 2}\n", "keys must be strings, got 1"),
        (
            "version: 1\nimages: [\n",
            "invalid YAML at line 3, column 1: expected the node content, but found '<stream end>'",
        ),
        (
            "version: 1\n\tplatforms: []\n",
            "invalid YAML at line 2, column 1: found character '\\t' that cannot start any token",
        ),
        ("version: 1\nimages: {a: 1\n", "invalid YAML at line 3, column 1:"),
        ("version: 1\nimages: " + "[" * 600 + "]" * 600 + "\n", "invalid YAML: nested too deeply"),
    ],
    ids=["empty", "list", "int-key", "unclosed", "tab", "unclosed-flow", "deep"],
)
def test_documents_that_are_no_manifest(project, text, expected):
    assert error(text).startswith(f"{FILE}: {expected}")


def test_unreadable_files(project):
    assert error("", "missing.yaml") == ("missing.yaml: cannot read: No such file or directory;"
                                         " `multiarch init` writes a first one")
    assert error("", str(project)) == f"{project}: cannot read: Is a directory"
    Path("latin1.yaml").write_bytes(b"version: 1\n# caf\xe9\n")
    assert error("", "latin1.yaml").startswith("latin1.yaml: cannot read: not UTF-8")


# --- nothing but ManifestError escapes -------------------------------------------------------

RICH = image(
    dockerfile="Dockerfile",
    repository="team/app",
    tags=["v1", "latest"],
    platforms=["linux/amd64", "linux/arm/v7"],
    build_args={"BASE": "alpine"},
    target="runtime",
    pull=True,
)
# fmt: off
FUZZ_KEYS = [
    "version", "registry", "platforms", "images", "images.app",
    *(f"images.app.{key}" for key in RICH["images"]["app"]),
    "images.app.build_args.BASE", "images.app.tags.0", "images.app.platforms.1",
]
FUZZ_VALUES = [None, 0, 1, -1, 1.5, True, False, "", "x", "1", [], [None], ["x"], {}, {"x": 1},
               {1: None}, "a\nb", "x" * 300, DROP]
# fmt: on


def mutated(dotted: str, value) -> dict:
    document = copy.deepcopy(RICH)
    *parents, last = dotted.split(".")
    table = document
    for part in parents:
        table = table[int(part)] if isinstance(table, list) else table[part]
    if isinstance(table, list):
        table[int(last)] = value if value is not DROP else table[int(last)]
    elif value is DROP:
        del table[last]
    else:
        table[last] = value
    return document


@pytest.mark.parametrize("dotted", FUZZ_KEYS)
def test_swapped_values_fail_as_one_line_or_load(project, dotted):
    failures = 0
    for value in FUZZ_VALUES:
        try:
            load(mutated(dotted, value))
        except ManifestError as err:
            failures += 1
            assert str(err).startswith(f"{FILE}: "), str(err)
            assert len(str(err).splitlines()) == 1, str(err)
    assert failures, "no value was rejected: the mutation missed"


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return make_context(tmp_path_factory.mktemp("fuzz") / "app").parent


LEAVES = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
VALUES = st.recursive(
    LEAVES,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dotted=st.sampled_from(FUZZ_KEYS[:-3]), value=VALUES | st.sampled_from(FUZZ_VALUES[:-1]))
def test_any_value_anywhere_fails_as_one_line_or_parses(folder, dotted, value):
    try:
        parse_manifest(mutated(dotted, value), folder / FILE, FILE)
    except ManifestError as err:
        assert str(err).startswith(f"{FILE}: ")
        assert len(str(err).splitlines()) == 1, str(err)
