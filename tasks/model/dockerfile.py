"""Which images of the manifest are built FROM which: Dockerfile inference plus depends_on."""

import re
from collections.abc import Mapping

_ARG = re.compile(r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?::?[-+](?P<word>[^}]*))?\}"
                  r"|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))")
_FLAG = re.compile(r"--[a-z-]+=\S+")


def instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with comments dropped and `\\` continuations joined."""
    result, pending = [], ""
    for line in dockerfile.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        whole = (pending + stripped).strip()
        pending = ""
        if whole:
            keyword, _, rest = whole.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def expand(text: str, args: Mapping[str, str]) -> str:
    """Substitute $VAR, ${VAR} and ${VAR:-word} as the Dockerfile frontend does for FROM."""

    def substitute(match: re.Match) -> str:
        name = match.group("braced") or match.group("plain")
        word = match.group("word")
        value = args.get(name, "")
        if word is not None and ":+" in match.group(0):
            return word if value else ""
        if word is not None and not value:
            return word
        return value

    return _ARG.sub(substitute, text)


def referenced_images(dockerfile: str, build_args: Mapping[str, str]) -> list[str]:
    """Every image reference a Dockerfile pulls: FROM (any stage) and COPY --from=<image>.

    Global ARGs (before the first FROM) and the manifest's build args are substituted, so
    `FROM ${REGISTRY}/base:${TAG}` is seen as what it builds from. Stage names are not images.
    """
    args: dict[str, str] = {}
    stages: set[str] = set()
    refs: list[str] = []
    seen_from = False
    for keyword, rest in instructions(dockerfile):
        if keyword == "ARG" and not seen_from:
            name, _, default = rest.partition("=")
            args[name.strip()] = build_args.get(name.strip(), expand(default.strip(), args))
        elif keyword == "FROM":
            seen_from = True
            words = [w for w in rest.split() if not _FLAG.fullmatch(w)]
            if not words:
                continue
            ref = expand(words[0], args)
            if ref.lower() not in stages and ref != "scratch":
                refs.append(ref)
            if len(words) >= 3 and words[1].upper() == "AS":
                stages.add(words[2].lower())
        elif keyword == "COPY":
            for word in rest.split():
                if word.startswith("--from="):
                    ref = expand(word[len("--from="):], args)
                    if ref.lower() not in stages and not ref.isdigit():
                        refs.append(ref)
    return refs
