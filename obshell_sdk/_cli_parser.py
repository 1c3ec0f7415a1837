"""The command line's grammar: subcommands, options with their defaults, help and exit codes.

Global options (``--host``, ``--json``, ...) are accepted before or after the subcommand:
every parser of the tree knows them, the subcommands' copies with no default of their own,
so a value given anywhere wins and an absent one falls back to the top level's default.
Usage errors never echo what was typed as a value (it may be a password in the wrong place).
"""

from __future__ import annotations

import argparse
import difflib
import json
import math
import re
import sys
from collections.abc import Iterable, Sequence
from typing import Any, Callable, NoReturn, Optional

from ._cli_ob import add_ob_parser
from ._cli_package import add_package_parser
from ._cli_rollout import add_rollout_parser
from ._config import DEFAULT_PORT, ENV_VARIABLES
from ._validate import MAX_LIFETIME, MAX_SECONDS
from ._version import __version__

__all__ = ["DEFAULT_TIMEOUT", "EXIT_CODES", "UsageError", "build_parser", "parse"]

#: Exit codes of ``obshell-sdk``, for scripts to branch on (also in ``--help``).
EXIT_CODES: tuple[tuple[int, str], ...] = (
    (0, "done (a followed task succeeded)"),
    (1, "the task ended badly: failed, cancelled or rolled back"),
    (2, "bad usage or input (nothing was sent)"),
    (3, "credentials refused by the agent, or not sent: its key is too short "
        "(see --min-key-bits)"),
    (4, "the agent could not be reached, a read lost its reply, or polling kept failing"),
    (5, "the agent refused the call (another API error)"),
    (6, "the wait's deadline passed (the task keeps running)"),
    (7, "the agent's reply could not be read"),
    (8, "outcome unknown: a call that changes something (a task, an operator, an upload) "
        "lost its reply (run `task list`)"),
    (9, "refused because of the task's state (e.g. retry of a task that did not fail)"),
    (10, "no such task (check the id: `task list`)"),
    (11, "the cluster is under maintenance: another task holds its lock (`task list`)"),
    (130, "interrupted (a task keeps running on the agent)"),
    (143, "terminated (SIGTERM), as when interrupted"),
)

_PASSWORDS = ("OBSHELL_PASSWORD", "OBSHELL_AGENT_PASSWORD")


def _epilog() -> str:
    env = "\n".join(f"  {name:<24} {text}" for name, text in ENV_VARIABLES.items())
    codes = "\n".join(f"  {code:<4} {text}" for code, text in EXIT_CODES)
    return (f"environment variables (options win over them):\n{env}\n"
            f"  passwords come only from {' / '.join(_PASSWORDS)} or a prompt, never from "
            f"the command line\n\nexit codes:\n{codes}")


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors show option names, never typed values.

    Each parser says itself what it does not take, with its own usage and the option likely
    meant (argparse leaves that to the top level, whose usage names none of a command's
    options); ``hints`` say why an option is not taken here and what to give instead;
    ``words``, what to give instead of a word typed where VERSION goes (``upgrade ob ...``).
    """

    def __init__(self, *args: Any, hints: Optional[dict[str, str]] = None,
                 words: Optional[dict[str, str]] = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hints, self.words = dict(hints or {}), dict(words or {})
        self.given: list[str] = []

    def parse_known_args(self, args: Optional[Iterable[str]] = None,
                         namespace: Any = None) -> tuple[Any, list[str]]:
        """Parse ``args``; anything this parser does not take is a usage error, said here."""
        self.given = sys.argv[1:] if args is None else list(args)
        parsed, extras = super().parse_known_args(self.given, namespace)
        word = getattr(parsed, "version", None)
        if word in self.words:  # a known word, not a value typed: said as it was
            self._say(f"VERSION: '{word}' is not a version: {self.words[word]}")
        if extras:
            self._say(self._unrecognized(extras))
        return parsed, extras

    def error(self, message: str) -> NoReturn:
        """Print usage and a redacted ``message`` on stderr, then exit 2 (:class:`UsageError`)."""
        typed = _password_option(self.given)
        if typed:  # said first: its value may have taken an argument's place ("required")
            self._say(self._unrecognized([typed]))
        if "invalid choice" in message:
            # An unknown option before a subcommand (or ACTION) has its value taken for it.
            unknown = _unknown_before_positional(self.given, self._option_string_actions)
            if unknown:
                self._say(self._unrecognized(unknown))
            message += _close_choice(message)
        hint = ("\nVERSION and RELEASE are two arguments, e.g. 4.2.1.1 101000062023110109.el7 "
                "(not 4.2.1.1-101000062023110109.el7)" if message.endswith("RELEASE") else "")
        self._say(_redact(message) + hint)

    def _say(self, text: str) -> NoReturn:
        self.print_usage(sys.stderr)
        said = f"{self.prog}: error: {text}"
        sys.stderr.write(said + "\n")
        raise UsageError(said)

    def _unrecognized(self, tokens: Sequence[str]) -> str:
        """What this parser does not take: options by name (and the likely one), no values."""
        shown = [self._option(t) if t.startswith("-") and t != "-" else
                 "(an extra value: values are not shown, as one may be a password)"
                 for t in tokens]
        return f"unrecognized arguments: {' '.join(dict.fromkeys(shown))}"

    def _option(self, token: str) -> str:
        """An unknown option as said: its name only, and why it is not here or what is near."""
        name = _option_named(token)
        if _PASSWORD_OPTION.fullmatch(token.partition("=")[0]):
            return f"{name} ({_NO_PASSWORD})"
        if not name.startswith("-") or " " in name:  # -xSECRET: not a name to look up
            return name
        hint = self.hints.get(name) or self._near(name)
        return f"{name} ({hint})" if hint else name

    def _near(self, name: str) -> str:
        """``did you mean --wait?``; of an option not taken here, why (``--hots``: ``--host``)."""
        near = _closest(name, [*self._option_string_actions, *self.hints])
        if not near:
            return ""
        return f"did you mean {near}?" + (f" {self.hints[near]}" if near in self.hints else "")


#: The options a password is looked for under (``--password``, ``--agent-passwd``, ...; mysql's
#: ``-p`` and ``-pSECRET``): no parser has one, and each says so (:data:`_NO_PASSWORD`).
_PASSWORD_OPTION = re.compile(r"--(agent-|root-)?pass(word|wd)?|-p.*")
_NO_PASSWORD = (f"there is no password option, on purpose, as a command line is seen by other "
                f"users and kept in shell history: set {_PASSWORDS[0]} (root@sys) or "
                f"{_PASSWORDS[1]}, or leave them unset to be asked on a terminal")


def _password_option(given: Sequence[str]) -> Optional[str]:
    """The first password option of ``given`` (before any ``--``), as typed; else None."""
    for word in given:
        if word == "--":
            return None
        if _PASSWORD_OPTION.fullmatch(word.partition("=")[0]):
            return word
    return None


def _unknown_before_positional(given: Sequence[str],
                               known: dict[str, argparse.Action]) -> list[str]:
    """The options of ``given`` before its first positional that are none of ``known``.

    As argparse reads them: a unique prefix of a long option is that option; an option's
    value follows it unless given with ``=``; ``-vX`` is ``-v`` and more.
    """
    unknown: list[str] = []
    tokens = iter(given)
    for token in tokens:
        if token in ("-", "--") or not token.startswith("-"):
            break
        name, eq, _ = token.partition("=")
        action = known.get(name) or next(
            (a for o, a in known.items() if name.startswith("--") and o.startswith(name)), None)
        if action is None and not name.startswith("--") and name[:2] in known:
            continue  # a short option with its value or more short options stuck to it
        if action is None:
            unknown.append(token)
        elif not eq and action.nargs != 0:
            next(tokens, None)  # its value
    return unknown


def _close_choice(message: str) -> str:
    """`` (did you mean info?)`` for an invalid choice close to one (no typed text shown)."""
    typed = re.search(r"invalid choice: '([^']*)'", message)
    choices = re.findall(r"[\w.-]+", message.partition("(choose from ")[2])
    near = _closest(typed.group(1), choices) if typed else ""
    return f" (did you mean {near}?)" if near else ""


def _closest(typed: str, known: Iterable[str]) -> str:
    """The long option or choice closest to ``typed``, if one is close; else ""."""
    near = difflib.get_close_matches(typed, [k for k in known if not k.startswith("-")
                                             or k.startswith("--")], n=1, cutoff=0.7)
    return near[0] if near else ""


class UsageError(SystemExit):
    """A usage error, said on stderr: exit 2, as argparse's own."""

    def __init__(self, message: str) -> None:
        super().__init__(2)
        self.message = message


def parse(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The command line's arguments; with ``--json``, a usage error's JSON document too."""
    given = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    try:
        return parser.parse_args(given)
    except UsageError as exc:
        if "--json" in given:  # one document on stdout, as every failure leaves one
            sys.stdout.write(json.dumps({"error": {"exit": 2, "message": exc.message}}) + "\n")
        raise


def _redact(message: str) -> str:
    # "invalid choice: 'x'", "invalid float value: 'x'", "ignored explicit argument 'x'":
    # name the problem, not the text.
    message = re.sub(r"(invalid [a-z ]*?(?:choice|value)): '[^']*'", r"\1", message)
    return re.sub(r"(ignored explicit argument) '[^']*'", r"\1 (not shown)", message)


def _option_named(token: str) -> str:
    """An unknown option by its name alone: ``--x=SECRET`` and ``-xSECRET`` show ``--x``, ``-x``."""
    name = token.split("=", 1)[0]
    if not name.startswith("--") and len(name) > 2:  # -pSECRET: the rest may be a value
        return f"{name[:2]} (what follows it is not shown)"
    return name


def _number(kind: Callable[[str], float], low: float, high: float, what: str) -> Any:
    """An argparse type: a finite number from ``low`` to ``high``; the error shows no input."""
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}") from None
        if not (math.isfinite(value) and low <= value <= high):
            raise argparse.ArgumentTypeError(f"must be {what}")
        return value
    return parse


#: Seconds a wait lasts when ``--timeout`` is not given.
DEFAULT_TIMEOUT = 3600.0
#: ``--timeout``: seconds, above 0 (no more than the SDK takes).
SECONDS = _number(float, 1e-3, MAX_SECONDS, f"a number of seconds above 0, at most {MAX_SECONDS}")
#: ``--upload-timeout``: seconds, above 0, at most a day (the upload's header lives as long).
UPLOAD_SECONDS = _number(float, 1e-3, MAX_LIFETIME,
                         f"a number of seconds above 0, at most {int(MAX_LIFETIME)} (a day)")
_PORT = _number(int, 1, 65535, "a port number from 1 to 65535")


def _at_least(low: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least ``low`` (``--parallel``, ``--canary``)."""
    parse: Callable[[str], int] = _number(int, low, 10**9, f"a whole number of at least {low}")
    return parse


def _globals(p: argparse.ArgumentParser, *, top: bool, agent: bool = True,
             tls: bool = True) -> None:
    """The global options; below the top level they default to nothing (argparse.SUPPRESS).

    ``agent``: the options naming one agent (a rollout's come from its targets file);
    ``tls``: how to talk to agents (TLS, key size).
    """
    def dflt(value: Any) -> Any:
        return value if top else argparse.SUPPRESS

    g = p.add_argument_group("agent and output (before or after the subcommand)")
    if agent:
        g.add_argument("--host", default=dflt(None), help="the agent's host name or IP "
                       "(env OBSHELL_HOST; required)")
        g.add_argument("--port", default=dflt(None), type=_PORT,
                       help=f"the agent's port (env OBSHELL_PORT; default {DEFAULT_PORT})")
    if tls:
        g.add_argument("--https", action="store_true", default=dflt(None),
                       help="talk https (env OBSHELL_HTTPS; default off)")
        g.add_argument("--ca-bundle", default=dflt(None), metavar="FILE",
                       help="CA bundle to verify the agent's certificate; implies --https "
                       "(env OBSHELL_CA_BUNDLE, with OBSHELL_HTTPS=1)")
        g.add_argument("--min-key-bits", default=dflt(None), choices=("512", "1024", "2048",
                       "4096"), help="shortest agent RSA key a password is sent with: 512 "
                       "for obshell up to 4.4.1 (env OBSHELL_MIN_KEY_BITS; default 1024)")
    g.add_argument("--json", action="store_true", default=dflt(False),
                   help="print JSON on stdout instead of text (default: text)")
    g.add_argument("-v", "--verbose", action="store_true", default=dflt(False),
                   help="log each request to stderr (default: off)")


def _sub(sub: Any, name: str, *, agent: bool = True, tls: bool = True,
         **kwargs: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        name, formatter_class=argparse.RawDescriptionHelpFormatter, **kwargs)
    _globals(p, top=False, agent=agent, tls=tls)
    return p


def _follow_options(p: argparse.ArgumentParser, what: str,
                    default: float = DEFAULT_TIMEOUT) -> None:
    p.add_argument("--wait", action="store_true", help=f"{what} (default: do not wait)")
    p.add_argument("--timeout", type=SECONDS, metavar="SECONDS",
                   help="how long a wait lasts at most; the task keeps running after "
                   f"(default: {default:g})")


def build_parser() -> argparse.ArgumentParser:
    """The whole ``obshell-sdk`` parser."""
    p = _Parser(prog="obshell-sdk", description="Talk to an obshell agent: upgrade it or "
                "its cluster's OceanBase, follow and operate\nits tasks, roll upgrades out "
                "over many clusters.",
                epilog=_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"obshell-sdk {__version__}",
                   help="print the SDK's version and exit")
    _globals(p, top=True)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND",
                           parser_class=_Parser)
    _sub(sub, "info", help="the agent's identity and version (no password needed)")
    up = _sub(sub, "upgrade", help="upgrade obshell on the cluster's agents", words={
        "ob": "OceanBase's own upgrade is a command of its own: obshell-sdk upgrade-ob VERSION "
              "RELEASE (upgrade VERSION RELEASE upgrades obshell)",
        "agent": "upgrade VERSION RELEASE upgrades the agents (obshell): drop 'agent'"})
    up.add_argument("version", metavar="VERSION", help="target obshell version, e.g. 4.2.1.1")
    up.add_argument("release", metavar="RELEASE",
                    help="target release, e.g. 101000062023110109.el7")
    up.add_argument("--upgrade-dir", metavar="DIR",
                    help="directory on the agents (default: <obshell home>/upgrade)")
    up.add_argument("--check", action="store_true", help="run only the pre-check DAG, to its end "
                    "(implies --wait: the exit code says whether the check passed)")
    up.add_argument("--package", metavar="RPM", help="obshell RPM to upload first; then "
                    "check, upgrade, follow and confirm the new version (implies --wait)")
    up.add_argument("--upload-timeout", type=UPLOAD_SECONDS, metavar="SECONDS", help="seconds the "
                    "--package upload may take (default 600, or the file at 1 MiB/s)")
    _follow_options(up, "follow the task to its end")
    add_ob_parser(sub, _sub, _follow_options, UPLOAD_SECONDS)
    task = _sub(sub, "task", help="list, show, wait for or operate on tasks",
                description="task list: unfinished tasks and the cluster's last maintenance "
                "task.\ntask show|wait ID: read it once, or follow it to its end.\n"
                "task retry|rollback|skip ID: act on a FAILED task; task cancel ID: stop one "
                "still running (obshell refuses to cancel a FAILED one).")
    task.add_argument("action", choices=["list", "show", "wait", "retry", "rollback",
                                         "cancel", "skip"], metavar="ACTION",
                      help="list, show, wait, retry, rollback, cancel or skip")
    task.add_argument("id", nargs="?", metavar="ID", help="the task's id, e.g. 11 (all but "
                      "list)")
    _follow_options(task, "after an operator, follow the task to its end")
    task.add_argument("--exists", action="store_true", help="you know the task exists (you "
                      "started it): while its agent restarts, 'not found' is waited out")
    task.add_argument("--package", metavar="RPM", action="append", help="retry only: upload "
                      "this RPM first (a failed 'Download all required packages' step found "
                      "none; repeat for oceanbase-ce and oceanbase-ce-libs)")
    add_package_parser(sub, _sub, UPLOAD_SECONDS)
    add_rollout_parser(sub, lambda parent, name, **kw: _sub(
        parent, name, agent=False, tls=name in ("agent", "ob"), **kw), SECONDS, UPLOAD_SECONDS,
        _at_least)
    return p
