"""The `multiarch` command: doit itself with multiarch's tasks, plus `multiarch init`.

`multiarch build` is `doit build` with the tasks of multiarch's own dodo.py, loaded from the
installed package, so a repository needs no dodo.py of its own; every doit command and
option works the same (`-n`, `-P`, `list --all`, `info`, `forget`, `clean`, `manifest=`).
"""

import importlib
import inspect
import sys
from pathlib import Path

from doit.cmd_base import Command, NamespaceTaskLoader
from doit.doit_cmd import DoitMain

from .tasks.model.platforms import parse_platforms
from .tasks.model.scaffold import (
    DODO_TEXT,
    find_dockerfiles,
    make_state_dir,
    manifest_text,
)

MANIFEST = "multiarch.yaml"


class PackageTaskLoader(NamespaceTaskLoader):
    """multiarch.dodo's tasks, imported only by a command that loads tasks (not `init`,
    `help`): importing it reads the manifest and takes the workspace lock."""

    def setup(self, opt_values):
        self.namespace = dict(inspect.getmembers(importlib.import_module("multiarch.dodo")))


class Init(Command):
    """`multiarch init`: a first multiarch.yaml, a dodo.py for plain doit, .multiarch/."""

    name = "init"
    doc_purpose = "write a first multiarch.yaml (one image per Dockerfile found) and a dodo.py"
    doc_usage = "[--registry HOST/NAMESPACE] [--platform linux/amd64,linux/arm64]"
    doc_description = ("Never overwrites a file: what exists is kept, and said so.")
    cmd_options = (
        {"name": "registry", "long": "registry", "type": str, "default": "",
         "help": "where the images are pushed (HOST[:PORT][/NAMESPACE]); default: a placeholder"},
        {"name": "platform", "long": "platform", "type": str, "default": "",
         "help": "platforms as `docker build --platform` takes them; default: amd64 and arm64"},
    )

    def execute(self, params, args) -> int:
        root = Path.cwd()
        platforms = None
        if params["platform"]:
            try:
                platforms = tuple(str(p) for p in parse_platforms(
                    item.strip() for item in params["platform"].split(",")))
            except ValueError as err:
                print(f"multiarch init: --platform: {err}", file=sys.stderr)
                return 2
        found = find_dockerfiles(root)
        texts = {MANIFEST: manifest_text(found, params["registry"] or None, platforms),
                 "dodo.py": DODO_TEXT}
        for name, text in texts.items():
            path = root / name
            if path.exists():
                print(f"kept {name}: it exists")
                continue
            path.write_text(text)
            what = f"{len(found)} image(s): {', '.join(f.name for f in found)}" if (
                name == MANIFEST) else "plain `doit` finds multiarch's tasks through it"
            print(f"wrote {name}: {what}" if found or name != MANIFEST
                  else f"wrote {name}: no Dockerfile found; add images by hand")
        make_state_dir(root / ".multiarch")
        print("next: `multiarch list`, then `multiarch build`")
        return 0


class Main(DoitMain):
    BIN_NAME = "multiarch"
    DOIT_CMDS = (*DoitMain.DOIT_CMDS, Init)


def main(argv: list[str] | None = None) -> int:
    """The console command; ``argv`` without the program name (default: sys.argv's)."""
    return Main(PackageTaskLoader()).run(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
