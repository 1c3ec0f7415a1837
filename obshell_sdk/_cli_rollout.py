"""The ``rollout`` commands of the command line: run a rollout, or read where one stands.

``obshell-sdk rollout agent --targets FILE --journal FILE VERSION RELEASE`` upgrades obshell
on every target, ``rollout ob ...`` OceanBase; ``rollout status --journal FILE`` reads the
journal only, touching no agent. Exit codes: 0 every target succeeded; 1 a target failed,
was rolled back or cancelled, could not be reached or was refused (others may be skipped);
8 a target's outcome is unknown (run the same command again to follow it); 2 bad input;
130 interrupted, 143 terminated (SIGTERM) (run it again to resume).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any, Callable, Optional, TextIO

from ._cli_errors import cli_message, cli_words
from ._cli_output import agent_command, aimed, tls_words
from ._config import (
    PASSWORD_NAMES,
    Environment,
    check_env_bundle,
    prompted_auth_from_env,
    refused_variable_in,
    tls_from_env,
)
from ._endpoints import UpgradeAgentRequest, UpgradeObRequest
from ._exceptions import InvalidArgumentError
from ._journal import Journal, TargetOutcome, TargetRecord, read_targets
from ._render import rollout_plan_text, rollout_table_text, rollout_text, to_jsonable
from ._rollout import Rollout, parse_targets
from ._rollout_report import RolloutReport, RolloutStoppedError, utc_time
from ._rollout_run import EMPTY_REFUSED
from ._targets import check_ob_packages
from ._text import printable
from ._upload import check_package_paths

__all__ = ["add_rollout_parser", "run_rollout"]

EXIT_OK, EXIT_FAILED, EXIT_UNKNOWN = 0, 1, 8
_STEP_ORDER = {"upload": 0, "check": 1, "upgrade": 2, "confirm": 3}


EPILOG = ("exit codes: 0 every target succeeded; 1 a target failed, was rolled back, "
          "cancelled, skipped, could not be reached or was refused; 8 a target's outcome is "
          "unknown, whatever the others', or the rollout stopped on an error of its own (a "
          "journal it could not write): run the same command again to follow it; 2 bad "
          "input; 130 interrupted, 143 terminated (run the same command again to resume)")
STATUS_EPILOG = ("status reads the journal only: --https, --ca-bundle and --min-key-bits talk "
                 "to no agent here;\nthey are repeated in the commands it suggests (the "
                 "journal does not say how its agents are reached)\n\nexit codes: 0 every "
                 "target (of --targets, else of the journal) succeeded; 8 one is open or "
                 "unknown; 1 otherwise; 2 bad input")


#: Why an agent's own options are not a rollout's, said of each when given to one.
_NO_HOST = dict.fromkeys(("--host", "--port"), "a rollout's agents are the host:port lines "
                         "of its --targets FILE")
_AFTER_KIND = {**dict.fromkeys(("--targets", "--journal", "--https", "--ca-bundle",
                                "--min-key-bits"), "give it after the kind: rollout agent, "
                               "ob or status"), **_NO_HOST}


def add_rollout_parser(sub: Any, make: Callable[..., argparse.ArgumentParser],
                       seconds: Callable[[str], float], upload_seconds: Callable[[str], float],
                       at_least: Callable[[int], Callable[[str], int]],
                       version: Callable[[str], Callable[[str], str]]) -> None:
    """Add ``rollout agent|ob|status`` to the CLI's subcommands.

    ``make(subparsers, name, **kwargs)`` makes each parser (with the CLI's global options;
    ``hints``: why an option it lacks is not there, what to give instead);
    ``seconds`` is the argparse type of a duration (``upload_seconds`` of an upload's),
    ``at_least(n)`` that of a whole number of at least ``n``, ``version(command)`` that of
    VERSION in ``command`` (an RPM's file name refused, said how to give it).
    """
    rollout = make(sub, "rollout", help="one upgrade over many clusters, resumable",
                   epilog=EPILOG, hints=_AFTER_KIND)
    kinds = rollout.add_subparsers(dest="rollout", required=True, metavar="KIND")
    agent = make(kinds, "agent", help="upgrade obshell on every target", epilog=EPILOG,
                 hints=_NO_HOST)
    _common(agent, seconds, upload_seconds, at_least, version("rollout agent"))
    agent.add_argument("--package", metavar="RPM",
                       help="obshell RPM to upload to every cluster first (default: none)")
    ob = make(kinds, "ob", help="upgrade OceanBase on every target", epilog=EPILOG,
              hints=_NO_HOST)
    _common(ob, seconds, upload_seconds, at_least, version("rollout ob"))
    ob.add_argument("--package", action="append", default=[], metavar="RPM",
                    help="an OceanBase RPM to upload to every cluster first, once per package "
                    "(oceanbase-ce and oceanbase-ce-libs for the community edition; default: "
                    "none)")
    ob.add_argument("--mode", default="ROLLING", help="ROLLING or STOPSERVICE (default ROLLING)")
    ob.add_argument("--freeze-server", action="store_true",
                    help="a minor freeze before each server stops")
    status = make(kinds, "status", help="where a rollout stands (reads the journal only)",
                  epilog=STATUS_EPILOG, hints=_NO_HOST)
    status.add_argument("--journal", required=True, metavar="FILE",
                        help="the rollout's SQLite journal")
    status.add_argument("--targets", metavar="FILE", help="these targets (the file a run was "
                        "given), one the journal never saw too; default: every target the "
                        "journal holds")


def _common(p: argparse.ArgumentParser, seconds: Callable[[str], float],
            upload_seconds: Callable[[str], float],
            at_least: Callable[[int], Callable[[str], int]], version: Callable[[str], str]
            ) -> None:
    p.add_argument("version", metavar="VERSION", type=version, help="target version (obshell's "
                   "for agent, e.g. 4.2.1.1; OceanBase's for ob, e.g. 4.3.5.1), from the RPM's "
                   "file name: NAME-VERSION-RELEASE.ARCH.rpm")
    p.add_argument("release", metavar="RELEASE", help="target release, e.g. "
                   "101000062023110109.el7 (from the RPM's file name, as VERSION)")
    p.add_argument("--targets", required=True,
                   help="file with one agent per cluster, 'host:port' a line (# comments)")
    p.add_argument("--journal", required=True,
                   help="SQLite journal; run the same command again to resume")
    p.add_argument("--upgrade-dir", metavar="DIR",
                   help="directory on the agents (default: <obshell home>/upgrade)")
    p.add_argument("--no-check", action="store_true", help="skip the pre-check DAG")
    p.add_argument("--parallel", type=at_least(1), default=4,
                   help="clusters at once (default 4)")
    p.add_argument("--canary", type=at_least(0), default=0,
                   help="targets done first, one at a time (default 0)")
    p.add_argument("--max-failures", type=at_least(1), default=1,
                   help="start no new cluster after this many failures (default 1)")
    p.add_argument("--timeout", type=seconds, default=None, help="seconds to follow each "
                   "task (default as in Python: 3600 for agent, 7200 for ob)")
    p.add_argument("--upload-timeout", type=upload_seconds, default=None, metavar="SECONDS",
                   help="seconds each package's upload may take (default 600, or the file "
                   "at 1 MiB/s)")


def run_rollout(args: argparse.Namespace, stream: TextIO, env: Environment) -> int:
    """Run the ``rollout`` command ``args`` asked for; its exit code.

    ``env``: the ``OBSHELL_*`` variables with the command line's options written over them
    (the agent password, ``OBSHELL_MIN_KEY_BITS``, ``OBSHELL_HTTPS``, ``OBSHELL_CA_BUNDLE``).
    """
    given = [name for name, value in (("--host", args.host), ("--port", args.port)) if value]
    if given:  # before `rollout` the top level took it: said here, not silently dropped
        raise InvalidArgumentError(given[0], f"{_NO_HOST[given[0]]}: drop it")
    if args.rollout == "status":
        only = None if args.targets is None else _targets_from(args.targets)
        return _status(args.journal, args.json, stream, tls_words(args), only)
    # Everything that can be wrong is found before the password is asked for.
    if args.upload_timeout is not None and not args.package:
        raise InvalidArgumentError("--upload-timeout", "bounds each --package upload: give "
                                   "--package too, or drop it")
    if args.rollout == "ob":  # the requests' fields too, before the password is asked for
        UpgradeObRequest(args.version, args.release, args.mode, args.upgrade_dir,
                         args.freeze_server)
        check_ob_packages(check_package_paths(args.package), args.version, args.release)
    else:
        UpgradeAgentRequest(args.version, args.release, args.upgrade_dir)
    targets, tls = _targets_from(args.targets), tls_from_env(env)
    check_env_bundle(env, tls)
    rollout = Rollout(
        targets, auth=prompted_auth_from_env(env, "root@sys password (every target): "),
        journal=args.journal, parallel=args.parallel, canary=args.canary,
        max_failures=args.max_failures, progress=not args.json, **tls,
    )
    flags = tls_words(args)
    words = rollout._words = lambda target, text: _aimed_at(target, text, flags)  # live lines
    timeout = {} if args.timeout is None else {"timeout": args.timeout}
    try:
        if args.rollout == "ob":
            report = rollout.upgrade_ob(args.version, args.release, packages=args.package,
                                        mode=args.mode, upgrade_dir=args.upgrade_dir,
                                        freeze_server=args.freeze_server,
                                        check=not args.no_check,
                                        upload_timeout=args.upload_timeout, **timeout)
        else:
            report = rollout.upgrade_agent(args.version, args.release, package=args.package,
                                           upgrade_dir=args.upgrade_dir,
                                           check=not args.no_check,
                                           upload_timeout=args.upload_timeout, **timeout)
    except RolloutStoppedError as exc:  # where each target stood, then the error itself
        _write_report(exc.report, args.json, stream, words, exc)
        raise
    _write_report(report, args.json, stream, words)
    return _exit(report)


def _write_report(report: RolloutReport, as_json: bool, stream: TextIO,
                  words: Callable[[str, str], str],
                  stopped: Optional[RolloutStoppedError] = None) -> None:
    if as_json:
        said = {} if stopped is None else {"stopped": {"target": stopped.target,
                                                       "error": cli_message(stopped)}}
        stream.write(json.dumps({**_report_json(report, words), **said}) + "\n")
    else:
        stream.write(rollout_text(report, words) + "\n")


def _aimed_at(target: str, text: str, tls: str) -> str:
    """``text``'s hints as commands (not Python calls) for the agent at ``target``."""
    host, _, port = target.rpartition(":")
    for variable, name in PASSWORD_NAMES.items():  # an empty password refused: the one to set
        text = text.replace(EMPTY_REFUSED.format(name), f"the {name} given for this target is "
                            f"empty: set {variable}, then run the same command again")
    return aimed(cli_words(text, refused_variable_in(text)),
                 agent_command(host.strip("[]"), port, tls))


def _exit(report: RolloutReport) -> int:
    if report.ok:
        return EXIT_OK
    if report.count(TargetOutcome.UNKNOWN):
        return EXIT_UNKNOWN
    return EXIT_FAILED


def _report_json(report: RolloutReport, words: Callable[[str, str], str]) -> dict[str, Any]:
    return {"journal": report.journal, "ok": report.ok,
            "results": {t: _said(t, to_jsonable(r), words) for t, r in report.results.items()}}


def _said(target: str, shown: dict[str, Any], words: Callable[[str, str], str]
          ) -> dict[str, Any]:
    """A target's JSON with its texts' hints as commands, as the text output says them."""
    for key in ("error", "note"):
        if shown.get(key):
            shown[key] = words(target, shown[key])
    return shown


def _status(path: str, as_json: bool, stream: TextIO, tls: str = "",
            only: Optional[list[str]] = None) -> int:
    plan = Journal.read_plan(path)
    records = read_targets(path)
    if only is not None:  # each target asked about: one no run of this journal started too
        seen = {r.target for r in records}
        records = [r for r in records if r.target in only] + [
            TargetRecord(t, -1, None, None, None, _UNSEEN, {}) for t in only if t not in seen]
    if as_json:
        said = [_said(r.target, _record_json(r), lambda t, x: _aimed_at(t, x, tls))
                for r in records]
        stream.write(json.dumps({"plan": plan, "targets": said}) + "\n")
    else:
        stream.write(rollout_plan_text(plan) + "\n")
        rows: list[tuple[str, ...]] = []
        now = time.time()
        for r in records:
            done = sorted(r.steps.values(), key=lambda s: _STEP_ORDER.get(s.step.split()[0], 9))
            step = f"{done[-1].step} {done[-1].status}" if done else ""
            ids = ",".join(s.dag_id for s in r.steps.values() if s.dag_id)
            took = "" if r.started_at is None else f"{(r.ended_at or now) - r.started_at:.0f}s"
            # The table's columns: target, step, stage (the journal has none), state, note.
            rows.append((r.target, step, "-", r.outcome or "open",
                         f"tasks {ids}" if ids else "", took))
        stream.write("\n".join(rollout_table_text(rows)) + "\n")
        for r in records:  # whole, below the table: the cause is at the end of a long text
            if r.error:
                stream.write(f"{r.target}  {_aimed_at(r.target, printable(r.error), tls)}\n")
    outcomes = {r.outcome for r in records}
    if outcomes <= {TargetOutcome.SUCCEEDED.value}:
        return EXIT_OK
    return EXIT_UNKNOWN if None in outcomes or "unknown" in outcomes else EXIT_FAILED


_UNSEEN = "not in this journal: no run of it started this target (is it the right journal?)"


def _record_json(record: TargetRecord) -> dict[str, Any]:
    """A journal record as JSON, as in the report: ISO times, a success's text its ``note``."""
    shown: dict[str, Any] = to_jsonable(record)
    for key in ("started_at", "ended_at"):
        if shown[key] is not None:
            shown[key] = to_jsonable(utc_time(shown[key]))
    for step in shown["steps"].values():  # a create call's send time too
        if step.get("sent_at") is not None:
            step["sent_at"] = to_jsonable(utc_time(step["sent_at"]))
    if record.position < 0:  # a target the journal never saw has no place in it
        shown["position"] = None
    ok = record.outcome == TargetOutcome.SUCCEEDED.value
    shown["note"] = shown["error"] if ok else None
    shown["error"] = None if ok else shown["error"]
    return shown


def _targets_from(path: str) -> list[str]:
    """The targets the file at ``path`` lists; what is wrong with them said of the file.

    A line that is no target is named by its number; the rest (none at all, one agent
    twice) is said of the whole file.
    """
    lines = _read_targets(path)
    where = path
    try:
        for number, line in lines:
            where = f"{path}, line {number}"
            parse_targets([line])
        where = path
        return parse_targets([line for _, line in lines])
    except InvalidArgumentError as exc:
        if exc.argument not in ("targets", "host", "port"):
            raise
        why = str(exc).removeprefix("targets: ").replace(" or (host, port)", "")
        raise InvalidArgumentError("--targets", f"{where}: {why}") from None


def _read_targets(path: str) -> list[tuple[int, str]]:
    """The file's targets with their line numbers (comments and blank lines left out)."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidArgumentError("--targets", f"cannot read {path!r}: {exc}") from None
    kept = ((number, line.split("#", 1)[0].strip()) for number, line in enumerate(lines, 1))
    return [(number, text) for number, text in kept if text]
