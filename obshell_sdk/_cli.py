"""Command line: ``python -m obshell_sdk`` / ``obshell-sdk``.

Passwords come from ``OBSHELL_PASSWORD`` / ``OBSHELL_AGENT_PASSWORD`` or a prompt, never from
the command line. Exit codes, for scripts to branch on:

====  ==========================================================================
0     done (the task, if followed, succeeded)
1     the task ended badly: failed, cancelled, rolled back
2     bad usage or input (nothing was sent)
3     the agent refused the credentials
4     the agent could not be reached, or polling it kept failing
5     the agent refused the call (another API error)
6     the wait's deadline passed (the task keeps running)
7     the agent's reply could not be read
8     outcome unknown: a task-creating call lost its reply and no task was found, or the
      task was created but its reply could not be read (its id is printed)
====  ==========================================================================

An operator (retry, rollback, skip, cancel) that was applied but whose task could not be
read back afterwards exits 0 with a warning on stderr.
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Callable, Optional, TextIO

from ._auth import PasswordAuth
from ._cli_rollout import add_rollout_parser, run_rollout
from ._client import ObshellClient
from ._config import DEFAULT_PORT, Environment
from ._dag import DagDetail
from ._exceptions import (
    ApiError,
    AuthError,
    DecodeError,
    InvalidArgumentError,
    ObshellError,
    OutcomeUnknownError,
    TaskError,
    TaskTimeoutError,
    TaskUnreachableError,
    TransportError,
)
from ._render import dag_text, printable, progress_line, to_jsonable
from ._task import DagTask

__all__ = ["main"]

EXIT_OK, EXIT_TASK, EXIT_USAGE, EXIT_AUTH, EXIT_UNREACHABLE, EXIT_API, EXIT_TIMEOUT = range(7)
EXIT_DECODE, EXIT_OUTCOME_UNKNOWN = 7, 8


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="obshell-sdk",
        description="Talk to an obshell agent. Passwords: OBSHELL_PASSWORD (root@sys), "
        "OBSHELL_AGENT_PASSWORD, else a prompt.",
    )
    # Unset options fall back to the OBSHELL_* variables, read by ObshellClient.from_env.
    p.add_argument("--host", help="the agent's host (default: OBSHELL_HOST)")
    p.add_argument("--port", help=f"the agent's port (default: OBSHELL_PORT, else {DEFAULT_PORT})")
    p.add_argument("--https", action="store_true", default=None,
                   help="use https (default: OBSHELL_HTTPS, else off)")
    p.add_argument("--ca-bundle", help="CA bundle to verify the agent's certificate "
                   "(default: OBSHELL_CA_BUNDLE)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("-v", "--verbose", action="store_true", help="log requests to stderr")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="show the agent's identity and version (no password needed)")
    up = sub.add_parser("upgrade", help="upgrade obshell on the cluster's agents")
    up.add_argument("version")
    up.add_argument("release")
    up.add_argument("--upgrade-dir")
    up.add_argument("--check", action="store_true", help="run only the upgrade pre-check")
    up.add_argument("--wait", action="store_true", help="follow the task to its end")
    up.add_argument("--package", help="obshell RPM to upload first; then check, upgrade, follow "
                    "and confirm the new version (implies --wait)")
    up.add_argument("--timeout", type=float, default=3600.0)
    task = sub.add_parser("task", help="show, wait for or operate on a task")
    task.add_argument("action", choices=["show", "wait", "retry", "rollback", "cancel", "skip"])
    task.add_argument("id")
    task.add_argument("--timeout", type=float, default=3600.0)
    task.add_argument("--wait", action="store_true", help="after an operator, follow the task")
    add_rollout_parser(sub)
    return p


class _Out:
    def __init__(self, as_json: bool, stream: TextIO) -> None:
        self.as_json = as_json
        self.stream = stream

    def dag(self, detail: DagDetail) -> None:
        if self.as_json:
            self.stream.write(json.dumps(to_jsonable(detail)) + "\n")
        else:
            self.stream.write(dag_text(detail))

    def progress(self, detail: DagDetail) -> None:
        if not self.as_json:
            sys.stderr.write(progress_line(detail) + "\n")


def _password(name: str, prompt: str, needed: bool) -> Optional[str]:
    value = os.environ.get(name)
    if value is not None or not needed:
        return value
    if not sys.stdin.isatty():
        raise InvalidArgumentError(name, f"set {name} (no terminal to prompt on)")
    return getpass.getpass(prompt)


def _environment(args: argparse.Namespace) -> Environment:
    """The environment with the options given on the command line written over it."""
    given = {"OBSHELL_HOST": args.host, "OBSHELL_PORT": args.port,
             "OBSHELL_CA_BUNDLE": args.ca_bundle, "OBSHELL_HTTPS": "1" if args.https else None}
    return Environment({**os.environ, **{k: v for k, v in given.items() if v is not None}})


def _client(args: argparse.Namespace, needs_auth: bool) -> ObshellClient:
    """The client, configured exactly as ``ObshellClient.from_env`` does, options winning.

    No frame here holds a password in a local: a prompted one goes straight into
    ``PasswordAuth``.
    """
    env = _environment(args)
    if not needs_auth:
        return ObshellClient.from_env(env, auth=None)
    if env.get("OBSHELL_PASSWORD") is None:
        return ObshellClient.from_env(env, auth=PasswordAuth(
            _password("OBSHELL_PASSWORD", "root@sys password: ", True) or "",
            env.get("OBSHELL_AGENT_PASSWORD")))
    return ObshellClient.from_env(env)


def _run(args: argparse.Namespace, out: _Out) -> int:
    if args.command == "rollout":
        return run_rollout(args, out.stream)
    if args.command == "info":
        with _client(args, needs_auth=False) as client:
            info = client.info()
        if out.as_json:
            out.stream.write(json.dumps(to_jsonable(info)) + "\n")
        else:
            out.stream.write(printable(
                f"{client.agent}: {info.identity}, obshell {info.version}, "
                f"{'agent password set' if info.security else 'no agent password'}") + "\n")
        return EXIT_OK
    with _client(args, needs_auth=True) as client:
        if args.command == "upgrade":
            return _upgrade(client, args, out)
        return _task(client, args, out)


def _upgrade(client: ObshellClient, args: argparse.Namespace, out: _Out) -> int:
    if args.package and not args.check:
        result = client.run_agent_upgrade(
            args.version, args.release, package=args.package, upgrade_dir=args.upgrade_dir,
            timeout=args.timeout, on_progress=out.progress,
        )
        out.dag(result.upgrade)
        return EXIT_OK
    start = client.check_agent_upgrade if args.check else client.upgrade_agent
    task = start(args.version, args.release, args.upgrade_dir)
    if task.snapshot is None:
        # Created (the agent named it), but the rest of its reply could not be read.
        sys.stderr.write(f"obshell-sdk: task {task.id} was created, but the agent's reply "
                         f"could not be read; follow it with: obshell-sdk task show {task.id}\n")
        out.stream.write(f"{task.id}\n")
        return EXIT_OUTCOME_UNKNOWN
    if not args.wait:
        out.dag(task.snapshot)
        return EXIT_OK
    return _follow(task, args, out)


def _task(client: ObshellClient, args: argparse.Namespace, out: _Out) -> int:
    task = client.task(args.id)
    if args.action == "show":
        out.dag(task.refresh())
        return EXIT_OK
    if args.action == "wait":
        return _follow(task, args, out)
    actions: dict[str, Callable[[], object]] = {
        "retry": task.retry, "rollback": task.rollback, "cancel": task.cancel,
        "skip": task.skip,
    }
    actions[args.action]()
    if args.wait:
        return _follow(task, args, out)
    if task.snapshot is None:
        # The operator was applied; only the refresh after it failed.
        sys.stderr.write(f"obshell-sdk: warning: {args.action} applied to task {task.id}, but "
                         f"it could not be read back yet; see: obshell-sdk task show {task.id}\n")
        return EXIT_OK
    out.dag(task.snapshot)
    return EXIT_OK


def _follow(task: DagTask, args: argparse.Namespace, out: _Out) -> int:
    try:
        detail = task.result(args.timeout, on_progress=out.progress)
    except TaskError as exc:
        if exc.detail is not None:
            out.dag(exc.detail)
        raise
    out.dag(detail)
    return EXIT_OK


def exit_code(exc: ObshellError) -> int:
    """The exit code for an error (see the module docstring)."""
    table: Sequence[tuple[type[ObshellError], int]] = (
        (InvalidArgumentError, EXIT_USAGE), (AuthError, EXIT_AUTH),
        (OutcomeUnknownError, EXIT_OUTCOME_UNKNOWN),
        (TaskTimeoutError, EXIT_TIMEOUT), (TaskUnreachableError, EXIT_UNREACHABLE),
        (TaskError, EXIT_TASK), (TransportError, EXIT_UNREACHABLE), (DecodeError, EXIT_DECODE),
        (ApiError, EXIT_API),
    )
    for cls, code in table:
        if isinstance(exc, cls):
            return code
    return EXIT_API


class _PrintableFormatter(logging.Formatter):
    """Log lines carry the agent's texts: escape their control characters for the terminal."""

    def format(self, record: logging.LogRecord) -> str:
        return printable(super().format(record), keep_newlines=True)


_OPTIONS = {"OBSHELL_HOST": "--host", "OBSHELL_PORT": "--port", "OBSHELL_HTTPS": "--https",
            "OBSHELL_CA_BUNDLE": "--ca-bundle"}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; returns the exit code."""
    args = _parser().parse_args(argv)
    if args.verbose:
        handler = logging.StreamHandler()
        handler.setFormatter(_PrintableFormatter("%(levelname)s %(name)s: %(message)s"))
        logging.basicConfig(level=logging.DEBUG, handlers=[handler])
    out = _Out(args.json, sys.stdout)
    try:
        return _run(args, out)
    except ObshellError as exc:
        option = _OPTIONS.get(getattr(exc, "argument", ""))
        hint = f" (or pass {option})" if option else ""
        sys.stderr.write(f"obshell-sdk: {printable(str(exc), keep_newlines=True)}{hint}\n")
        return exit_code(exc)
    except KeyboardInterrupt:
        sys.stderr.write("obshell-sdk: interrupted; any task keeps running on the agent\n")
        return 130
