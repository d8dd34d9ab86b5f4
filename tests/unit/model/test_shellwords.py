"""tasks.model.shellwords: lex.go's ProcessWord on one word, without a Dockerfile around it."""

import pytest
from multiarch.tasks.model.shellwords import WordError, process_word

ENV = {"X": "a/b/c", "EMPTY": "", "V": "v", "A": "aXa", "TAG": "v2",
       "REPO": "localhost:5000/team", "REF": "docker.io/library/alpine:3.19"}

# (case, word, expected); ENV is set, every other name unset.
CASES = [
    # The word-level halves of test_dockerfile_semantics.py's cases.
    ("double quotes around the whole word", '"127.0.0.1:5000/x/base:v1"',
     "127.0.0.1:5000/x/base:v1"),
    ("quotes of both kinds around parts of a word", "\"$REPO/app\":'v1'",
     "localhost:5000/team/app:v1"),
    ("${VAR:+word} unset", "base${UNSET:+:$UNSET}", "base"),
    ("${VAR:+word} set", "base${TAG:+:$TAG}", "base:v2"),
    ("unset and empty differ for ${VAR-word}, not for ${VAR:-word}",
     "a:${EMPTY-x}${EMPTY:-y}${UNSET-z}", "a:yz"),
    ("prefix and suffix removal", "${REF%:*}:${REF##*:}", "docker.io/library/alpine:3.19"),
    # Quotes.
    ("single quotes keep a $", "'$X'", "$X"),
    ("double quotes expand", '"$V y"', "v y"),
    ("quoted parts join", "a\"b\"'c'", "abc"),
    ("an escaped double quote inside double quotes", '"a\\"b"', 'a"b'),
    ("an escape before another character stays inside double quotes", '"a\\zb"', "a\\zb"),
    ("an escaped $ inside double quotes", '"a\\$V"', "a$V"),
    # Escapes.
    ("an escaped space", "a\\ b", "a b"),
    ("an escaped $", "\\$X", "$X"),
    ("a trailing escape is dropped", "a\\", "a"),
    ("a $ naming nothing stays", "a$", "a$"),
    ("a positional parameter is unset", "$1x", "x"),
    # ${VAR:-word} and ${VAR-word}.
    ("${VAR:-word} unset", "${UNSET:-w}", "w"),
    ("${VAR:-word} empty", "${EMPTY:-w}", "w"),
    ("${VAR:-word} set", "${V:-w}", "v"),
    ("${VAR-word} unset", "${UNSET-w}", "w"),
    ("${VAR-word} empty", "${EMPTY-w}", ""),
    ("${VAR-word} set", "${V-w}", "v"),
    # ${VAR:+word} and ${VAR+word}.
    ("${VAR:+word} empty", "${EMPTY:+w}", ""),
    ("${VAR+word} empty", "${EMPTY+w}", "w"),
    ("${VAR+word} unset", "${UNSET+w}", ""),
    # ${VAR#pattern}, ${VAR%pattern}: shortest, and doubled the longest.
    ("# shortest prefix", "${X#*/}", "b/c"),
    ("## longest prefix", "${X##*/}", "c"),
    ("# a quoted pattern", '${X#"a/"}', "b/c"),
    ("% shortest suffix", "${X%/*}", "a/b"),
    ("%% longest suffix", "${X%%/*}", "a"),
    ("# no match leaves the value", "${X#z*}", "a/b/c"),
    # ${VAR/pattern/replacement}: the first match, doubled every match.
    ("/ the first match", "${A/a/b}", "bXa"),
    ("// every match", "${A//a/b}", "bXb"),
    ("/ a replacement is expanded", "${X/b/$V}", "a/v/c"),
    ("/ of an unset name", "${UNSET/a/b}", ""),
]


@pytest.mark.parametrize(("word", "expected"), [case[1:] for case in CASES],
                         ids=[case[0] for case in CASES])
def test_process_word(word, expected):
    assert process_word(word, ENV, "\\") == expected


def test_the_backtick_escape():
    assert process_word("a`$V", ENV, "`") == "a$V"
    assert process_word("c:\\x", ENV, "`") == "c:\\x"


@pytest.mark.parametrize(
    ("word", "message"),
    [
        ("'abc", "unexpected end of statement while looking for matching single-quote"),
        ('"abc', "unexpected end of statement while looking for matching double-quote"),
        ("${", "syntax error: missing '}'"),
        ("${}", "syntax error: bad substitution"),
        ("${X", "unsupported modifier () in substitution"),
        ("${V:x}", "unsupported modifier (:x) in substitution"),
        ("${X:#a}", "unsupported modifier (:#) in substitution"),
        ("${X#a\\q}", "invalid pattern (a\\q) in substitution: invalid escape '\\q'"),
        ("${UNSET?must be set}", "UNSET: must be set"),
        ("${UNSET?}", "UNSET: is not allowed to be unset"),
        ("${EMPTY:?}", "EMPTY: is not allowed to be empty"),
    ],
)
def test_errors(word, message):
    with pytest.raises(WordError) as caught:
        process_word(word, ENV, "\\")
    assert str(caught.value) == message
