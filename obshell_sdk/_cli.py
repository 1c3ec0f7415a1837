"""Command line: ``python -m obshell_sdk`` / ``obshell-sdk`` (``obshell-sdk --help``).

Passwords come from ``OBSHELL_PASSWORD`` / ``OBSHELL_AGENT_PASSWORD`` or a prompt, never from
the command line. The grammar and the exit codes are in ``_cli_parser``, what is written in
``_cli_output``, exit codes and hints for errors in ``_cli_errors``, how a task created or
followed is shown in ``_cli_follow``; this module runs the commands (SIGTERM taken as
Ctrl-C is, while they run): ``info`` and ``upgrade`` itself, the others in a module each
(``_cli_task``, ``_cli_ob``, ``_cli_package``, ``_cli_rollout``).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from types import FrameType
from typing import Optional

from ._address import check_host
from ._auth import PasswordAuth
from ._cli_errors import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TERMINATED,
    RESTARTING,
    cli_words,
    error_fields,
    exit_code,
    said,
)
from ._cli_follow import ending_shown, show_created
from ._cli_interrupt import interrupted
from ._cli_ob import check_ob_args, run_upgrade_ob
from ._cli_output import Output, Progress, Uploads, agent_command, aimed, tls_words
from ._cli_package import check_package_args, run_package
from ._cli_parser import DEFAULT_TIMEOUT, parse
from ._cli_rollout import run_rollout
from ._cli_task import check_task_args, run_task
from ._client import ObshellClient
from ._config import (
    Environment,
    empty_passwords_said,
    prompted_auth_from_env,
    settings_from_env,
)
from ._endpoints import UpgradeAgentRequest
from ._exceptions import InvalidArgumentError, ObshellError
from ._render import agent_line
from ._text import is_terminal, printable

__all__ = ["exit_code", "main"]


def _environment(args: argparse.Namespace) -> Environment:
    """The environment with the options given on the command line written over it."""
    if args.host is not None:  # named as the option it came from, in the command line's words
        try:
            check_host(args.host, port_as="--port", https_as="--https")
        except InvalidArgumentError as exc:
            raise InvalidArgumentError("--host", str(exc).partition(": ")[2]) from None
    port = None if args.port is None else str(args.port)
    given = {"OBSHELL_HOST": args.host, "OBSHELL_PORT": port,
             "OBSHELL_CA_BUNDLE": args.ca_bundle,
             "OBSHELL_HTTPS": "1" if args.https or args.ca_bundle else None,  # a bundle: https
             "OBSHELL_MIN_KEY_BITS": args.min_key_bits}
    return Environment({**os.environ, **{k: v for k, v in given.items() if v is not None}})


def _command(args: argparse.Namespace) -> str:
    """``obshell-sdk`` and the agent options given on the command line.

    The commands the CLI suggests start so: the environment reaches them alike, these
    options would not.
    """
    return agent_command(args.host, args.port, tls_words(args))


def _client(args: argparse.Namespace, needs_auth: bool,
            signed: Optional[list[PasswordAuth]] = None) -> ObshellClient:
    """The client ``ObshellClient.from_env`` makes, options winning.

    A password is asked for only when the environment has none and the command signs; the
    auth made is put in ``signed`` (when given). No frame here holds a password in a local:
    a prompted one goes straight into ``PasswordAuth``. A bad host or port is reported
    before a password is asked for.
    """
    env = _environment(args)
    if not needs_auth:
        return ObshellClient.from_env(env)
    settings_from_env(env)  # only to refuse a bad host or port before the prompt
    auth = prompted_auth_from_env(env, "root@sys password: ")
    if signed is not None:
        signed.append(auth)
    return ObshellClient.from_env(env, auth=auth)


def _run(args: argparse.Namespace, out: Output, progress: Progress,
         signed: Optional[list[PasswordAuth]] = None) -> int:
    if args.command == "rollout":
        return run_rollout(args, out.stdout, _environment(args))
    if args.command == "info":
        with _client(args, needs_auth=False) as client:
            info = client.info()
        out.value(info, agent_line(client.agent, info))
        return EXIT_OK
    with _client(args, needs_auth=True, signed=signed) as client:
        if args.command == "package":
            return run_package(client, args, out, progress)
        if args.command == "upgrade":
            return _upgrade(client, args, out, progress)
        if args.command == "upgrade-ob":
            return run_upgrade_ob(client, args, out, progress)
        return run_task(client, args, out, progress)


def _upgrade(client: ObshellClient, args: argparse.Namespace, out: Output,
             progress: Progress) -> int:
    if args.package:
        with ending_shown(out, progress):
            result = client.run_agent_upgrade(
                args.version, args.release, package=args.package, upgrade_dir=args.upgrade_dir,
                timeout=_timeout(args), on_progress=progress, upload_timeout=args.upload_timeout,
                on_upload=Uploads(progress, client.agent))
        out.dag(result.upgrade)
        return EXIT_OK
    start = client.check_agent_upgrade if args.check else client.upgrade_agent
    task = start(args.version, args.release, args.upgrade_dir)
    # a check's exit code says how the check ended: it is followed
    return show_created(task, out, progress, wait=args.wait or args.check,
                        timeout=_timeout(args))


def _timeout(args: argparse.Namespace) -> float:
    return DEFAULT_TIMEOUT if args.timeout is None else float(args.timeout)


class _Notes(logging.Handler):
    """The library's warnings (a poll failing, a lost reply looked up) as notes, in CLI words.

    Not while an interrupt is being handled: the CLI says what Ctrl-C left behind itself.
    """

    def __init__(self, progress: Progress, exists: bool = False) -> None:
        super().__init__(logging.WARNING)
        self.progress, self.exists = progress, exists

    def emit(self, record: logging.LogRecord) -> None:
        """Write one record as a note (a stderr that fails never fails the SDK's work)."""
        if isinstance(sys.exc_info()[1], KeyboardInterrupt):
            return
        try:
            text = cli_words(record.getMessage())
            self.progress.note(text.replace(RESTARTING, "") if self.exists else text)
        except Exception:  # logging's contract: report it, never raise
            self.handleError(record)


class _PrintableFormatter(logging.Formatter):
    """Log lines carry the agent's texts: escape their control characters for the terminal."""

    def format(self, record: logging.LogRecord) -> str:
        return printable(super().format(record), keep_newlines=True)


def _check(args: argparse.Namespace) -> None:
    """Refuse what would be ignored, before anything is sent."""
    waits = (args.command == "upgrade" and (args.wait or args.check or args.package)) or (
        args.command == "task" and (args.action == "wait" or args.wait))
    if args.command in ("upgrade", "task") and args.timeout is not None and not waits:
        how = "use task wait ID" if args.command == "task" and args.action in (
            "list", "show") else "add --wait"
        raise InvalidArgumentError("--timeout", f"bounds a wait: {how} (or drop it)")
    if args.command == "upgrade":
        _check_upgrade(args)
    if args.command == "package":
        check_package_args(args)
    if args.command == "upgrade-ob":
        check_ob_args(args)
    if args.command == "task":
        check_task_args(args)


def _check_upgrade(args: argparse.Namespace) -> None:
    """``upgrade``'s options and the request's fields, before the password is asked for."""
    if args.upload_timeout is not None and not args.package:
        raise InvalidArgumentError("--upload-timeout", "bounds the --package upload: give "
                                   "--package too, or drop it")
    if args.package and args.check:
        raise InvalidArgumentError("--package", "uploads, then checks and upgrades; with "
                                   "--check, upload first (or drop --check)")
    UpgradeAgentRequest(args.version, args.release, args.upgrade_dir)  # as the client will


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; returns the exit code."""
    args = parse(argv)
    if args.verbose:
        handler = logging.StreamHandler()
        handler.setFormatter(_PrintableFormatter("%(levelname)s %(name)s: %(message)s"))
        logging.basicConfig(level=logging.DEBUG, handlers=[handler])
    for stream in (sys.stdout, sys.stderr):  # agent text the terminal cannot encode: escaped
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")
    results = io.StringIO()  # written out at the end: one document, an error's if none
    out = Output(args.json, results, sys.stderr, _command(args))
    progress = Progress(out, tty=is_terminal(sys.stderr))
    # -v logs everything; a rollout's board shows each cluster's troubles itself.
    notes = None if args.verbose or args.command == "rollout" else _Notes(
        progress, getattr(args, "exists", False))
    if notes is not None:
        logging.getLogger("obshell_sdk").addHandler(notes)
    signed: list[PasswordAuth] = []  # the auth the command signs with, once made
    try:
        with sigterm_as_interrupt():
            _check(args)
            return _run(args, out, progress, signed)
    except ObshellError as exc:  # an empty password refused (set, or typed): said to be one
        empty = empty_passwords_said(Environment(), exc, *signed)
        return _failed(out, progress, exit_code(exc), said(args, exc, progress.seen) + empty,
                       error_fields(exc))
    except KeyboardInterrupt as exc:
        code = EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED
        left = None if progress.ended else progress.current or getattr(args, "id", None)
        said_then = interrupted(args, progress.current, progress.ended, progress.name,
                                uploaded=progress.uploaded, uploading=progress.uploading,
                                begun=progress.uploads_begun)
        return _failed(out, progress, code, said_then,
                       {"task_id": left} if left else {})  # running, or not known to end
    finally:
        progress.close()
        if notes is not None:
            logging.getLogger("obshell_sdk").removeHandler(notes)
        sys.stdout.write(results.getvalue())
        sys.stdout.flush()


def _failed(out: Output, progress: Progress, code: int, message: str,
            fields: dict[str, object]) -> int:
    """Say why the command failed; with ``--json`` and no result written, as a document."""
    progress.close()
    out.note(message)
    if out.as_json and not out.stdout.tell():
        out.value({"error": {"exit": code, "message": aimed(message, out.command), **fields}}, "")
    return code


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C is: what was under way is let go of, and said so."""


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While the command runs (in the main thread), SIGTERM raises :class:`Terminated`."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum: int, frame: Optional[FrameType]) -> None:
        raise Terminated

    before = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:  # None: a handler not set from Python, which cannot be put back
        signal.signal(signal.SIGTERM, signal.SIG_DFL if before is None else before)
