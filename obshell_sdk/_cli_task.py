"""``obshell-sdk task ACTION [ID]``: list tasks, show one, follow it, or apply an operator.

``list`` shows the unfinished tasks and the cluster's last maintenance task (``--all``: every
task of the cluster, finished ones too, such as a pre-check that failed); ``show`` reads
a task once, ``wait`` follows it to its end; ``retry``, ``rollback``, ``skip`` and ``cancel``
send that operator (checked against the task's state first), ``retry --package RPM`` after
uploading the packages a failed "Download all required packages" step found none of. An
operator that was applied but whose task could not be read back afterwards exits 0 with a
warning on stderr.
"""

from __future__ import annotations

import argparse
import re
from typing import Callable, Optional

from ._cli_errors import EXIT_OK
from ._cli_follow import follow
from ._cli_output import Output, Progress, Uploads
from ._cli_parser import DEFAULT_TIMEOUT
from ._client import ObshellClient
from ._dag import DagState
from ._exceptions import InvalidArgumentError, ObshellError
from ._targets import check_target_package
from ._task import DagTask
from ._upload import check_package_path
from ._workflow import upload_packages

__all__ = ["check_task_args", "run_task"]


def check_task_args(args: argparse.Namespace) -> None:
    """Refuse what ``task ACTION`` does not take, before anything is sent or asked for."""
    if args.action == "list" and args.id is not None:
        raise InvalidArgumentError("ID", "task list takes no task id")
    if args.action != "list" and not args.id:
        raise InvalidArgumentError(
            "ID", f"task {args.action} needs a task id; obshell-sdk task list shows them")
    if args.all and args.action != "list":
        raise InvalidArgumentError("--all", f"goes with task list (every task of the cluster); "
                                   f"task {args.action} reads one task")
    if args.action in ("list", "show") and args.wait:
        raise InvalidArgumentError("--wait", f"task {args.action} does not wait; use task wait")
    if args.package and args.action != "retry":
        raise InvalidArgumentError("--package", f"goes with task retry (upload, then retry); "
                                   f"task {args.action} uploads nothing")
    if args.upload_timeout is not None and not args.package:
        raise InvalidArgumentError("--upload-timeout", "bounds each --package upload: give "
                                   "--package too (task retry), or drop it")
    if args.exists and args.action != "wait":
        raise InvalidArgumentError("--exists", "only task wait waits out a restarting agent's "
                                   f"'not found'; task {args.action} reads the task once")


def run_task(client: ObshellClient, args: argparse.Namespace, out: Output,
             progress: Progress) -> int:
    """Run ``task ACTION``: the tasks, or the task as it stands or ended, to stdout."""
    if args.action == "list" and args.all:  # the cluster's history (GET /api/v1/task/dags/ob)
        out.task_history(client.cluster_dags())
        return EXIT_OK
    if args.action == "list":
        out.task_list(client.unfinished_dags(), client.last_maintenance_dag())
        return EXIT_OK
    task = client.task(args.id, exists=args.exists)  # progress.current: once it is read
    if args.action == "show":
        out.dag(task.refresh())
        return EXIT_OK
    if args.action == "wait":
        return follow(task, _timeout(args), out, progress)
    if args.package and task.refresh().state is DagState.FAILED:  # else retry() refuses
        _upload_for_retry(client, task, args.package, args.upload_timeout, progress)
    operate: Callable[[], object] = getattr(task, args.action)  # one of OPERATORS
    try:
        operate()  # checks the task's state (as read last), then sends the operator
    except ObshellError:
        progress.seen = task.snapshot  # as read before: a refusal says what it takes instead
        raise
    progress.current = task.id
    if args.wait:  # a task rolled back or cancelled as asked: done
        return follow(task, _timeout(args), out, progress, asked=args.action)
    if task.snapshot is None:
        # The operator was applied; only the refresh after it failed.
        out.note(f"warning: {args.action} applied to task {task.id}, but it could not be "
                 f"read back yet; see: obshell-sdk task show {task.id}")
        out.task_id(task.id)
        return EXIT_OK
    out.dag(task.snapshot)
    return EXIT_OK


def _timeout(args: argparse.Namespace) -> float:
    return DEFAULT_TIMEOUT if args.timeout is None else float(args.timeout)


def _upload_for_retry(client: ObshellClient, task: DagTask, packages: list[str],
                      lifetime: Optional[float], progress: Progress) -> None:
    """Upload ``--package`` for a retry; then read the task again, for retry()'s check.

    Each upload within ``lifetime`` (``--upload-timeout``; None: the default). The task read
    before proved the password. An agent upgrade's package must be the obshell RPM its DAG
    names, as ``upgrade --package`` checks. Every file is checked before any is sent.
    """
    target = _AGENT_DAG.match(task.name or "")
    progress.uploads_begun = True  # Ctrl-C from here on: the retry was not sent
    advice = (f"give the failed task's target package (obshell-sdk task show {task.id} names "
              "its version and release); nothing was uploaded, and the retry was not sent")
    try:
        paths = [check_target_package(p, *target.groups(), advice=advice) if target
                 else check_package_path(p) for p in packages]
    except InvalidArgumentError as exc:
        raise InvalidArgumentError("--package", str(exc).split(": ", 1)[1]) from None
    upload_packages(client, paths, lifetime, [Uploads(progress, client.agent)])
    task.refresh(force=True)


#: An agent upgrade's DAG, or its check's: its obshell version and release.
_AGENT_DAG = re.compile(r"Upgrade (?:check )?obshell ([^-\s]+)-(\S+)\Z")
