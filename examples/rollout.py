"""Upgrade obshell over many clusters in one resumable run.

Against real agents (one per cluster, ``host:port`` a line in a file; the root@sys password,
the same for every cluster, from OBSHELL_PASSWORD)::

    OBSHELL_PASSWORD=... python examples/rollout.py --targets fleet.txt \\
        --journal fleet.db --version 4.2.1.1 --release 101000062023110109.el7

Kill it at any moment and run the same command again: it resumes from ``fleet.db``,
following the upgrades it started and never starting a second one on any cluster.

Without agents at hand, ``--demo`` starts eight fake agents (one fails its pre-check at stage
5, one restarts with a new key at stage 7 of its upgrade) and rolls the upgrade out over them::

    python examples/rollout.py --demo
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import os
import sys
import tempfile
from collections.abc import Iterator
from typing import Optional, TypedDict

from obshell_sdk import (
    ObshellError,
    PasswordAuth,
    Rollout,
    RolloutReport,
    RolloutStoppedError,
    TargetOutcome,
)

DEMO_PASSWORD = "demo-root-password"  # the fake agents' own, not a real one


class _Faults(TypedDict, total=False):
    """A demo agent's faults: keyword arguments of ``FakeAgent``."""

    fail_stage: int
    fail_times: int
    restart_at_stage: int
    restart_seconds: float
    restart_new_key_bits: int


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--demo", action="store_true", help="run over bundled fake agents")
    parser.add_argument("--targets", help="file with one 'host:port' a line")
    parser.add_argument("--journal", help="SQLite journal file (resumes when it exists)")
    parser.add_argument("--version", help="target obshell version, e.g. 4.2.1.1")
    parser.add_argument("--release", help="target release, e.g. 101000062023110109.el7")
    parser.add_argument("--parallel", type=int, default=4, help="clusters at once")
    parser.add_argument("--canary", type=int, default=1, help="clusters done first, alone")
    parser.add_argument("--max-failures", type=int, default=2,
                        help="start no new cluster after this many failures")
    args = parser.parse_args(argv)
    if not args.demo and not (args.targets and args.journal and args.version and args.release):
        parser.error("give --targets, --journal, --version and --release (or --demo)")
    return args


@contextlib.contextmanager
def demo_fleet() -> Iterator[list[str]]:
    """Eight fake agents: #3 fails its pre-check (stage 5), #5 restarts at its upgrade's 7."""
    from obshell_sdk.testing import FakeAgent

    special: dict[int, _Faults] = {
        3: {"fail_stage": 5, "fail_times": 99},
        5: {"restart_at_stage": 7, "restart_seconds": 1.0, "restart_new_key_bits": 1024},
    }
    with contextlib.ExitStack() as stack:
        agents = [stack.enter_context(FakeAgent(password=DEMO_PASSWORD, stage_seconds=0.15,
                                                **special.get(i, {}))) for i in range(8)]
        yield [f"127.0.0.1:{a.port}" for a in agents]


def read_targets(path: str) -> list[str]:
    """The targets file's ``host:port`` lines (``#`` starts a comment, as for the CLI)."""
    try:
        with open(path, encoding="utf-8") as f:
            kept = [line.split("#", 1)[0].strip() for line in f]
    except (OSError, UnicodeDecodeError) as exc:  # missing, unreadable, not text
        sys.exit(f"cannot read --targets {path}: {getattr(exc, 'strerror', None) or exc}")
    return [target for target in kept if target]


def read_password() -> str:
    """The root@sys password: OBSHELL_PASSWORD, else asked on the terminal (never echoed).

    An empty OBSHELL_PASSWORD is a password, sent as given, as for the CLI.
    """
    password = os.environ.get("OBSHELL_PASSWORD")
    if password is not None:
        return password
    if not sys.stdin.isatty():
        sys.exit("set OBSHELL_PASSWORD to the root@sys password (no terminal to ask on)")
    return getpass.getpass("root@sys password (every cluster): ")


def main(argv: Optional[list[str]] = None) -> int:
    """Run the rollout; exit 0 when every cluster succeeded (the demo: as designed), else 1.

    A usage error (a missing option) exits 2 with the usage line, as argparse does.
    """
    args = parse_args(argv)
    with contextlib.ExitStack() as stack:
        if args.demo:
            targets, password = stack.enter_context(demo_fleet()), DEMO_PASSWORD
            args.version = args.version or "4.3.1.0"  # the fake agents' target
            args.release = args.release or "101000012025010101.el7"
            journal = args.journal or os.path.join(
                stack.enter_context(tempfile.TemporaryDirectory()), "demo.db")
        else:
            targets, password = read_targets(args.targets), read_password()
            journal = args.journal
        try:  # a malformed target is refused here, as a malformed version or release is
            rollout = Rollout(targets, auth=PasswordAuth(password), journal=journal,
                              parallel=args.parallel, canary=args.canary,
                              max_failures=args.max_failures, progress=True)
            report = rollout.upgrade_agent(args.version, args.release)
        except RolloutStoppedError as exc:  # after work was done: where each target stands
            print(exc.report)
            sys.exit(f"rollout stopped: {exc}")
        except ObshellError as exc:
            sys.exit(f"rollout refused: {exc}")
        print(report)
        if args.demo:
            if not args.journal:
                print("(the demo's journal goes with its fake agents; give --journal FILE to "
                      "keep it for `obshell-sdk rollout status --journal FILE`)")
            return _demo_verdict(report)
        return 0 if report.ok else 1


def _demo_verdict(report: RolloutReport) -> int:
    """The demo fails one cluster on purpose: exit 0 when it ended exactly as designed."""
    failed = sorted(t for t, r in report.results.items() if r.outcome is TargetOutcome.FAILED)
    succeeded = report.count(TargetOutcome.SUCCEEDED)
    if len(failed) == 1 and succeeded == len(report.results) - 1:
        print(f"demo ended as designed: {failed[0]} failed on purpose, the others succeeded")
        return 0
    print("demo did not end as designed", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
