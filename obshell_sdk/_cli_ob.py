"""``obshell-sdk upgrade-ob VERSION RELEASE``: OceanBase's own upgrade, on one cluster.

``upgrade`` upgrades obshell; this command upgrades OceanBase (obshell's OB upgrade, which
brings the agents to the matching obshell first), in the same shape: without ``--wait`` it
starts the task and says it; ``--check`` runs only the pre-check, to its end; ``--package
RPM``, once per package (``oceanbase-ce`` and ``oceanbase-ce-libs`` for the community
edition), uploads them, then checks, upgrades, follows and confirms the new version. These
are :meth:`~obshell_sdk.ObshellClient.upgrade_ob`, ``check_ob_upgrade`` and
``run_ob_upgrade`` from a shell; over many clusters, ``rollout ob``.
"""

from __future__ import annotations

import argparse
from typing import Any, Callable

from ._cli_errors import EXIT_OK
from ._cli_follow import ending_shown, show_created
from ._cli_output import Output, Progress, Uploads
from ._client import ObshellClient
from ._endpoints import UpgradeObRequest
from ._exceptions import InvalidArgumentError
from ._targets import check_ob_packages
from ._upload import check_package_paths

__all__ = ["OB_TIMEOUT", "add_ob_parser", "check_ob_args", "run_upgrade_ob"]

#: Seconds a wait lasts when ``--timeout`` is not given: ``run_ob_upgrade``'s default, and
#: ``rollout ob``'s (an OceanBase upgrade outlasts an agent's).
OB_TIMEOUT = 7200.0
_DEFAULT_MODE = "ROLLING"


def add_ob_parser(sub: Any, make: Callable[..., argparse.ArgumentParser],
                  follow_options: Callable[[argparse.ArgumentParser, str, float], None],
                  upload_seconds: Callable[[str], float],
                  version: Callable[[str], str]) -> None:
    """Add ``upgrade-ob`` to the CLI's subcommands.

    ``make`` as for ``package``; ``follow_options(parser, what, default)`` adds ``--wait``
    and ``--timeout`` as ``upgrade`` has them; ``upload_seconds`` is the type of an upload's
    duration, ``version`` VERSION's (an RPM's file name refused, said how to give it).
    """
    p = make(sub, "upgrade-ob", help="upgrade OceanBase on the cluster (its agents first)",
             description="upgrade-ob VERSION RELEASE: start OceanBase's upgrade (the agents' "
             "obshell first, then\nthe servers); --wait follows it; --check runs only the "
             "pre-check, to its end; --package\nRPM, once per package, uploads them first, then "
             "checks, upgrades, follows and confirms\nthe new version. Over many clusters: "
             "rollout ob.")
    p.add_argument("version", metavar="VERSION", type=version, help="target OceanBase "
                   "version, e.g. 4.3.5.1 (from the RPM's file name: "
                   "oceanbase-ce-VERSION-RELEASE.ARCH.rpm)")
    p.add_argument("release", metavar="RELEASE", help="target release, e.g. "
                   "101000012025052815.el7 (from the RPM's file name, as VERSION)")
    p.add_argument("--mode", metavar="MODE", help="ROLLING (zone by zone, the cluster "
                   "serving; needs 3 zones or more, 2 on shared storage) or STOPSERVICE (default "
                   "ROLLING)")
    p.add_argument("--freeze-server", action="store_true",
                   help="a minor freeze before each server stops (default: none)")
    p.add_argument("--upgrade-dir", metavar="DIR",
                   help="directory on the agents (default: <obshell home>/upgrade)")
    p.add_argument("--check", action="store_true", help="run only the pre-check DAG, to its end "
                   "(implies --wait: the exit code says whether the check passed)")
    p.add_argument("--package", metavar="RPM", action="append", help="an RPM to upload first, "
                   "once per package (oceanbase-ce and oceanbase-ce-libs for the community "
                   "edition); then check, upgrade, follow and confirm the new version (implies "
                   "--wait)")
    p.add_argument("--upload-timeout", type=upload_seconds, metavar="SECONDS", help="seconds "
                   "each --package upload may take (default 600, or the file at 1 MiB/s)")
    follow_options(p, "follow the task to its end", OB_TIMEOUT)


def check_ob_args(args: argparse.Namespace) -> None:
    """Refuse what is wrong or would be ignored, before anything is sent or asked for.

    The request's fields and the packages' RPM headers too (the same checks as the client's
    and ``rollout ob``'s), so that a bad ``--mode`` is said before the password prompt.
    """
    if args.timeout is not None and not (args.wait or args.check or args.package):
        raise InvalidArgumentError("--timeout", "bounds a wait: add --wait (or drop it)")
    if args.upload_timeout is not None and not args.package:
        raise InvalidArgumentError("--upload-timeout", "bounds each --package upload: give "
                                   "--package too, or drop it")
    if args.check:  # the pre-check takes a version, a release and a directory only
        for option, given, why in (
                ("--package", args.package, "uploads, then checks and upgrades; with --check, "
                 "upload first (obshell-sdk package upload RPM...), or drop --check"),
                ("--mode", args.mode is not None, "says how the upgrade runs; the pre-check "
                 "takes no mode: drop it, or drop --check"),
                ("--freeze-server", args.freeze_server, "goes with the upgrade; the pre-check "
                 "freezes nothing: drop it, or drop --check")):
            if given:
                raise InvalidArgumentError(option, why)
    UpgradeObRequest(args.version, args.release, _mode(args), args.upgrade_dir,
                     args.freeze_server)
    check_ob_packages(check_package_paths(args.package or []), args.version, args.release)


def run_upgrade_ob(client: ObshellClient, args: argparse.Namespace, out: Output,
                   progress: Progress) -> int:
    """Run ``upgrade-ob``: the task's DAG to stdout, as it stands or as it ended."""
    timeout = OB_TIMEOUT if args.timeout is None else float(args.timeout)
    if args.package:
        with ending_shown(out, progress):
            result = client.run_ob_upgrade(
                args.version, args.release, packages=args.package, mode=_mode(args),
                upgrade_dir=args.upgrade_dir, freeze_server=args.freeze_server,
                timeout=timeout, on_progress=progress, upload_timeout=args.upload_timeout,
                on_upload=Uploads(progress, client.agent))
        out.dag(result.upgrade)
        return EXIT_OK
    if args.check:
        task = client.check_ob_upgrade(args.version, args.release, args.upgrade_dir)
    else:
        task = client.upgrade_ob(args.version, args.release, mode=_mode(args),
                                 upgrade_dir=args.upgrade_dir, freeze_server=args.freeze_server)
    # a check's exit code says how the check ended: it is followed
    return show_created(task, out, progress, wait=args.wait or args.check, timeout=timeout)


def _mode(args: argparse.Namespace) -> str:
    return _DEFAULT_MODE if args.mode is None else str(args.mode)
