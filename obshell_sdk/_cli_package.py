"""``obshell-sdk package list|upload|delete``: the upgrade packages a cluster holds.

An OceanBase upgrade needs its packages on the cluster first (``oceanbase-ce`` and
``oceanbase-ce-libs`` for the community edition); an agent upgrade, its obshell RPM. These
commands are :meth:`~obshell_sdk.ObshellClient.packages`, ``upload_package`` and
``delete_package`` from a shell.
"""

from __future__ import annotations

import argparse
from typing import Any, Callable

from ._cli_errors import EXIT_OK
from ._cli_output import Output, Progress, Uploads
from ._client import ObshellClient
from ._errcodes import own_finding
from ._exceptions import InvalidArgumentError, NotFoundError
from ._render import package_line
from ._upload import check_package_paths
from ._workflow import log_in, upload_packages

__all__ = ["add_package_parser", "check_package_args", "run_package"]


def add_package_parser(sub: Any, make: Callable[..., argparse.ArgumentParser],
                       upload_seconds: Callable[[str], float]) -> None:
    """Add ``package list|upload|delete`` to the CLI's subcommands (``make`` as for rollout)."""
    p = make(sub, "package", help="list, upload or delete the cluster's upgrade packages",
             description="package list: the packages the cluster holds, newest first.\n"
             "package upload RPM...: upload each (an OceanBase upgrade needs oceanbase-ce and "
             "oceanbase-ce-libs).\npackage delete ID: remove one (its id from package list).",
             instead=_package_id_meant)
    p.add_argument("action", choices=["list", "upload", "delete"], metavar="ACTION",
                   help="list, upload or delete")
    p.add_argument("items", nargs="*", default=[], metavar="RPM|ID", help="upload: the RPM "
                   "files; delete: the package's id")
    p.add_argument("--upload-timeout", type=upload_seconds, metavar="SECONDS", help="seconds "
                   "each upload may take (default 600, or the file at 1 MiB/s)")


def _package_id_meant(word: str, given: list[str]) -> str:
    """What ``package 7`` meant, said after its usage error: a package id where ACTION goes.

    Only a word of digits is said back. The one action that takes an id deletes the package:
    it is said as the command meant only when typed after the id (``package 7 delete``),
    never guessed; else ``package list``, which shows each package with its id.
    """
    if not (word.isascii() and word.isdecimal() and len(word) <= 19):  # ids are below 2**63
        return ""
    said = f"; '{word}' looks like a package id"
    if given[given.index(word) + 1:][:1] == ["delete"]:
        return f"{said}, which goes after ACTION: did you mean obshell-sdk package delete {word}?"
    return (f"{said}: obshell-sdk package list shows each package with its id (there is no "
            "package show; package delete ID removes one)")


def check_package_args(args: argparse.Namespace) -> None:
    """Refuse what the action cannot take, before anything is sent."""
    if args.action == "list" and args.items:
        raise InvalidArgumentError("RPM|ID", "package list takes nothing more")
    if args.action == "upload" and not args.items:
        raise InvalidArgumentError("RPM", "package upload needs the RPM files to upload")
    if args.action == "delete" and (len(args.items) != 1 or not args.items[0].isdecimal()
                                    or not 0 < int(args.items[0]) < 2**63):
        raise InvalidArgumentError("ID", "package delete needs one package id, such as 3; "
                                   "obshell-sdk package list shows them")
    if args.upload_timeout is not None and args.action != "upload":
        raise InvalidArgumentError("--upload-timeout", "bounds package upload only")


def run_package(client: ObshellClient, args: argparse.Namespace, out: Output,
                progress: Progress) -> int:
    """Run ``package ACTION``: the rows it is about go to stdout; uploads on stderr."""
    if args.action == "list":
        rows = client.packages()
        out.value({"packages": rows}, "\n".join(map(package_line, rows)) or "no packages")
        return EXIT_OK
    if args.action == "upload":
        try:
            paths = check_package_paths(args.items)
        except InvalidArgumentError as exc:  # named as the command line names it
            raise InvalidArgumentError("RPM", str(exc).split(": ", 1)[1]) from None
        log_in(client)  # obshell's newer upload checks no password: a wrong one said first
        uploads = Uploads(progress, client.agent)
        try:
            stored = upload_packages(client, paths, args.upload_timeout, [uploads])
        except InvalidArgumentError as exc:  # a damaged RPM: refused before any was sent
            if exc.argument != "path":
                raise
            raise InvalidArgumentError("RPM", str(exc).split(": ", 1)[1]) from None
        out.value({"uploaded": stored}, "\n".join(map(package_line, stored, uploads.took)))
        return EXIT_OK
    pkg_id = int(args.items[0])
    row = next((r for r in client.packages() if r.pkg_id == pkg_id), None)
    if row is None:  # obshell answers a delete of an unknown id with success
        raise _not_listed(client.agent, pkg_id)
    client.delete_package(pkg_id)
    out.value({"deleted": row}, f"deleted {package_line(row)}")
    return EXIT_OK


def _not_listed(agent: str, pkg_id: int) -> NotFoundError:
    """"Not found" for a package the cluster's list lacks: the SDK's own (status 0), exit 10."""
    path = "/api/v1/upgrade/package/info"
    said = f"no package {pkg_id} on the cluster at {agent}"
    return own_finding(NotFoundError, said, f"{said} (its package list, GET {path}, has no "
                       "such id); nothing was deleted. obshell-sdk package list shows the ids "
                       "(an older upload of a package is listed again once the newer one is "
                       "deleted)", method="GET", path=path, agent=agent)
