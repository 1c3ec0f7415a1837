"""``python -m obshell_sdk.testing``: a fake obshell agent served from the shell.

It is the same :class:`~obshell_sdk.testing.FakeAgent` the tests use, started with flags
instead of keyword arguments, for trying the SDK, its CLI or a notebook by hand::

    python -m obshell_sdk.testing                      # 127.0.0.1:2886, obshell 4.2.1.0
    python -m obshell_sdk.testing --port 0 --stage-seconds 2 --fail-stage 3

It prints how to connect (the ``OBSHELL_*`` variables the CLI and
``ObshellClient.from_env()`` read), logs each request it answers unless ``--quiet``, and
stops cleanly on Ctrl-C or SIGTERM (exit code 0). A port already in use exits with code 2.
"""

from __future__ import annotations

import argparse
import difflib
import ipaddress
import math
import re
import shlex
import signal
import sys
import time
from collections.abc import Sequence
from types import FrameType
from typing import Any, Callable, NoReturn, Optional, TextIO

from ._agent import FakeAgent

__all__ = ["main"]

DEFAULT_PORT = 2886
DEFAULT_PASSWORD = "root-password"  # noqa: S105 - the fake agent's own, printed on purpose
#: Below every version the README upgrades to (4.2.1.1), so its examples run as written.
DEFAULT_VERSION = "4.2.1.0"
V1_VERSION = "4.2.2.0"
_VERSION = re.compile(r"[0-9]+(\.[0-9]+){3}\Z")


def _number(kind: type, low: float, high: float = math.inf) -> Callable[[str], Any]:
    """An argparse type: ``kind`` (int or float) from ``low`` to ``high``, finite."""
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a {kind.__name__}") from None
        if not (math.isfinite(value) and low <= value <= high):
            raise argparse.ArgumentTypeError(f"must be from {low:g} to {high:g}")
        return value
    return parse


#: What is said of an option it does not take where the closest name is not the one meant.
_MEANT = {"--version": "did you mean --obshell-version, the obshell version it runs? "
          "--ob-version is its cluster's OceanBase build"}
_UNRECOGNIZED = "unrecognized arguments: "


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` that says, after each option it does not take, the one meant.

    As ``obshell-sdk``'s usage errors do (``--jsn (did you mean --json?)``); the fake agent
    never imports the client side, so it says it itself.
    """

    def error(self, message: str) -> NoReturn:
        """Usage and ``message``, each unknown option's likely meaning added; exit 2."""
        if message.startswith(_UNRECOGNIZED):
            known = [o for o in self._option_string_actions if o.startswith("--")]
            words = message[len(_UNRECOGNIZED):].split(" ")
            message = _UNRECOGNIZED + " ".join(w + _meant(w, known) for w in words)
        super().error(message)


def _meant(word: str, known: list[str]) -> str:
    """`` (did you mean --quiet?)`` after an unknown long option close to ``known`` one."""
    name = word.partition("=")[0]
    near = difflib.get_close_matches(name, known, n=1, cutoff=0.7)
    meant = _MEANT.get(name) or (f"did you mean {near[0]}?" if near and name[:2] == "--" else "")
    return f" ({meant})" if meant else ""


def _parser() -> argparse.ArgumentParser:
    # Its usage names it as it was run: the console script, or the module.
    script = sys.argv[0].replace("\\", "/").rsplit("/", 1)[-1].removesuffix(".exe")
    p = _Parser(
        prog=script if script == "obshell-fake-agent" else "python -m obshell_sdk.testing",
        description="Serve a fake obshell agent on this machine: it checks signed requests "
        "as obshell does and runs upgrade DAGs whose pace and faults you choose.",
        epilog="Ctrl-C (or SIGTERM) stops it. Exit codes: 0 stopped, 2 bad flags or the port "
        "is taken.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=_number(int, 0, 65535), default=DEFAULT_PORT,
                   help=f"port, 0 for any free one (default {DEFAULT_PORT})")
    p.add_argument("--password", default=DEFAULT_PASSWORD, help="the root@sys password it "
                   f"accepts; a test password, printed (default {DEFAULT_PASSWORD})")
    p.add_argument("--agent-password", help="an agent password, as obshell 4.2.5+ has "
                   "(X-OCS-Agent-Header; default none)")
    p.add_argument("--obshell-version", metavar="VERSION", help="the obshell version it runs "
                   f"(default {DEFAULT_VERSION}; {V1_VERSION} with --auth v1)")
    p.add_argument("--release", default="", help="release suffix of /info's version "
                   "(default none)")
    p.add_argument("--identity", default="CLUSTER AGENT",
                   help="/info identity; only a CLUSTER AGENT takes upgrades (default "
                   "'CLUSTER AGENT')")
    p.add_argument("--auth", choices=("v1", "v2"), default="v2",
                   help="dialect: v1 is obshell 4.2.2's X-OCS-Auth, v2 the X-OCS-Header of "
                   "4.2.3 and later, which a v1 agent speaks once upgraded past 4.2.2 "
                   "(default v2)")
    p.add_argument("--stage-seconds", type=_number(float, 0.001, 86400), default=0.5,
                   help="how long each DAG stage runs (default 0.5)")
    p.add_argument("--key-bits", type=int, choices=(512, 1024, 2048), default=1024,
                   help="RSA key size; obshell up to 4.4.1 uses 512 (default 1024)")
    p.add_argument("--clock-offset", type=_number(float, -86400, 86400), default=0.0,
                   help="seconds the agent's clock is ahead of this machine's (default 0)")
    _fault_options(p)
    p.add_argument("-q", "--quiet", action="store_true", help="do not log requests")
    return p


def _fault_options(p: argparse.ArgumentParser) -> None:
    faults = p.add_argument_group("faults")
    faults.add_argument("--fail-stage", type=_number(int, 1, 99),
                        help="fail this stage of every DAG (default none)")
    faults.add_argument("--fail-times", type=_number(int, 1, 1000), default=1,
                        help="how many times --fail-stage fails before a retry succeeds "
                        "(default 1)")
    faults.add_argument("--restart-at-stage", type=_number(int, 1, 99),
                        help="restart (stop listening) when an upgrade reaches this stage "
                        "(default none)")
    faults.add_argument("--restart-seconds", type=_number(float, 0, 3600), default=2.0,
                        help="how long a restart lasts (default 2)")
    faults.add_argument("--restart-new-key", action="store_true",
                        help="come back from a restart with a new RSA key")
    faults.add_argument("--drop-create-reply", action="store_true",
                        help="the first task-creating POST creates its task, then closes "
                        "the connection unanswered")
    ob = p.add_argument_group("OceanBase")
    ob.add_argument("--ob-version", default="",
                    help="the OceanBase build the cluster runs, VERSION-BUILD (default none: "
                    "every target counts as newer)")
    ob.add_argument("--zones", type=_number(int, 1, 99), default=3,
                    help="zones; ROLLING needs 3 (default 3)")
    ob.add_argument("--require-packages", action="store_true",
                    help="upgrades need their packages uploaded first, as on a real cluster")


def _agent(args: argparse.Namespace) -> FakeAgent:
    version = args.obshell_version or (V1_VERSION if args.auth == "v1" else DEFAULT_VERSION)
    if args.auth == "v1" and not version.startswith("4.2.2"):
        raise ValueError(f"--auth v1 is obshell 4.2.2's dialect; clients choose it only for "
                         f"4.2.2, not {version}: drop --obshell-version or use --auth v2")
    if not _VERSION.match(version):
        raise ValueError(f"--obshell-version {version!r} is not like 4.2.1.0")
    v1 = args.auth == "v1"
    agent = FakeAgent(
        password=args.password, agent_password=args.agent_password, identity=args.identity,
        version=version, release=args.release, supported_auth=None if v1 else ("v2",),
        legacy_v1=v1, key_bits=args.key_bits, clock_offset=args.clock_offset,
        stage_seconds=args.stage_seconds, fail_stage=args.fail_stage,
        fail_times=args.fail_times, restart_at_stage=args.restart_at_stage,
        restart_seconds=args.restart_seconds,
        restart_new_key_bits=args.key_bits if args.restart_new_key else None,
        host=args.host, port=args.port, ob_version=args.ob_version, zones=args.zones,
        require_packages=args.require_packages,
    )
    agent.drop_reply_after_create = args.drop_create_reply
    return agent


def _banner(agent: FakeAgent, args: argparse.Namespace) -> str:
    exports = {"OBSHELL_HOST": agent.host, "OBSHELL_PORT": str(agent.port),
               "OBSHELL_PASSWORD": agent.password}
    if agent.agent_password is not None:
        exports["OBSHELL_AGENT_PASSWORD"] = agent.agent_password
    line = " ".join(f"{k}={shlex.quote(v)}" for k, v in exports.items())
    return (f"fake obshell agent {agent.version_release_display} ({agent.identity}, auth "
            f"{args.auth}) listening on {agent.base_url}\n"
            f"connect from another shell with:\n    export {line}\n"
            f"then e.g.: {shlex.quote(sys.executable)} -m obshell_sdk info, or "
            f"ObshellClient.from_env() in Python. Ctrl-C stops it.\n")


def _log_requests(agent: FakeAgent, out: Optional[TextIO]) -> None:
    """Write (unless ``out`` is None) and forget the requests answered since the last call."""
    for r in agent.take_requests():
        if out is not None:
            auth = f" [{r.auth_kind}]" if r.auth_kind else ""
            out.write(f"{r.method} {r.uri} -> {r.status or 'no answer'}{auth}\n")
    if out is not None:
        out.flush()


def _exposed(host: str) -> bool:
    """True when listening on ``host`` reaches beyond this machine."""
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name
        return host != "localhost"


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Serve a fake agent until Ctrl-C or SIGTERM; returns the exit code."""
    args = _parser().parse_args(argv)
    out, err = sys.stdout, sys.stderr
    try:
        agent = _agent(args)
    except ValueError as exc:
        err.write(f"obshell-sdk fake agent: {exc}\n")
        return 2
    try:
        agent.start()
    except OSError as exc:
        err.write(f"obshell-sdk fake agent: cannot listen on {args.host}:{args.port} "
                  f"({exc.strerror or exc}); choose another with --port (0: any free port)\n")
        return 2
    signals: list[int] = []  # the stop signals received; appended to, so no lock is taken

    def on_signal(signum: int, frame: Optional[FrameType]) -> None:
        signals.append(signum)

    # Ctrl-C and SIGTERM both stop it, even when started with SIGINT ignored (``cmd &``). They
    # end the loop rather than interrupt it, so no request answered before them goes unlogged.
    previous = signal.signal(signal.SIGTERM, on_signal)
    previous_int = signal.signal(signal.SIGINT, on_signal)
    if _exposed(agent.host):
        err.write(f"obshell-sdk fake agent: WARNING: listening on {agent.host}, beyond this "
                  "machine, with a test password and no real checks; use it only on a network "
                  "you trust\n")
    try:
        out.write(_banner(agent, args))
        out.flush()
        while not signals:
            time.sleep(0.2)
            _log_requests(agent, None if args.quiet else out)
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
        agent.stop()
    _log_requests(agent, None if args.quiet else out)  # those answered since the last pass
    out.write("fake obshell agent stopped\n")
    out.flush()
    return 0
