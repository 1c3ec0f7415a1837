"""The command line's grammar: subcommands, options with their defaults, help and exit codes.

Global options (``--host``, ``--json``, ...) are accepted before or after the subcommand:
every parser of the tree knows them, the subcommands' copies with no default of their own,
so a value given anywhere wins and an absent one falls back to the top level's default.
Usage errors never echo what was typed as a value (it may be a password in the wrong place):
they are worded in ``_cli_usage``. The one word said back is a number typed where ``task``'s
ACTION goes, with the command it belongs to (``task 11``: ``task show 11``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from typing import Any, Callable, Optional

from ._cli_ob import add_ob_parser
from ._cli_package import add_package_parser
from ._cli_rollout import add_rollout_parser
from ._cli_usage import PASSWORD_VARIABLES, Parser, UsageError
from ._config import DEFAULT_PORT, ENV_VARIABLES
from ._rpm import rpm_file_name
from ._targets import OB_PACKAGES
from ._validate import MAX_ID_LENGTH, MAX_LIFETIME, MAX_SECONDS
from ._version import __version__

__all__ = ["DEFAULT_TIMEOUT", "EXIT_CODES", "build_parser", "parse", "version_word"]

#: Exit codes of ``obshell-sdk``, for scripts to branch on (also in ``--help``).
EXIT_CODES: tuple[tuple[int, str], ...] = (
    (0, "done (a followed task succeeded, or ended as task rollback|cancel --wait asked)"),
    (1, "the task ended badly (failed, cancelled, rolled back), or the new version did not show"),
    (2, "bad usage or input (no upload or task was sent; a damaged --package or package "
        "upload RPM is refused after the reads that log in; upgrade --package of an RPM the "
        "agent read as another version, after it was stored: the message says how to delete "
        "it; an RPM removed after its check, once those before it were stored)"),
    (3, "credentials refused by the agent, or not sent: its key is too short "
        "(see --min-key-bits)"),
    (4, "the agent could not be reached, a read (or the upload route's empty probe) lost its "
        "reply, or polling kept failing"),
    (5, "the agent refused the call (another API error)"),
    (6, "the wait's deadline passed (the task keeps running)"),
    (7, "the agent's reply could not be read (not obshell's, or not HTTP at all: a wrong "
        "port?)"),
    (8, "outcome unknown: a call that changes something (a task, an operator, an upload) "
        "lost its reply (run `task list`)"),
    (9, "the operator does not apply to the task's state or steps (e.g. retry of a task that "
        "did not fail, skip of a step obshell cannot pass); it was not applied (task retry "
        "--package: the packages stay stored)"),
    (10, "no such task, or package (check the id: `task list`, `package list`)"),
    (11, "the cluster is under maintenance: another task holds its lock (`task list`)"),
    (130, "interrupted (a task keeps running on the agent)"),
    (143, "terminated (SIGTERM), as when interrupted"),
)


def _epilog() -> str:
    env = "\n".join(f"  {name:<24} {text}" for name, text in ENV_VARIABLES.items())
    codes = "\n".join(f"  {code:<4} {text}" for code, text in EXIT_CODES)
    return (f"environment variables (options win over them):\n{env}\n"
            f"  passwords come only from {' / '.join(PASSWORD_VARIABLES)} or a prompt, never from "
            f"the command line\n\nexit codes:\n{codes}")


def parse(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The command line's arguments; a usage error is written on stderr.

    With ``--json``, its JSON document on stdout too.
    """
    given = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    try:
        return parser.parse_args(given)
    except UsageError as exc:
        sys.stderr.write(f"{exc.usage}{exc.message}\n")
        if "--json" in given:  # one document on stdout, as every failure leaves one
            sys.stdout.write(json.dumps({"error": {"exit": 2, "message": exc.bare}}) + "\n")
        raise


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


#: The commands that take VERSION RELEASE, by what they upgrade (obshell, OceanBase), and
#: how each is given a package; the packages each upgrades, whose file names give them.
_COMMANDS = ((("upgrade", "upgrade-ob"), "{} VERSION RELEASE --package FILE"),
             (("rollout agent", "rollout ob"),
              "{} --targets FILE --journal FILE VERSION RELEASE --package FILE"))
_PACKAGES = (("obshell",), OB_PACKAGES)


def version_word(command: str) -> Callable[[str], str]:
    """VERSION's argparse type for ``command``: the word as given, unless it names an RPM.

    An RPM's file name is refused, saying how to give it: with ``--package``, after the
    version and release its name says (only those are shown, read from a name so shaped:
    :func:`rpm_file_name`), to the command of its kind (``upgrade`` or ``rollout``) that
    upgrades that package.
    """
    commands, usage = next(kind for kind in _COMMANDS if command in kind[0])

    def version(word: str) -> str:
        if not word.endswith(".rpm"):
            return word
        named = rpm_file_name(word)
        owner = next((c for c, names in zip(commands, _PACKAGES) if named and named[0] in names),
                     None)
        said = "takes a version, not an RPM: " + (
            f"{named[0]} is upgraded by {owner}: " if named and owner not in (None, command)
            else "")
        said += "give " + usage.format(owner or command)
        if named is None or owner is None:
            raise argparse.ArgumentTypeError(
                f"{said}, VERSION and RELEASE as the RPM's file name gives them "
                f"({_PACKAGES[commands.index(command)][0]}-VERSION-RELEASE.ARCH.rpm)")
        raise argparse.ArgumentTypeError(
            f"{said} (from its name: VERSION {named[1]} RELEASE {named[2]})")
    return version


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


#: ``task``'s actions: ``list`` takes no ID, every other one ID (as ``_cli._check`` says).
_TASK_ACTIONS = ["list", "show", "wait", "retry", "rollback", "cancel", "skip"]


def _task_id_meant(word: str, given: list[str]) -> str:
    """What ``task 11`` meant, said after its usage error: a task id typed where ACTION goes.

    Only a word of digits is said back (no password is all digits where ACTION goes; anything
    else typed is never shown): an action typed after it (``task 11 retry``) is the one meant,
    else ``task show`` (or ``task wait``), which only read the task.
    """
    if not (word.isascii() and word.isdecimal() and len(word) <= MAX_ID_LENGTH):
        return ""
    after = given[given.index(word) + 1:][:1] if word in given else []
    said = f"; '{word}' looks like a task id, which goes after ACTION: did you mean obshell-sdk"
    if after and after[0] in _TASK_ACTIONS[1:]:
        return f"{said} task {after[0]} {word}?"
    return f"{said} task show {word} (or task wait {word})?"


def _add_task_parser(sub: Any) -> None:
    """``task ACTION [ID]``: list, show, wait for or operate on tasks (retry with packages)."""
    task = _sub(sub, "task", help="list, show, wait for or operate on tasks",
                description="task list: unfinished tasks and the cluster's last maintenance "
                "task; --all: every task\nof the cluster, finished ones too (a failed "
                "pre-check holds no lock: it is not unfinished).\n"
                "task show|wait ID: read it once, or follow it to its end.\n"
                "task retry|rollback|skip ID: act on a FAILED task; task cancel ID: stop one "
                "still running (obshell refuses to cancel a FAILED one).", takes={
                    "list": "no ID", **{a: "one ID" for a in _TASK_ACTIONS[1:]}},
                instead=_task_id_meant)
    task.add_argument("action", choices=_TASK_ACTIONS, metavar="ACTION",
                      help="list, show, wait, retry, rollback, cancel or skip")
    task.add_argument("id", nargs="?", metavar="ID", help="the task's id, e.g. 11 (all but "
                      "list)")
    task.add_argument("--all", action="store_true", help="list only: every task of the "
                      "cluster, finished ones too, instead (its history: obshell 4.2.6 and "
                      "later)")
    _follow_options(task, "after an operator, follow the task to its end")
    task.add_argument("--exists", action="store_true", help="you know the task exists (you "
                      "started it): while its agent restarts, 'not found' is waited out")
    task.add_argument("--package", metavar="RPM", action="append", help="retry only: upload "
                      "this RPM first (a failed 'Download all required packages' step found "
                      "none; repeat for oceanbase-ce and oceanbase-ce-libs)")
    task.add_argument("--upload-timeout", type=UPLOAD_SECONDS, metavar="SECONDS", help="seconds "
                      "each --package upload may take (default 600, or the file at 1 MiB/s)")


def build_parser() -> argparse.ArgumentParser:
    """The whole ``obshell-sdk`` parser."""
    p = Parser(prog="obshell-sdk", description="Talk to an obshell agent: upgrade it or "
                "its cluster's OceanBase, follow and operate\nits tasks, roll upgrades out "
                "over many clusters.",
                epilog=_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"obshell-sdk {__version__}",
                   help="print the SDK's version and exit")
    _globals(p, top=True)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND",
                           parser_class=Parser)
    _sub(sub, "info", help="the agent's identity and version (no password needed)")
    up = _sub(sub, "upgrade", help="upgrade obshell on the cluster's agents", words={
        "ob": "OceanBase's own upgrade is a command of its own: obshell-sdk upgrade-ob VERSION "
              "RELEASE (upgrade VERSION RELEASE upgrades obshell)",
        "agent": "upgrade VERSION RELEASE upgrades the agents (obshell): drop 'agent'"})
    up.add_argument("version", metavar="VERSION", type=version_word("upgrade"),
                    help="target obshell version, e.g. 4.2.1.1 (from the RPM's file name: "
                    "obshell-VERSION-RELEASE.ARCH.rpm)")
    up.add_argument("release", metavar="RELEASE", help="target release, e.g. "
                    "101000062023110109.el7 (from the RPM's file name, as VERSION)")
    up.add_argument("--upgrade-dir", metavar="DIR",
                    help="directory on the agents (default: <obshell home>/upgrade)")
    up.add_argument("--check", action="store_true", help="run only the pre-check DAG, to its end "
                    "(implies --wait: the exit code says whether the check passed)")
    up.add_argument("--package", metavar="RPM", help="obshell RPM to upload first; then "
                    "check, upgrade, follow and confirm the new version (implies --wait)")
    up.add_argument("--upload-timeout", type=UPLOAD_SECONDS, metavar="SECONDS", help="seconds the "
                    "--package upload may take (default 600, or the file at 1 MiB/s)")
    _follow_options(up, "follow the task to its end")
    add_ob_parser(sub, _sub, _follow_options, UPLOAD_SECONDS, version_word("upgrade-ob"))
    _add_task_parser(sub)
    add_package_parser(sub, _sub, UPLOAD_SECONDS)
    add_rollout_parser(sub, lambda parent, name, **kw: _sub(
        parent, name, agent=False, tls=name != "rollout", **kw), SECONDS, UPLOAD_SECONDS,
        _at_least, version_word)
    return p
