"""What an interrupted command (Ctrl-C, SIGTERM) leaves behind, and where to look next.

A command cut short may have stored packages, created a task or sent an operator; the line
it ends with says which of them are known to have happened, which may have, and the command
that shows where things stand. Nothing here is sent to the agent: it is said from what the
command saw before it was interrupted.
"""

from __future__ import annotations

import argparse
import shlex
from typing import Optional

from ._cli_errors import OPERATORS
from ._cli_next import pre_check, start_later
from ._dag import DagDetail
from ._text import printable

__all__ = ["interrupted"]


def interrupted(args: argparse.Namespace, task_id: Optional[str],
                ended: Optional[DagDetail] = None, name: Optional[str] = None, *,
                uploaded: Optional[int] = None, uploading: Optional[str] = None,
                begun: bool = False) -> str:
    """What an interrupted command leaves behind, and where to look (the last task seen).

    ``name`` is that task's: ``--package``'s pre-check, while it runs, means the upgrade was
    not started. ``uploaded`` is how many of its packages the agent stored (None: not known),
    ``uploading`` the one sent, ``begun`` that ``task retry``'s began (files checked first): no
    task is made (nor a retry sent) before the last one is stored.
    """
    if args.command == "rollout" and args.rollout != "status":
        return ("interrupted; upgrades already started keep running. See where each cluster "
                f"stands: obshell-sdk rollout status --journal {shlex.quote(args.journal)}; "
                "run the same command again to resume")
    if args.command in ("info", "rollout") or getattr(args, "action", None) == "list":  # read
        return "interrupted"
    if args.command == "package" and args.action == "upload":  # uploads only, in turn
        return _upload_interrupted(args, uploaded or 0, uploading)
    if args.command == "package":
        return "interrupted; the package may have been deleted: obshell-sdk package list"
    if task_id is None and _uploads_cut(args, uploaded, uploading, begun):  # no task, no retry
        return _upload_interrupted(args, uploaded or 0, uploading)
    if task_id is None and args.command == "task" and args.action in OPERATORS:
        return (f"interrupted while {args.action} of task {args.id} was under way: it may "
                f"have been applied; see where the task stands: obshell-sdk task show {args.id}")
    if task_id is None and args.command == "task" and args.id:
        return (f"interrupted before task {args.id} was read; whether it runs is not known: "
                f"obshell-sdk task show {args.id}")
    # upgrade[-ob] --package: upload, pre-check, upgrade
    check = pre_check(args)
    package = check is not None
    if ended is not None and not (package and ended.name == check):
        return f"interrupted after task {ended.id} ended: obshell-sdk task show {ended.id}"
    if ended is not None:  # --package's pre-check ended: the upgrade's POST comes next
        return (f"interrupted after pre-check {ended.id} ended; the upgrade's task may have "
                "been created, and keeps running: obshell-sdk task list shows it")
    if task_id is None:
        sent = (f"the {'packages' if args.command == 'upgrade-ob' else 'package'} may have "
                "been uploaded, and " if package else "")
        return (f"interrupted; {sent}a task the agent may have created keeps running: "
                "obshell-sdk task list shows it")
    if package and name == check:  # the pre-check runs, which takes no lock
        return (f"interrupted; pre-check {task_id} keeps running on the agent (it takes no "
                f"lock), and the upgrade was not started: {start_later(args, task_id)}")
    lock = "" if getattr(args, "check", False) else (  # a pre-check takes no lock
        " (an upgrade holds the cluster's lock until it succeeds, is rolled back or is skipped)")
    return (f"interrupted; task {task_id} keeps running on the agent{lock}. Follow it again: "
            f"obshell-sdk task wait {task_id} --exists; stop it: obshell-sdk task cancel "
            f"{task_id}")


def _uploads_cut(args: argparse.Namespace, uploaded: Optional[int],
                 uploading: Optional[str], begun: bool) -> bool:
    """Whether ``--package``'s uploads (``upgrade[-ob]``, ``task retry``) were cut short."""
    if uploading is not None:
        return True
    given = getattr(args, "package", None) or ()
    if uploaded is None or not given or (args.command == "task" and not (uploaded or begun)):
        return False  # task retry reads its task before its uploads (made if it failed)
    return uploaded < (1 if isinstance(given, str) else len(given))


def _upload_interrupted(args: argparse.Namespace, uploaded: int, uploading: Optional[str]
                        ) -> str:
    """Uploads cut short (``package upload``, ``--package``): what was stored; no task made.

    ``uploaded`` packages were stored, ``uploading`` (if any) was being sent; the files are
    all checked before the first is sent, so none stored and none sending is none sent.
    """
    given = args.items if args.command == "package" else args.package
    many = not isinstance(given, str) and len(given) > 1
    if uploading is not None:
        cut = f"while uploading {printable(uploading)} (the agent may or may not have stored it)"
    elif not uploaded:
        cut = "before any package was sent"
    elif many and uploaded < len(given):
        cut = f"after {uploaded} of the {len(given)} packages were stored, the others not sent"
    else:
        cut = "after every package given was stored"
    made = "" if args.command == "package" else "; no task was created"
    if args.command == "task":
        made = f"; {args.action} of task {args.id} was not sent"
    if uploading is None and not uploaded:
        return f"interrupted {cut}{made}: nothing was stored; start again with the same command"
    return (f"interrupted {cut}{made}. obshell-sdk package list shows the packages stored; "
            "start again with the same command")
