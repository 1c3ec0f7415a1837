"""What to do next with a failed task at the command line, or after obshell refused an operator.

A failed (or cancelled) upgrade holds the cluster's lock until it is retried, rolled back or
skipped; its steps decide which of them obshell takes (:mod:`._dag_steps`). The "Next:" line
names only those when they are known, and an operator obshell refused is said with what the
task takes instead. An upgrade's ``--package`` runs a pre-check first: one that did not pass
means the upgrade was never started, and how to start it once the pre-check has passed. A
pre-check that failed holds no lock: fix the cause and run it again.
"""

from __future__ import annotations

import argparse
from typing import Optional

from ._dag import DagDetail, Operator
from ._dag_steps import failed_task_operators
from ._endpoints import AGENT_UPGRADE_CHECK, OB_UPGRADE_CHECK, UpgradeAgentRequest
from ._errcodes import OperatorRefusedError
from ._exceptions import ObshellError
from ._render import DONE
from ._task_errors import TaskCancelledError, TaskError, TaskFailedError

__all__ = ["check_failed", "is_refusal", "next_line", "not_started", "pre_check",
           "refusal_advice", "start_later"]

#: The operators that free a failed task's lock, as the ``task`` actions name them.
_ACTIONS = {Operator.RETRY: "retry", Operator.ROLLBACK: "rollback", Operator.PASS: "skip"}
_OPERATORS = {**{action: op for op, action in _ACTIONS.items()}, "cancel": Operator.CANCEL}


def is_refusal(exc: ObshellError) -> bool:
    """Whether the agent refused an operator for the task's state or steps (nothing changed)."""
    return isinstance(exc, OperatorRefusedError)


def next_line(task_id: str, detail: Optional[DagDetail], refused: str = "") -> str:
    """The "Next:" line (after a newline) for a failed or cancelled task.

    ``Next: obshell-sdk task retry ID --wait (or rollback)``: only the operators its steps
    allow when they are known (never ``refused``, the one the agent just refused); else all
    three, "where its steps allow".
    """
    known = None if detail is None else failed_task_operators(detail)
    if known is None:
        actions = [a for a in _ACTIONS.values() if a != refused]
        rest = f" (or {', '.join(actions[1:])}, where its steps allow)"
    else:
        actions = [_ACTIONS[op] for op in known if _ACTIONS[op] != refused]
        others = [a for a in ("rollback", "skip") if a not in actions]
        rest = (f" (or {' or '.join(actions[1:])})" if len(actions) > 1 else
                f" (its steps allow {'neither ' if others[1:] else 'no '}{' nor '.join(others)})"
                if others else "")
    if not actions:
        return ""
    return f"\nNext: obshell-sdk task {actions[0]} {task_id} --wait{rest}"


def refusal_advice(action: str, task_id: str, exc: ObshellError,
                   seen: Optional[DagDetail]) -> str:
    """What to do after the agent refused ``action`` (``exc``), from the task as read before.

    ``". <sentence>"`` followed by a "Next:" line, or ``""`` for another error.
    """
    if not isinstance(exc, OperatorRefusedError):
        return ""
    if not exc.by_step:  # its state changed since it was read
        return (f". The task changed since it was read; nothing was changed: see where it "
                f"stands: obshell-sdk task show {task_id}")
    said = (f". obshell does not allow {action} here: a step of the task cannot be "
            f"{DONE[_OPERATORS[action]] if action in _OPERATORS else action}; nothing was "
            "changed")
    if action == "cancel":  # it runs: a step that takes no CANCEL
        return said + (f"\nNext: wait for it to end: obshell-sdk task wait {task_id} (if it "
                       "fails, retry, rollback or skip it, where its steps allow)")
    return said + next_line(task_id, seen, refused=action)


def not_started(args: argparse.Namespace, exc: ObshellError) -> str:
    """``--package``'s pre-check did not pass: the upgrade was never started, a line says."""
    check = pre_check(args)
    if check is None or not isinstance(exc, TaskError) or exc.detail is None \
            or exc.detail.name != check:
        return ""
    if isinstance(exc, (TaskFailedError, TaskCancelledError)):
        return "\nThe upgrade was not started; once the cause is fixed, run the command again."
    return "\nThe upgrade was not started: " + start_later(args, exc.task_id)


def check_failed(args: argparse.Namespace, exc: ObshellError, said: str) -> str:
    """``--check``'s pre-check failed (or was cancelled): the "Next:" line, unless ``said`` has one.

    It holds no lock, so no operator need free it (one that lacked a package has its own
    line already: retry it with the package).
    """
    if args.command not in _PRE_CHECKS or not getattr(args, "check", False) or \
            not isinstance(exc, (TaskFailedError, TaskCancelledError)) or "\nNext: " in said:
        return ""
    return (f"\nNext: fix the cause, then run the pre-check again (the same command): it holds "
            f"no lock; obshell-sdk task show {exc.task_id} shows its logs")


def pre_check(args: argparse.Namespace) -> Optional[str]:
    """The name of the pre-check an upgrade command's ``--package`` runs; None without it."""
    if args.command not in _PRE_CHECKS or not getattr(args, "package", None):
        return None
    return _PRE_CHECKS[args.command].dag_name(UpgradeAgentRequest(args.version, args.release))


def start_later(args: argparse.Namespace, check_id: str) -> str:
    """How to start the upgrade once ``--package``'s pre-check, still running, has passed."""
    uploaded = "packages are" if args.command == "upgrade-ob" else "package is"
    drop = "--package" + (" and --upload-timeout" if args.upload_timeout is not None else "")
    return (f"once pre-check {check_id} has passed (obshell-sdk task wait {check_id} "
            f"--exists), start it with the same command without {drop} (the {uploaded} "
            "uploaded), and with --wait")


#: The pre-check each upgrade command's ``--package`` runs before the upgrade.
_PRE_CHECKS = {"upgrade": AGENT_UPGRADE_CHECK, "upgrade-ob": OB_UPGRADE_CHECK}
