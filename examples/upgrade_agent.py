"""Upgrade an obshell agent and follow the upgrade to its end.

Against a real agent, configured as ``ObshellClient.from_env`` reads it: OBSHELL_HOST and
OBSHELL_PORT (or --host and --port), OBSHELL_PASSWORD (or a prompt) for the root@sys password,
OBSHELL_AGENT_PASSWORD if the agent has one, OBSHELL_HTTPS and OBSHELL_CA_BUNDLE for TLS (or
--https), OBSHELL_MIN_KEY_BITS for an agent with a 512-bit key. With ``--package`` it uploads
the target's RPM and runs the pre-check before the upgrade (``client.run_agent_upgrade``, the
whole workflow in one call); without it, the cluster must hold the package already::

    OBSHELL_PASSWORD=... python examples/upgrade_agent.py --host 10.0.0.1 --port 2886 \\
        --version 4.2.1.1 --release 101000062023110109.el7 \\
        --package obshell-4.2.1.1-101000062023110109.el7.x86_64.rpm

Without an agent at hand, ``--demo`` starts the fake agent that ships with the SDK (it
restarts itself at stage 7, as a real one does, and comes back with a new key, as a real one
does only on its way from 4.4.1 or older to 4.4.2 or later) and runs the same upgrade,
saying what the SDK does about the restart and the new key (``-v`` shows every request)::

    python examples/upgrade_agent.py --demo
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import logging
import os
import sys
from collections.abc import Iterator
from typing import Optional

from obshell_sdk import (
    DagDetail,
    InvalidArgumentError,
    ObshellClient,
    ObshellError,
    PasswordAuth,
    TaskError,
    UpgradeAgentRequest,
    UpgradePackageInfo,
)

DEMO_PASSWORD = "demo-root-password"  # the fake agent's own, not a real one


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--demo", action="store_true", help="run against the bundled fake agent")
    parser.add_argument("--host", help="the agent's host (default: OBSHELL_HOST)")
    parser.add_argument("--port", type=int,
                        help="the agent's port (default: OBSHELL_PORT, else 2886)")
    parser.add_argument("--https", action="store_true",
                        help="the agent serves TLS (default: OBSHELL_HTTPS)")
    parser.add_argument("--version", help="target obshell version, e.g. 4.2.1.1")
    parser.add_argument("--release", help="target release, e.g. 101000062023110109.el7")
    parser.add_argument("--package", metavar="RPM",
                        help="the target's obshell RPM: upload it and pre-check, then upgrade")
    parser.add_argument("--upgrade-dir", default=None, help="upgrade directory on the agents")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds to wait at most")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log the SDK's requests (and urllib3's) at DEBUG")
    args = parser.parse_args(argv)
    if args.demo:  # the fake agent's own target: it has no packages to check
        args.version = args.version or "4.3.1.0"
        args.release = args.release or "101000012025010101.el7"
    elif not ((args.host or os.environ.get("OBSHELL_HOST")) and args.version and args.release):
        parser.error("give --host (or OBSHELL_HOST), --version and --release; or --demo")
    try:  # the request model checks what the agent would get, before anything is sent
        UpgradeAgentRequest(args.version, args.release, args.upgrade_dir)
    except InvalidArgumentError as exc:
        parser.error(str(exc))
    return args


class FirstOfARun(logging.Filter):
    """Pass the first of records logged in a row from the same message, drop the rest."""

    def __init__(self) -> None:
        super().__init__()
        self._last: object = None

    def filter(self, record: logging.LogRecord) -> bool:
        """False for a record whose message template is the one before it."""
        repeated = record.msg == self._last
        self._last = record.msg
        return not repeated


def set_up_logging(args: argparse.Namespace) -> None:
    """Warnings by default; everything with -v; and in the demo, the SDK's own events.

    The demo's point is what the SDK rides through: the agent restarting mid-upgrade, its
    new key fetched, the agent back. Those are INFO events of the ``obshell_sdk`` logger
    (the fake agent's are ``obshell_sdk.testing``): shown here between the progress lines,
    once per run of the same event, without the HTTP library's DEBUG lines.
    """
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if args.demo and not args.verbose:
        handler = logging.StreamHandler(sys.stdout)  # in order with the progress lines
        handler.setFormatter(logging.Formatter("  %(name)s: %(message)s"))
        handler.addFilter(FirstOfARun())
        sdk = logging.getLogger("obshell_sdk")
        sdk.setLevel(logging.INFO)
        sdk.addHandler(handler)
        sdk.propagate = False  # said once, by this handler


def safe(text: str) -> str:
    """What the agent wrote, with what a terminal would act on (control, bidi) escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class ShowProgress:
    """Print each task's id and name once, then one line a poll: stage, state, step running."""

    def __init__(self) -> None:
        self._task: Optional[str] = None

    def __call__(self, detail: DagDetail) -> None:
        """Told of every snapshot of the pre-check and the upgrade, in turn."""
        if detail.id != self._task:
            self._task = detail.id
            print(f"task {detail.id}: {safe(detail.name)}", flush=True)
        node = detail.current_node
        step = f" {safe(node.name)}" if node else ""
        print(f"  [{detail.progress}] {detail.state}{step}", flush=True)


def show_upload(path: str, stored: Optional[UpgradePackageInfo]) -> None:
    """Print a line before the package is sent and one once the agent has stored it."""
    if stored is None:
        print(f"uploading {path}", flush=True)
    else:
        print(f"uploaded {path}: package {stored.pkg_id} on the agent", flush=True)


@contextlib.contextmanager
def demo_agent() -> Iterator[tuple[str, int]]:
    """Start the fake agent: one stage every 0.3 s, a 2 s restart with a new key at stage 7."""
    from obshell_sdk.testing import FakeAgent

    with FakeAgent(
        password=DEMO_PASSWORD, stage_seconds=0.3, restart_at_stage=7, restart_seconds=2.0,
        restart_new_key_bits=1024,
    ) as agent:
        print(f"fake obshell agent listening on {agent.base_url}")
        yield agent.host, agent.port


def upgrade(client: ObshellClient, args: argparse.Namespace) -> int:
    """Run the upgrade and report how it ended; returns the process exit code."""
    with client:
        info = client.info()
        print(f"agent {client.agent}: {safe(info.identity)}, obshell {safe(info.version)}")
        try:  # the pre-check needs the package on the cluster too: it runs with --package
            done = client.run_agent_upgrade(
                args.version, args.release, package=args.package, check=bool(args.package),
                upgrade_dir=args.upgrade_dir, timeout=args.timeout, on_progress=ShowProgress(),
                on_upload=show_upload)
        except TaskError as exc:
            print(f"upgrade did not succeed: {exc}", file=sys.stderr)
            return 1
        detail, now = done.upgrade, safe(done.info.version)
        print(f"task {detail.id} {detail.outcome}; agent now runs obshell {now}")
        return 0


def main(argv: Optional[list[str]] = None) -> int:
    """Entry point."""
    args = parse_args(argv)
    set_up_logging(args)
    try:
        if args.demo:
            with demo_agent() as (host, port):
                return upgrade(ObshellClient(host, port, auth=PasswordAuth(DEMO_PASSWORD)), args)
        environ = dict(os.environ)  # a password set, even empty, is sent as given (as the CLI)
        if "OBSHELL_PASSWORD" not in environ and "OBSHELL_AGENT_PASSWORD" not in environ:
            if not sys.stdin.isatty():
                print("set OBSHELL_PASSWORD to the root@sys password", file=sys.stderr)
                return 2
            environ["OBSHELL_PASSWORD"] = getpass.getpass("root@sys password: ")
        given = {"host": args.host, "port": args.port, "https": args.https or None}
        overrides = {name: value for name, value in given.items() if value is not None}
        return upgrade(ObshellClient.from_env(environ, **overrides), args)
    except InvalidArgumentError as exc:  # e.g. a package that is not the target's
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ObshellError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
