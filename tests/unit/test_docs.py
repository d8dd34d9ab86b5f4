"""The docs' YAML examples load as manifests (or fail as they say), and their links resolve.

Every ```yaml block of README.md and docs/*.md is loaded with ``load_manifest``: a whole
manifest (it has ``version:``) as it is written, a fragment merged into a minimal manifest,
at the top level or into an image by its keys. A block whose first line is ``# error: ...``
must fail with a ManifestError saying that text.
"""

import copy
import re
import textwrap
from pathlib import Path

import pytest
import yaml
from multiarch.tasks.model.errors import ManifestError
from multiarch.tasks.model.manifest import IMAGE_KEYS, TOP_KEYS, load_manifest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^[ \t]*```(\w*)[ \t]*\n(.*?)^[ \t]*```[ \t]*$", re.M | re.S)
ERROR = re.compile(r"#\s*error:(.*)")
MINIMAL = {
    "version": 1,
    "registry": "localhost:5000",
    "platforms": ["linux/amd64"],
    "images": {"app": {"context": "app"}},
}
TOP_ONLY = TOP_KEYS - IMAGE_KEYS


def yaml_blocks():
    """(page, index among its yaml blocks, line, text) for every ```yaml block."""
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        blocks = (match for match in FENCE.finditer(text) if match.group(1) == "yaml")
        for index, match in enumerate(blocks, 1):
            line = text.count("\n", 0, match.start()) + 1
            yield page.relative_to(ROOT).as_posix(), index, line, textwrap.dedent(match.group(2))


BLOCKS = list(yaml_blocks())


def as_manifest(document) -> dict:
    """A whole manifest as it is; a fragment where its keys belong in MINIMAL."""
    if isinstance(document, dict) and "version" in document:
        return document
    assert isinstance(document, dict), "a YAML example is a mapping"
    manifest = copy.deepcopy(MINIMAL)
    keys = set(document)
    if keys & TOP_ONLY or keys <= TOP_KEYS:
        images = {**manifest["images"], **(document.get("images") or {})}
        manifest.update(document)
        manifest["images"] = images
    else:
        manifest["images"]["app"].update(document)
    return manifest


def touch(path: Path, text: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_text(text)


def make_files(folder: Path, manifest: dict) -> None:
    """The contexts, Dockerfiles, secret files, CAs and node certificates the manifest
    names."""
    images = manifest.get("images")
    for image in (images or {}).values() if isinstance(images, dict) else ():
        if not isinstance(image, dict) or not isinstance(image.get("context"), str):
            continue
        context = folder / image["context"]
        context.mkdir(parents=True, exist_ok=True)
        target = image.get("target")
        stage = f" AS {target}" if isinstance(target, str) else ""
        dockerfiles = [image.get("dockerfile", "Dockerfile")]
        if isinstance(image.get("dockerfiles"), dict):
            dockerfiles += image["dockerfiles"].values()
        for name in dockerfiles:
            if isinstance(name, str):
                touch(context / name, f"FROM scratch{stage}\n")
        if isinstance(image.get("secrets"), dict):
            for name in image["secrets"].values():
                if isinstance(name, str):
                    touch(folder / name, "not a real secret\n")
    registries = manifest.get("registries")
    for entry in registries.values() if isinstance(registries, dict) else ():
        if isinstance(entry, dict) and isinstance(entry.get("ca"), str):
            touch(folder / entry["ca"], "-----BEGIN CERTIFICATE-----\n")
    builders = manifest.get("builders")
    for entry in builders.values() if isinstance(builders, dict) else ():
        tls = entry.get("tls") if isinstance(entry, dict) else None
        for name in tls.values() if isinstance(tls, dict) else ():
            if isinstance(name, str):
                touch(folder / name, "-----BEGIN CERTIFICATE-----\n")


@pytest.mark.parametrize(
    ("page", "line", "text"),
    [pytest.param(page, line, text, id=f"{page}#{index}") for page, index, line, text in BLOCKS],
)
def test_yaml_example_loads(page, line, text, tmp_path, monkeypatch):
    document = yaml.safe_load(text)
    manifest = as_manifest(document)
    make_files(tmp_path, manifest)
    whole = manifest is document
    (tmp_path / "multiarch.yaml").write_text(text if whole else yaml.safe_dump(manifest))
    monkeypatch.chdir(tmp_path)
    error = ERROR.fullmatch(text.splitlines()[0].strip()) if text.strip() else None
    if error:
        with pytest.raises(ManifestError) as raised:
            load_manifest("multiarch.yaml")
        assert error.group(1).strip() in str(raised.value), f"{page} line {line}"
    else:
        try:
            load_manifest("multiarch.yaml")
        except ManifestError as err:
            pytest.fail(f"{page} line {line}: {err}")


def test_every_page_is_read():
    assert len(BLOCKS) >= 10
    assert {page for page, *_ in BLOCKS} >= {"README.md", "docs/manifest.md"}


LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
CODE = re.compile(r"`[^`\n]*`")


def anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as hyphens."""
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    headings = re.findall(r"^#+\s+(.*)$", text, re.M)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(ROOT).as_posix())
def test_links_resolve(page):
    text = CODE.sub("", FENCE.sub("", page.read_text(encoding="utf-8")))
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{page.name}: no such file: {target}"
        if anchor:
            assert anchor in anchors(linked), f"{page.name}: no heading for {target}"
