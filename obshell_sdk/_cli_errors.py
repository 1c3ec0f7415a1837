"""Errors at the command line: exit codes (of each error class, of SIGTERM), hints in CLI words.

The library's messages end with what to do next in Python (``client.task('11').wait()``);
a person at a shell is told the ``obshell-sdk`` command instead. :data:`HINTS` translates the
hints written into messages, :data:`CLASS_HINTS` those of the error classes (``hint``); a
test checks that no error the CLI prints names a Python method or ``PasswordAuth``.
:func:`said` adds what only the command knows: its task, its options (what an interrupted
command leaves behind is :mod:`._cli_interrupt`'s).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from typing import Optional

from ._cli_next import check_failed, is_refusal, next_line, not_started, refusal_advice
from ._config import refused_variable
from ._dag import DagDetail
from ._endpoints import holds_lock
from ._errcodes import unknown_route
from ._exceptions import (
    ApiError,
    AuthDialectError,
    AuthError,
    AuthExpiredError,
    ConnectError,
    DecodeError,
    InvalidArgumentError,
    NotFoundError,
    ObshellError,
    OutcomeUnknownError,
    PackageChangedError,
    PackageDamagedError,
    PackageMissingError,
    PasswordKindError,
    TaskNotFoundError,
    TransportError,
    UnderMaintenanceError,
    WeakKeyError,
    WrongPasswordError,
)
from ._package_calls import probe_lost
from ._rollout_report import HINT_CALLS, RolloutStoppedError
from ._task_errors import (
    TaskCancelledError,
    TaskError,
    TaskFailedError,
    TaskStateError,
    TaskTimeoutError,
    TaskUnreachableError,
)
from ._text import printable
from ._transport_errors import reply_lost
from ._upload import NEW_UPLOAD, OLD_UPLOAD

__all__ = ["CLASS_HINTS", "EXIT_STATE", "EXIT_TERMINATED", "HINTS", "OPERATORS", "RESTARTING",
           "cli_message", "cli_words", "error_fields", "exit_code", "said"]

(EXIT_OK, EXIT_TASK, EXIT_USAGE, EXIT_AUTH, EXIT_UNREACHABLE, EXIT_API, EXIT_TIMEOUT,
 EXIT_DECODE, EXIT_OUTCOME_UNKNOWN, EXIT_STATE, EXIT_NOT_FOUND, EXIT_LOCKED) = range(12)
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143  # 128 + SIGTERM, as a shell reports a process the signal ended

#: A call on a rollout target's client in its error's hints (``ObshellClient('h', 2886,
#: auth=...).info()``), said as one on ``client`` before :data:`HINTS` say it as a command.
_TARGET_CALL = re.compile(rf"\bObshellClient\([^()]*\)\.(?={HINT_CALLS})")

#: Python hints in the library's messages and the command that does the same.
HINTS: Sequence[tuple[str, str]] = (
    (r"client\.task\('([^']*)', exists=True\)\.wait\(\)", r"obshell-sdk task wait \1 --exists"),
    (r"client\.task\('([^']*)'\)\.wait\(\)", r"obshell-sdk task wait \1"),
    (r"Rollout\(\.\.\., https=True\)", "--https"),
    (r"client\.task\('([^']*)'\)\.refresh\(\)", r"obshell-sdk task show \1"),
    (r"client\.unfinished_dags\(\) and client\.last_maintenance_dag\(\)",
     "obshell-sdk task list"),
    # UnderMaintenanceError's hint: one copy, its calls said as commands
    (r"client\.last_maintenance_dag\(\)", "obshell-sdk task list"),
    (r"client\.task\(dag\.id\)\.wait\(\)", "obshell-sdk task wait ID"),
    (r"client\.task\(dag\.id\)\.retry\(\), \.rollback\(\) or \.skip\(\)",
     "obshell-sdk task retry|rollback|skip ID"),
    (r"client\.info\(\)", "obshell-sdk info"),
    (r"client\.packages\(\) lists it with its pkg_id, which client\.delete_package\(\) takes",
     "obshell-sdk package list shows it with its id, which obshell-sdk package delete takes"),
    (r"client\.delete_package\((\w+)\)", r"obshell-sdk package delete \1"),
    (r"client\.packages\(\) lists it", "obshell-sdk package list shows it"),
    (r"client\.unfinished_dags\(\) lists", "obshell-sdk task list lists"),
    (r"client\.cluster_dags\(\), or its dashboard", "obshell-sdk task list --all"),
    (r"upload it \(client\.upload_package\(path\)\), then retry the task",
     "upload it, then retry the task (obshell-sdk task retry ID --package RPM does both)"),
    (r"run the rollout again with journal '[^']*' to resume it", "run the same command again "
     "to resume it"),
    (r"Running the rollout again uploads it", "Running the same command again uploads it"),
    (r"the error's \.report says", "the report on stdout says"),
    (r"run the upload \(or the upgrade call or rollout that uploaded it\) again",
     "run the command again"),
    (r"use PasswordAuth\(\.\.\., min_key_bits=512\) \(with ObshellClient\.from_env, set "
     r"OBSHELL_MIN_KEY_BITS=512\)",
     "pass --min-key-bits 512 (or set OBSHELL_MIN_KEY_BITS=512)"),
    (r"check https=, verify= \(CA bundle\) and cert=",
     "check --https and --ca-bundle (OBSHELL_HTTPS, OBSHELL_CA_BUNDLE)"),
    (r"is https= right\?", "is --https (OBSHELL_HTTPS) right?"),
    (r" \(HTTP_PROXY, HTTPS_PROXY or ALL_PROXY, in either case, or a given session's proxies\)",
     " (HTTP_PROXY, HTTPS_PROXY or ALL_PROXY, in either case)"),
    (r"or pass ObshellClient\(\.\.\., trust_env=False\)", "or unset those variables"),
)

#: The part of "not found"'s hint that ``--exists`` has followed already.
RESTARTING = (" If you started a task and its agent is restarting, wait for it: obshell-sdk task "
              "wait ID --exists")

#: The variable to set for a refused password: either, unless the agent said which
#: (:func:`refused_variable`, by the error code of the password it refused).
_NAMED = {"OBSHELL_PASSWORD": "OBSHELL_PASSWORD (root@sys)",
          "OBSHELL_AGENT_PASSWORD": "OBSHELL_AGENT_PASSWORD (the agent password)"}
_EITHER = " or ".join(_NAMED.values())

#: The hints of error classes (``ApiError.hint``, in Python words) as the CLI says them;
#: the most specific class first.
CLASS_HINTS: Sequence[tuple[type[ApiError], str]] = (
    (WrongPasswordError, f"The password was refused: set the right one in {_EITHER}"),
    (PasswordKindError, "Set OBSHELL_AGENT_PASSWORD when the agent has an agent password, "
     "else OBSHELL_PASSWORD (root@sys)"),
    (AuthExpiredError, "The clocks disagree: sync this machine's clock with the agent's"),
    (AuthDialectError, "A proxy between may have dropped the header: reach the agent "
     "without one (unset HTTP_PROXY, HTTPS_PROXY and ALL_PROXY, in either case); or the agent "
     "takes another auth dialect than its /api/v1/info says (obshell-sdk info shows its "
     "version)"),
    (AuthError, "Check OBSHELL_PASSWORD and OBSHELL_AGENT_PASSWORD"),
    (TaskNotFoundError, "Check the task id; obshell-sdk task list shows the unfinished tasks."
     + RESTARTING),
    (PackageChangedError, "The file changed while it was sent (is something still writing "
     "it?), or its bytes were altered on the way; this file was not stored: make sure nothing "
     "is writing it, then run the command again"),
    (PackageDamagedError, "The file is damaged or changed: check it (rpm -K FILE) or download "
     "it again, then run the command again"),
    (PackageMissingError, "Upload the packages it names first: give each RPM with --package "
     "(OceanBase CE needs oceanbase-ce and oceanbase-ce-libs), then run the command again"),
)

#: Python arguments as the command line's options and arguments name them (``path`` is a
#: --package RPM's; the target's ``VERSION`` and ``RELEASE``).
_FLAGS = {name: "--" + name.replace("_", "-") for name in (
    "journal", "mode", "upgrade_dir", "parallel", "canary", "max_failures", "timeout",
    "upload_timeout", "package")} | {"path": "--package", "packages": "--package",
                                      "verify": "--ca-bundle", "version": "VERSION",
                                      "release": "RELEASE"}

#: Python argument names as the command line names them (the task id is its ``ID``).
_ARGUMENTS = _FLAGS | {"dag_id": "ID"}

_OPTIONS = {"OBSHELL_HOST": "--host", "OBSHELL_PORT": "--port", "OBSHELL_HTTPS": "--https",
            "OBSHELL_CA_BUNDLE": "--ca-bundle", "OBSHELL_MIN_KEY_BITS": "--min-key-bits"}


def exit_code(exc: ObshellError) -> int:
    """The exit code for an error (``obshell-sdk --help`` lists them)."""
    changes = getattr(exc, "method", "GET") not in ("GET", "HEAD", "")
    if changes and reply_lost(exc) and not probe_lost(exc):  # a lost reply, or a 502 page
        return EXIT_OUTCOME_UNKNOWN  # the agent may have done it (an operator, an upload)
    if is_refusal(exc):  # the agent's: the operator does not apply, as our own refusal
        return EXIT_STATE
    if isinstance(exc, NotFoundError) and not re.match(r"/api/v1/task/\w+/\d", exc.path):
        return EXIT_API if exc.status else EXIT_NOT_FOUND  # naming no task; 0: a list lacked it
    table: Sequence[tuple[type[ObshellError], int]] = (
        (InvalidArgumentError, EXIT_USAGE), (AuthError, EXIT_AUTH), (WeakKeyError, EXIT_AUTH),
        (OutcomeUnknownError, EXIT_OUTCOME_UNKNOWN), (TaskStateError, EXIT_STATE),
        (TaskTimeoutError, EXIT_TIMEOUT), (TaskUnreachableError, EXIT_UNREACHABLE),
        (TaskError, EXIT_TASK), (TransportError, EXIT_UNREACHABLE), (DecodeError, EXIT_DECODE),
        (TaskNotFoundError, EXIT_NOT_FOUND), (UnderMaintenanceError, EXIT_LOCKED),
        (ApiError, EXIT_API), (RolloutStoppedError, EXIT_OUTCOME_UNKNOWN),
    )
    for cls, code in table:
        if isinstance(exc, cls):
            return code
    return EXIT_API


def cli_words(text: str, refused: Optional[str] = None) -> str:
    """A library text with its Python hints said as commands, escaped.

    The hints written into messages (:data:`HINTS`), and those of error classes
    (:data:`CLASS_HINTS`) wherever they appear: an error quoted in another's message too.
    ``refused``: the variable of the password the agent said it refused
    (:func:`refused_variable`), the only one a refused password's hint then names. A rollout
    target's client in them is read as ``client`` (the command names its agent: ``aimed``).
    """
    text = _TARGET_CALL.sub("client.", text)
    for cls, said in CLASS_HINTS:
        text = text.replace(cls.hint, said)
    for pattern, command in HINTS:
        text = re.sub(pattern, command, text)
    text = text.replace(_EITHER, _NAMED.get(refused or "", _EITHER))
    return printable(text, keep_newlines=True)


def cli_message(exc: ObshellError) -> str:
    """The error as the CLI prints it: escaped, with hints naming CLI commands and options."""
    text = str(exc)
    if isinstance(exc, ApiError) and is_refusal(exc):  # said the CLI's way: refusal_advice
        text = text.removesuffix(". " + exc.hint)
    if isinstance(exc, InvalidArgumentError) and exc.argument == "dag_id":
        text = text.removeprefix("dag_id: ")  # the ID argument: its Python name means nothing here
    if isinstance(exc, TaskStateError):
        text = text.replace("Refresh it (refresh(force=True)) if it may have changed",
                            f"See where it stands: obshell-sdk task show {exc.task_id}")
    if isinstance(exc, TaskFailedError) and "client.upload_package(path)" in text:
        text += f"\nNext: obshell-sdk task retry {exc.task_id} --package RPM --wait"
    elif isinstance(exc, (TaskFailedError, TaskCancelledError)) and exc.detail is not None \
            and holds_lock(exc.detail):  # a cancelled upgrade holds the lock too
        text += next_line(exc.task_id, exc.detail)
    option = _OPTIONS.get(getattr(exc, "argument", ""))
    if option:
        text += f" (or pass {option})"
    if isinstance(exc, InvalidArgumentError) and exc.argument in _FLAGS:
        text = _FLAGS[exc.argument] + text.removeprefix(exc.argument)  # the option's name
    return cli_words(text, refused_variable(exc))  # the password the agent said it refused


def error_fields(exc: ObshellError) -> dict[str, object]:
    """What a script branches on, in ``--json``'s error document: never in the message only.

    ``argument`` is named as the command line names it (``--package``, ``ID``).
    """
    fields: dict[str, object] = {"type": type(exc).__name__}
    for name in ("status", "code", "err_code", "trace_id", "task_id", "argument", "agent", "file"):
        value = getattr(exc, name, None)
        if value:
            fields[name] = value if isinstance(value, int) else str(value)
    if isinstance(exc, InvalidArgumentError):
        fields["argument"] = _ARGUMENTS.get(exc.argument, exc.argument)
    if isinstance(exc, RolloutStoppedError) and exc.target:
        fields["agent"] = exc.target
    return fields


#: The task actions that send an operator, each a DagTask method of that name.
OPERATORS = ("retry", "rollback", "cancel", "skip")

#: obshell's refusal of a ROLLING upgrade: the cluster has too few zones for it.
_TOO_FEW_ZONES = "OB.Upgrade.UnableToRollingUpgrade"


def said(args: argparse.Namespace, exc: ObshellError, seen: Optional[DagDetail] = None) -> str:
    """The error in CLI words, with what to do next that only the command knows of.

    ``seen`` is the task a ``task`` operator was sent to, as read before: an operator the
    agent refused is said with the ones the task takes instead.
    """
    text = cli_message(exc)
    if getattr(args, "exists", False):  # "not found" was waited out already
        text = text.replace(RESTARTING, "")
    if args.command == "upgrade-ob" and args.check:  # a pre-check takes no --package
        text = text.replace("give each RPM with --package", "obshell-sdk package upload RPM...")
    advice = _advice(args, exc) or (args.command == "task" and refusal_advice(
        args.action, args.id, exc, seen)) or ""  # ". <sentence>", or ""
    if args.command == "task" and getattr(args, "package", None):  # uploaded, then refused
        advice = advice.replace("nothing was changed", "the retry was not applied; the "
                                "packages stay stored")
    text += advice[1:] if text.endswith(("?", ".")) else advice
    return text + not_started(args, exc) + check_failed(args, exc, text)


def _advice(args: argparse.Namespace, exc: ObshellError) -> str:
    """What to do next that only the command knows of."""
    if args.command == "upgrade-ob" and getattr(exc, "err_code", "") == _TOO_FEW_ZONES:
        return (". Upgrade it with --mode STOPSERVICE instead: all its servers restart at once, "
                "so it stops serving meanwhile")
    if args.command == "task" and args.action == "wait" and not args.exists \
            and isinstance(exc, ConnectError):  # the agent may be restarting (upgrades do)
        return (f". If the agent is restarting (its upgrade restarts it), wait through it: "
                f"obshell-sdk task wait {args.id} --exists")
    if exit_code(exc) == EXIT_OUTCOME_UNKNOWN:
        return _lost_advice(args, getattr(exc, "path", ""))
    if isinstance(exc, ApiError) and exc.path == _HISTORY and unknown_route(exc):
        return (". The agent keeps no task history it can list (obshell before 4.2.6: "
                "obshell-sdk info shows its version); obshell-sdk task list shows the unfinished "
                "tasks")
    return ""


#: ``task list --all``'s read, which agents before 4.2.6 do not route (a 404; 400 in 4.2.3).
_HISTORY = "/api/v1/task/dags/ob"


def _lost_advice(args: argparse.Namespace, path: str) -> str:
    """After a POST to ``path`` lost its reply: what the command did not do yet, and the step.

    An upload's own error says the package may have been stored and how to see it (the
    library's ``MAYBE_STORED``, in CLI words): here, what comes after it was not sent. (Not
    after the upload route's empty probe, :func:`probe_lost`: that stored nothing.) An
    operator's own error says it may have been applied, and where to look (``_operators``).
    """
    if args.command == "task":
        if path.startswith("/api/v1/task/"):  # the operator's POST: its error says it all
            return ""
        return f". The {args.action} was not sent: {_AGAIN}"  # an upload's
    if path not in (NEW_UPLOAD, OLD_UPLOAD):
        return ""
    if args.command in ("upgrade", "upgrade-ob"):
        return f". The upgrade was not started: {_AGAIN}"
    return ". Upload again only the RPMs package list lacks"  # package upload


#: After a lost upload reply, how to go on without storing a package twice.
_AGAIN = ("run the command again once package list shows what is stored, with --package only "
          "for the RPMs it lacks")
