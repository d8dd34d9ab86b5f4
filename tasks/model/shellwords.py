"""Shell words as BuildKit expands them: moby/buildkit frontend/dockerfile/shell/lex.go."""

# ProcessWord's rules on one word: quotes, the escape character, $VAR and ${VAR<modifier>word}
# with lex.go's modifiers (- + ? with and without :, # ## % %% and / //). No command
# substitution, no field splitting: a Dockerfile word is one word.

import re
from collections.abc import Mapping


class WordError(ValueError):
    """A word lex.go refuses; the message is lex.go's."""


def process_word(word: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """``word`` with its quotes and escapes removed and its variables expanded.

    Args:
        env: the names that are set; a name absent from it is unset, which ${VAR-word},
            ${VAR+word} and ${VAR?word} tell apart from set but empty.
        escape: the Dockerfile's escape character (`# escape=`), \\ or `.

    Raises:
        WordError: an unclosed quote or ${, a bad modifier or pattern, or ${VAR?word} unset.
    """
    if not any(special in word for special in ("$", "'", '"', escape)):
        return word  # most FROM lines: nothing to expand
    return _Lexer(word, env, escape).until()


class _Lexer:
    """A cursor over one word; each method reads one construct from it and returns its value."""

    def __init__(self, word: str, env: Mapping[str, str], escape: str):
        self.word, self.at, self.env, self.escape, self.raw = word, 0, env, escape, False

    def peek(self) -> str:
        return self.word[self.at:self.at + 1]

    def next(self) -> str:
        ch = self.peek()
        self.at += len(ch)
        return ch

    def until(self, stop: str = "", raw: bool = False) -> str:
        """Up to ``stop`` (consumed) or the end; ``raw`` keeps escapes, as ${VAR#...} does."""
        saved, self.raw, out = self.raw, raw, []
        try:
            while ch := self.peek():
                if ch == stop:
                    self.next()
                    return "".join(out)
                if ch in "$'\"":
                    out.append({"$": self.dollar, "'": self.single, '"': self.double}[ch]())
                    continue
                self.next()
                if ch == self.escape:
                    if raw:
                        out.append(ch)
                    ch = self.next()  # "" at the end: a trailing escape is dropped
                out.append(ch)
        finally:
            self.raw = saved
        if stop:
            raise WordError(f"unexpected end of statement while looking for matching {stop}")
        return "".join(out)

    def single(self) -> str:
        self.next()
        end = self.word.find("'", self.at)
        if end < 0:
            raise WordError("unexpected end of statement while looking for matching single-quote")
        text, self.at = self.word[self.at:end], end + 1
        return text

    def double(self) -> str:
        self.next()
        out = []
        while (ch := self.peek()) != '"':
            if not ch:
                raise WordError(
                    "unexpected end of statement while looking for matching double-quote")
            if ch == "$":
                out.append(self.dollar())
                continue
            self.next()
            if ch == self.escape:
                if self.raw:
                    out.append(ch)
                if self.peek() in ('"', "$", self.escape):  # others keep the escape character
                    ch = self.next()
            out.append(ch)
        self.next()
        return "".join(out)

    def name(self) -> str:
        start, ch = self.at, self.peek()
        if ch.isdecimal():
            while self.peek().isdecimal():
                self.next()
        elif ch and ch in "@*#?-$!":  # the shell's special parameters, one character
            self.next()
        else:
            while (ch := self.peek()) and (ch.isalpha() or ch.isdecimal() or ch == "_"):
                self.next()
        return self.word[start:self.at]

    def closed(self, stop: str, raw: bool, missing: str) -> str:
        try:
            return self.until(stop, raw)
        except WordError:
            if self.peek():
                raise
            raise WordError(f"syntax error: missing {missing}") from None

    def dollar(self) -> str:
        self.next()
        if self.peek() != "{":
            name = self.name()
            return self.env.get(name, "") if name else "$"
        self.next()
        if not self.peek():
            raise WordError("syntax error: missing '}'")
        if self.peek() in "{}:":
            raise WordError("syntax error: bad substitution")
        name = self.name()
        ch = self.next()
        if ch == "}":
            return self.env.get(name, "")
        if ch == "/":
            return self.substitute(name)
        modifier = ch
        if ch == ":":  # ${VAR:-word}: empty counts as unset
            ch = self.next()
            modifier += ch
        if ch not in ("-", "+", "?", "#", "%") or modifier in (":#", ":%"):
            raise WordError(f"unsupported modifier ({modifier}) in substitution")
        word = self.closed("}", ch in "#%", "'}'")
        value = self.env.get(name)
        unset = value is None or (modifier[0] == ":" and value == "")
        if ch == "-":
            return word if unset else value
        if ch == "+":
            return "" if unset else word
        if ch == "?":
            if unset:
                default = "is not allowed to be " + ("unset" if value is None else "empty")
                raise WordError(f"{name}: {word or default}")
            return value
        greedy = word[:1] == ch  # ## and %% take the longest match
        pattern = word[1:] if greedy else word
        if ch == "#":
            return _trim_prefix(pattern, value or "", greedy)
        return _trim_prefix(_reverse_pattern(pattern), (value or "")[::-1], greedy)[::-1]

    def substitute(self, name: str) -> str:
        every = self.peek() == "/"
        if every:
            self.next()
        pattern = self.closed("/", True, "'/' in ${}")
        replacement = self.closed("}", True, "'}'")
        regex = _shell_pattern(pattern, greedy=True, anchored=False)
        value = self.env.get(name, "")
        if every:  # Go's ReplaceAllString reads $ in the replacement as a template
            return regex.sub(lambda match: _go_template(replacement, match), value)
        return regex.sub(lambda _: replacement, value, count=1)


def _shell_pattern(pattern: str, greedy: bool, anchored: bool) -> re.Pattern:
    """lex.go's convertShellPatternToRegex: * and ? wildcards, \\ escapes, no brackets."""
    out, at = ["^"] if anchored else [], 0
    while at < len(pattern):
        ch, at = pattern[at], at + 1
        if ch == "*":
            out.append(".*" if greedy else ".*?")
        elif ch == "?":
            out.append(".")
        elif ch == "\\":
            if pattern[at:at + 1] in ("}", "/"):
                continue
            escaped, at = pattern[at:at + 1], at + 1
            if escaped not in ("*", "?", "\\"):
                raise WordError(f"invalid pattern ({pattern}) in substitution:"
                                f" invalid escape '\\{escaped}'")
            out.append("\\" + escaped)
        else:
            out.append("\\" + ch if ch in "[](){}.+|^$" else ch)
    return re.compile("".join(out))


def _trim_prefix(pattern: str, value: str, greedy: bool) -> str:
    match = _shell_pattern(pattern, greedy, anchored=True).search(value)
    return value[match.end():] if match else value


def _reverse_pattern(pattern: str) -> str:
    """The pattern read backwards with each escape kept before what it escapes: a suffix
    is trimmed as the prefix of the reversed value, as lex.go's trimSuffix does."""
    parts, at = [], 0
    while at < len(pattern):
        size = 2 if pattern[at] == "\\" and at < len(pattern) - 1 else 1
        parts.append(pattern[at:at + size])
        at += size
    return "".join(reversed(parts))


def _go_template(template: str, match: re.Match) -> str:
    """regexp.Expand: $0 or ${0} is the match, $$ a dollar, other names (the pattern has no
    groups) nothing, and a $ naming nothing stays."""

    def one(ref: re.Match) -> str:
        name = ref[1] or ref[2]
        if ref[0] == "$$" or name is None:
            return "$"
        return match[0] if name.isdecimal() and int(name) == 0 else ""

    return re.sub(r"\$(?:\$|\{(\w+)\}|(\w+))?", one, template)
