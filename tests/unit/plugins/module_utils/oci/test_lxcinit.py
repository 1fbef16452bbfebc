"""lxc.init.cmd encoding and the models of LXC 5.0 / 6.0 and Proxmox VE (pure logic).

The 5.0 model is checked against the real LXC in tests/integration/test_initwrap.py;
the 6.0 rules here follow src/lxc/string_utils.c lxc_string_split_quoted and
src/lxc/confile.c parse_line as cited in the module.
"""

import random
import shutil
import subprocess

import pytest

from ansible_collections.lxcri.proxmox.plugins.module_utils.oci import lxcinit
from ansible_collections.lxcri.proxmox.plugins.module_utils.oci.errors import LxcConfigError, NotExpressible, OciError


@pytest.mark.parametrize("text,parsed", [
    ("6.0.4", (6, 0, 4)), ("5.0.2-2+deb12u2", (5, 0, 2)), ("6", (6, 0, 0)), ("v6.0", (6, 0, 0)),
    ((6, 0), (6, 0, 0)), ([5, 0, 2], (5, 0, 2)), (" 7.0.0\n", (7, 0, 0)), ("6.0.0-1", (6, 0, 0)),
])
def test_parse_lxc_version(text, parsed):
    assert lxcinit.parse_lxc_version(text) == parsed


def test_version_errors_and_comparison():
    with pytest.raises(LxcConfigError):
        lxcinit.parse_lxc_version("lxc")
    assert lxcinit.compare_lxc_versions("5.0.2", "6.0") == -1
    assert lxcinit.compare_lxc_versions("6.0.0", (6, 0)) == 0
    assert lxcinit.compare_lxc_versions("6.0.4", "6.0.3") == 1
    assert lxcinit.LXC_QUOTING_MIN == (6, 0)
    assert not lxcinit.lxc_splits_quoted("5.0.2")
    assert not lxcinit.lxc_splits_quoted("4.0.12")
    assert lxcinit.lxc_splits_quoted("6.0.0") and lxcinit.lxc_splits_quoted("7.0.1")


def test_not_expressible_is_an_oci_error_with_details():
    with pytest.raises(NotExpressible) as info:
        lxcinit.encode_init_cmd(["/x", "a b"], "5.0")
    assert isinstance(info.value, OciError)
    assert (info.value.word_index, info.value.word) == (1, "a b")
    assert "argv[1] 'a b'" in str(info.value) and "LXC 5.0" in str(info.value)
    assert lxcinit.NotExpressible is NotExpressible


@pytest.mark.parametrize("raw,clean", [
    ("/bin/x", "/bin/x"),
    ("  \t/bin/x a \t", "/bin/x a"),
    ('"/bin/x a"', "/bin/x a"),
    ("'/bin/x a'", "/bin/x a"),
    ('""x""', '"x"'),             # one pair only
    ("'a\"", "'a\""),             # different quotes: kept
    ("'", "'"),                   # a lone quote is not a pair
    ("''", ""),
    ("   ", ""),
    (' "a" ', "a"),               # blanks are trimmed before the quote check
    ("x\n", "x"),
    ("\"\t\"", "\t"),
])
def test_config_value_cleanup(raw, clean):
    assert lxcinit.config_value_cleanup(raw) == clean


@pytest.mark.parametrize("text,written", [
    ("/app", "/app"), (" lead", '" lead"'), ("trail\t", '"trail\t"'), ("'q'", "\"'q'\""), ('"q"', '""q""'),
    ("'q\"", "'q\""), ("", ""), ("a=b c", "a=b c"),
])
def test_config_value_wraps_only_when_needed(text, written):
    assert lxcinit.config_value(text) == written
    assert lxcinit.config_value_cleanup(written) == text


@pytest.mark.parametrize("bad", ["a\nb", "a\rb", "a\0b"])
def test_config_value_refuses_line_ends(bad):
    with pytest.raises(LxcConfigError):
        lxcinit.config_value(bad)


def test_config_value_round_trips_random_text():
    rng = random.Random(20240605)
    alphabet = [" ", "\t", "'", '"', "a", "=", "\\", "$", "\u00e9", "\v", "#"]
    for dummy in range(3000):
        text = "".join(rng.choice(alphabet) for dummy in range(rng.randint(0, 8)))
        assert lxcinit.config_value_cleanup(lxcinit.config_value(text)) == text, repr(text)


# ---------------------------------------------------------------------------
# splitting

@pytest.mark.parametrize("value,argv", [
    ("/x a  b", ["/x", "a", "b"]),
    ("/x 'a b' \"c\"", ["/x", "'a", "b'", '"c"']),     # no quoting
    ("/x a\tb", ["/x", "a\tb"]),                       # only spaces separate
    ('"/x a"', ["/x", "a"]),                           # the parser's outer-pair strip
    ("/x ''", ["/x", "''"]),
    ("", ["/sbin/init"]),                              # unset: lxc-start's default
    ('" "', ["/sbin/init"]),                           # no words: default too
])
def test_split_v5(value, argv):
    assert lxcinit.split_init_cmd(value, "5.0.2") == argv


@pytest.mark.parametrize("value,argv", [
    ("/x 'a b' \"c d\"", ["/x", "a b", "c d"]),
    ("/x a'b c'", ["/x", "a'b", "c'"]),                # quotes inside a bare word are literal
    ("/x 'a'b", ["/x", "a", "b"]),                     # a closing quote ends the word
    ("/x '' \"\"", ["/x", "", ""]),
    ("/x 'abc", ["/x"]),                               # unterminated: dropped
    ("/x\ta\x0bb\x0cc", ["/x", "a", "b", "c"]),        # isspace(): tab, VT, FF
    ("/x '\\'", ["/x", "\\"]),                         # no escapes
    ("'/x a' 'b'", ["/x", "a'"]),                      # outer strip first: /x a' 'b
    ('""/my app""', ["/my app"]),
    (" \t", ["/sbin/init"]),
    ('" "', []),                                       # set but without words: the start fails
])
def test_split_v6(value, argv):
    assert lxcinit.split_init_cmd(value, "6.0.4") == argv


# ---------------------------------------------------------------------------
# encoding

@pytest.mark.parametrize("argv,version,value", [
    (["/bin/sleep", "3600"], "5.0", "/bin/sleep 3600"),
    (["/x", "'a", "b'"], "5.0", "/x 'a b'"),
    (["'a", "b'"], "5.0", "\"'a b'\""),
    (["/x", "tab\t"], "5.0", '"/x tab\t"'),
    (["/bin/sh", "-c", "sleep 1; exit 0"], "6.0", '/bin/sh -c "sleep 1; exit 0"'),
    (["/x", "it's", 'say "hi"'], "6.0", "/x it's 'say \"hi\"'"),
    (["/my app"], "6.0", '""/my app""'),
    ([""], "6.0", '""""'),
    (["/x", "", "'q"], "6.0", '/x "" "\'q"'),
])
def test_encode_examples(argv, version, value):
    assert lxcinit.encode_init_cmd(argv, version) == value
    assert lxcinit.split_init_cmd(value, version) == argv


@pytest.mark.parametrize("argv,version,index", [
    (["/x", ""], "5.0", 1),
    (["/x", "a b"], "5.0", 1),
    (["/x", "a\nb"], "5.0", 1),
    (["/x", "a\nb"], "6.0", 1),
    (["/x", "a\rb"], "6.0", 1),
    (["/x", "'it\" s"], "6.0", 1),
    (["/x", "it's \"x\""], "6.0", 1),
    (["/x", "'a\"b"], "6.0", 1),      # starts with a quote and holds both
    ([], "6.0", None),
])
def test_encode_refuses(argv, version, index):
    with pytest.raises(NotExpressible) as info:
        lxcinit.encode_init_cmd(argv, version)
    assert info.value.word_index == index


def test_both_quotes_in_a_plain_word_are_fine_under_6():
    argv = ["/x", "a'b\"c"]
    assert lxcinit.split_init_cmd(lxcinit.encode_init_cmd(argv, "6.0"), "6.0") == argv


WORD_PIECES = ["a", "b", "/", " ", "  ", "\t", "'", '"', "$", "\\", "=", "\u00e9", "\u6f22", "#", "*", "\x0b",
               "\x0c", "\n", "\r", "-", ";", "`", "''", '""']


def _random_argv(rng):
    argv = []
    for dummy in range(rng.randint(1, 5)):
        if rng.random() < 0.12:
            argv.append("")
        else:
            argv.append("".join(rng.choice(WORD_PIECES) for dummy in range(rng.randint(1, 5))))
    return argv


def _expressible(argv, quoting):
    """Independent statement of the rules in the module docstring."""
    for word in argv:
        if any(c in word for c in "\n\r\0"):
            return False
        if not quoting and (word == "" or " " in word):
            return False
        needs_quotes = word == "" or word[0] in "'\"" or any(c in word for c in " \t\n\v\f\r")
        if quoting and needs_quotes and "'" in word and '"' in word:
            return False
    return True


@pytest.mark.parametrize("version", ["5.0.2", "6.0.4"])
def test_random_argvs_round_trip_or_are_refused(version):
    rng = random.Random(7 if version.startswith("5") else 11)
    quoting = lxcinit.lxc_splits_quoted(version)
    encoded = refused = 0
    for dummy in range(5000):
        argv = _random_argv(rng)
        try:
            value = lxcinit.encode_init_cmd(argv, version)
        except NotExpressible:
            refused += 1
            assert not _expressible(argv, quoting), argv
            continue
        encoded += 1
        assert _expressible(argv, quoting), argv
        assert "\n" not in value and "\r" not in value
        assert lxcinit.split_init_cmd(value, version) == argv, (argv, value)
    assert encoded > 500 and refused > 500  # both paths really exercised


# ---------------------------------------------------------------------------
# Proxmox VE

def test_pve_entrypoint_is_the_6_0_encoding():
    argv = ["/bin/sh", "-c", "sleep 3600; exit 0", "x", "two words", "it's", "tab\there"]
    assert lxcinit.pve_entrypoint(argv) == lxcinit.encode_init_cmd(argv, "6.0")
    assert lxcinit.split_init_cmd(lxcinit.pve_entrypoint(argv), "6.0.4") == argv
    for bad in ("\x01", "\x0b", "\x1f", "\x7f"):
        with pytest.raises(NotExpressible):
            lxcinit.pve_entrypoint(["/x", "a" + bad])


# Outputs of String::ShellQuote 1.04 (Debian libstring-shellquote-perl), run by hand for these words.
SHELL_QUOTE = [
    ("", "''"), ("a b", "'a b'"), ("it's", "'it'\\''s'"), ("a=b", "'a=b'"), ("--x=1", "'--x=1'"),
    ("a''b", "'a'\"''\"'b'"), ("$HOME", "'$HOME'"), ("a\\b", "'a\\b'"), ("ab", "ab"),
    ("x'''y", "'x'\"'''\"'y'"), ("\u00e9", "'\u00e9'"), ("a\tb", "'a\tb'"), ("/usr/bin/x-1.2:@%+,^!", "/usr/bin/x-1.2:@%+,^!"),
]


@pytest.mark.parametrize("word,quoted", SHELL_QUOTE)
def test_shell_quote_word_matches_string_shellquote(word, quoted):
    assert lxcinit.shell_quote_word(word) == quoted


def test_shell_quote_word_against_perl_when_available():
    perl = shutil.which("perl")
    if not perl or subprocess.run([perl, "-MString::ShellQuote", "-e", "1"], stderr=subprocess.DEVNULL,
                                  check=False).returncode != 0:
        pytest.skip("perl with String::ShellQuote (libstring-shellquote-perl) is not installed")
    rng = random.Random(3)
    words = ["".join(rng.choice(["a", "'", "=", " ", "-", "/", "$", "''", '"', "\t", "_"])
                     for dummy in range(rng.randint(1, 6))) for dummy in range(400)]
    script = 'binmode STDOUT; local $/ = "\\0"; while (my $w = <STDIN>) { chomp $w; print shell_quote($w), "\\0" }'
    out = subprocess.run([perl, "-MString::ShellQuote", "-e", script], input="".join(w + "\0" for w in words).encode(),
                         stdout=subprocess.PIPE, check=True).stdout.decode().split("\0")[:-1]
    assert [lxcinit.shell_quote_word(w) for w in words] == out


def test_pve_importer_model_shows_where_it_goes_wrong():
    # plain words pass through
    assert lxcinit.split_init_cmd(lxcinit.pve_import_value(["/bin/sleep", "3600"]), "6.0") == ["/bin/sleep", "3600"]
    # a single quote is escaped shell-style, which LXC does not undo
    value = lxcinit.pve_import_value(["/x", "it's"])
    assert value == "/x 'it'\\''s'"
    assert lxcinit.split_init_cmd(value, "6.0") == ["/x", "it", "\\''s'"]
    # first and last word quoted: the config parser strips that pair and shifts the words
    assert lxcinit.split_init_cmd(lxcinit.pve_import_value(["/my app", "x y"]), "6.0") == ["/my", "app'"]
    # /sbin/init is left to the default, without its arguments
    assert lxcinit.pve_import_value(["/sbin/init", "--log-level=debug"]) is None
    with pytest.raises(NotExpressible):
        lxcinit.pve_import_value(["/x", "a\x0b"])  # the importer's check misses it; PVE's config does not


@pytest.mark.parametrize("argv,entrypoint", [
    (["/bin/sleep", "3600"], ["/bin/sleep", "3600"]),
    (["/bin/sh", "-c", "sleep 1; exit 0"], ["/bin/sh", "-c", "sleep 1; exit 0"]),
    (["/my app", "x y"], ['"/my app" "x y"']),
    (["/sbin/init"], ["/sbin/init"]),
    (["/sbin/init", "x"], ["/sbin/init x"]),
    (["/x", "", 'say "hi"'], ["/x", "", 'say "hi"']),
    (["/my app", "", "y z"], ['"/my app" "" "y z"']),
])
def test_pve_import_command_makes_the_importer_produce_argv(argv, entrypoint):
    got, cmd = lxcinit.pve_import_command(argv)
    assert (got, cmd) == (entrypoint, None)
    value = lxcinit.pve_import_value(got)
    assert (lxcinit.split_init_cmd(value, "6.0") if value is not None else ["/sbin/init"]) == argv


def test_pve_import_command_random_round_trip_or_refusal():
    rng = random.Random(5)
    done = 0
    for dummy in range(3000):
        argv = [w for w in _random_argv(rng) if not any(c in w for c in "\n\r\x0b\x0c")] or ["/x"]
        try:
            entrypoint, cmd = lxcinit.pve_import_command(argv)
        except NotExpressible:
            value = lxcinit.pve_import_value(argv)  # refused: the importer given argv itself must get it wrong
            assert (lxcinit.split_init_cmd(value, "6.0") if value is not None else ["/sbin/init"]) != argv
            assert any("'" in w or '"' in w for w in argv) or not _expressible(argv, True), argv
            continue
        done += 1
        value = lxcinit.pve_import_value(entrypoint + (cmd or []))
        assert (lxcinit.split_init_cmd(value, "6.0") if value is not None else ["/sbin/init"]) == argv
    assert done > 500


def test_pve_import_command_refuses_single_quotes():
    with pytest.raises(NotExpressible) as info:
        lxcinit.pve_import_command(["/x", "two words", "it's"])
    assert info.value.word_index == 2


# ---------------------------------------------------------------------------
# environment

def test_pve_env():
    assert lxcinit.pve_env(["PATH=/bin", "GREETING=hello world", "EMPTY=", "TAB=a\tb", "EQ=a=b"]) == \
        "PATH=/bin\0GREETING=hello world\0EMPTY=\0TAB=a\tb\0EQ=a=b"
    assert lxcinit.pve_env([]) == ""


@pytest.mark.parametrize("item,fragment", [
    ("=x", "empty name"), ("NOEQ", "has no '='"), ("A=x\ny", "newline"), ("A=x\0", "NUL"),
    ("my.var=1", "letters, digits"), ("A=x\x01", "control characters"), ("A=x ", "ends with a blank"),
    ("A=x\t", "ends with a blank"), ("A\rB=1", "carriage return"),
])
def test_pve_env_refusals(item, fragment):
    with pytest.raises(LxcConfigError) as info:
        lxcinit.pve_env([item])
    assert fragment in str(info.value)


def test_env_value_check():
    lxcinit.env_value_check("my.var", " spaced ")  # fine for lxc.environment lines
    for name, value in (("", "x"), ("A=B", "x"), ("A\0", "x"), ("A", "a\rb"), ("A", "a\nb"), ("A", "\0")):
        with pytest.raises(LxcConfigError):
            lxcinit.env_value_check(name, value)


# ---------------------------------------------------------------------------
# signals and config lines

@pytest.mark.parametrize("sig,parsed,lxc", [
    ("SIGTERM", ("TERM", 15), "SIGTERM"), ("term", ("TERM", 15), "SIGTERM"), (15, (None, 15), "15"),
    ("9", (None, 9), "9"), ("SIGPWR", ("PWR", 30), "SIGPWR"), ("SIGRTMIN+3", ("RTMIN+3", 37), "SIGRTMIN+3"),
    ("RTMAX-2", ("RTMAX-2", 62), "SIGRTMAX-2"), ("SIGRTMIN", ("RTMIN", 34), "SIGRTMIN"),
])
def test_signals(sig, parsed, lxc):
    assert lxcinit.parse_signal(sig) == parsed
    assert lxcinit.lxc_signal(sig) == lxc


@pytest.mark.parametrize("bad", ["SIGFOO", "0", "99", "RTMIN-1", "RTMAX+1", "SIGRTMIN+40", True, None, ""])
def test_bad_signals(bad):
    with pytest.raises(LxcConfigError):
        lxcinit.lxc_signal(bad)


def test_lxc_config_lines():
    lines = lxcinit.lxc_config_lines("/app", 1000, 1000, ["PATH=/bin", "GREETING=hello world ", "Q='x'"], "TERM",
                                     groups=[5, 1000])
    assert lines == [
        "lxc.init.cwd = /app",
        "lxc.init.uid = 1000",
        "lxc.init.gid = 1000",
        "lxc.init.groups = 5,1000",
        "lxc.environment = PATH=/bin",
        'lxc.environment = "GREETING=hello world "',
        "lxc.environment = Q='x'",
        "lxc.signal.halt = SIGTERM",
    ]
    # what LXC's parser hands to each key
    intended = ["/app", "1000", "1000", "5,1000", "PATH=/bin", "GREETING=hello world ", "Q='x'", "SIGTERM"]
    assert [lxcinit.config_value_cleanup(line.partition("=")[2]) for line in lines] == intended
    assert lxcinit.lxc_config_lines() == []
    assert lxcinit.lxc_config_lines(cwd="/ odd ") == ['lxc.init.cwd = "/ odd "']


@pytest.mark.parametrize("kwargs", [
    {"cwd": "app"}, {"cwd": "/a\nb"}, {"uid": -1}, {"gid": "0"}, {"uid": True}, {"env_list": ["A=b\nc"]},
    {"env_list": ["NOEQ"]}, {"halt_signal": "TERMINATE"}, {"groups": [-1]},
])
def test_lxc_config_lines_refusals(kwargs):
    with pytest.raises(LxcConfigError):
        lxcinit.lxc_config_lines(**kwargs)
