"""An upgrade's target: obshell's version order, and whether a package can serve it.

Everything here is read before anything is sent: the agent's or the cluster's version (from
``/info``) against the target, as obshell compares them, the RPM headers of the packages
given for it, and which row of a package list already holds one. Pure: no request, no client.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional

from ._exceptions import InvalidArgumentError
from ._models import UpgradePackageInfo
from ._rpm import rpm_header
from ._text import printable
from ._upload import check_package_path

__all__ = ["OB_PACKAGES", "check_ob_packages", "check_target_package", "not_newer",
           "not_the_target", "ob_not_newer", "stored_copy", "stored_said"]


def not_newer(running: str, version: str, release: str) -> Optional[str]:
    """Why obshell refuses to upgrade an agent that runs ``running`` to the target, or None.

    ``Agent.Upgrade.ToLowerVersion``: the target must be newer in obshell's order.
    """
    target = f"{version}-{release.split('.', 1)[0]}"
    have, want = _version_key(running), _version_key(target)
    if want > have:
        return None
    shown = printable(running[:80] + ("..." if len(running) > 80 else ""))
    return (f"the agent already runs obshell {shown}" if want == have else
            f"obshell {target} is older than the agent's {shown}") + ": obshell upgrades " \
        "only to a newer version (Agent.Upgrade.ToLowerVersion)"


def ob_not_newer(running: str, version: str) -> Optional[str]:
    """Why obshell refuses to upgrade a cluster whose ``/info`` says ``running`` to ``version``.

    ``OB.Upgrade.ToLowerVersion`` compares builds; ``/info`` reports only the version
    (``select ob_version()``). So only a version past the target tells (None otherwise): at
    the same version, a newer build is an upgrade.
    """
    have = running.split("-", 1)[0]
    if not have or _version_key(have) <= _version_key(version):
        return None
    return (f"the cluster runs OceanBase {printable(have[:80])}, newer than {version}: "
            "obshell upgrades only to a newer version (OB.Upgrade.ToLowerVersion)")


def _version_key(version_release: str) -> tuple[list[int], int]:
    """``4.3.1.0-101000012025010101`` as obshell compares it (lib/pkg CompareVersion).

    Dotted numbers, then the build number, each read as Go's ``strconv.Atoi`` reads it.
    """
    parts = version_release.split("-")
    build = _atoi(parts[1]) if len(parts) > 1 else 0
    return [_atoi(n) for n in parts[0].split(".")], build


def _atoi(text: str) -> int:
    """Go's ``strconv.Atoi``, its error ignored as obshell does.

    0 for what it cannot read; a number past 64 bits saturated (and so never Python's own
    limit on long digit strings).
    """
    negative = text[:1] == "-"
    digits = (text[1:] if text[:1] in "+-" else text).lstrip("0") or "0"
    if not (digits.isascii() and digits.isdigit()):
        return 0
    limit = 2**63 if negative else 2**63 - 1
    value = limit if len(digits) > 19 else min(int(digits), limit)
    return -value if negative else value


def not_the_target(uploaded: UpgradePackageInfo, version: str, release: str) -> Optional[str]:
    """Why an uploaded package is not obshell ``version``-``release`` (None when it is).

    Said as the agent read it, and that it was stored though nothing was started;
    :func:`stored_said`, which follows it, says how to delete it (its id said there once).
    """
    if uploaded.name == "obshell" and uploaded.version == version and (
            not uploaded.release_distribution or uploaded.release_distribution == release):
        return None
    have = printable(f"{uploaded.name} {uploaded.version}-"
                     f"{uploaded.release_distribution or '?'}")  # the agent's words
    return (f"the agent read the package as {have}, not obshell {version}-{release}: give the "
            "target's package, or the version and release of this one (nothing was started, "
            "but the agent stored it)")


def stored_said(pkg_id: int, agent: str = "client") -> str:
    """How to delete a package the agent stored though nothing was started with it.

    ``agent`` is how Python reaches that agent (a rollout names its target's
    ``ObshellClient(...)``); the command line says it as ``obshell-sdk package`` commands
    aimed at that agent. ``pkg_id`` 0 (the agent did not say it): where to find it.
    """
    if pkg_id > 0:
        return (f"It stays stored until deleted: {agent}.delete_package({pkg_id}) "
                f"({agent}.packages() lists it)")
    return (f"It stays stored until deleted: {agent}.packages() lists it with its pkg_id, "
            f"which {agent}.delete_package() takes")


def stored_copy(listed: Sequence[UpgradePackageInfo], path: str
                ) -> Optional[UpgradePackageInfo]:
    """The row of a package list (``packages()``) that holds the RPM at ``path``, or None.

    The list keeps one row per name, version, release and architecture, the newest upload's
    (PROTOCOL-upgrade-family §5.1): it cannot tell two uploads of one file apart. A row holds
    this package when those four match its RPM header, and its MD5 (of the RPM signature,
    which obshell lists) matches too when both say one. None when the header does not say
    the four: the list cannot be searched for it then.
    """
    header = rpm_header(path)
    if header is None or header.arch is None:
        return None
    md5 = (header.md5 or b"").hex()
    return next((row for row in listed if header[:4] == (  # name, version, release, arch
        row.name, row.version, row.release_distribution, row.architecture) and not (
            md5 and row.md5 and row.md5.lower() != md5)), None)


#: What to do with a package that is not the target's, where the target is the caller's.
_GIVE = ("give the target's package, or the version and release of this one (nothing was "
         "uploaded)")


def check_target_package(package: Any, version: str, release: str, *,
                         advice: str = _GIVE) -> str:
    """The path of ``package``, an RPM of obshell ``version``-``release`` by its header.

    The header is read here, before any upload; a package it names otherwise raises
    :class:`InvalidArgumentError`, ending with ``advice`` (a retry's target is its task's,
    not the caller's to change). One whose header cannot be read is left to the agent.
    """
    path = check_package_path(package)
    header = rpm_header(path)
    if header is not None and header.identity != ("obshell", version, release):
        name, have, build = header.identity
        raise InvalidArgumentError("package", f"{path!r} is {name} {have}-{build}, not obshell "
                                   f"{version}-{release}: {advice}")
    return path


#: The packages an OceanBase upgrade takes (upgrade family §6: community, business, standalone).
OB_PACKAGES = ("oceanbase-ce", "oceanbase-ce-libs", "oceanbase", "oceanbase-standalone")


def check_ob_packages(paths: Sequence[str], version: str, release: str) -> None:
    """Refuse, by their RPM headers, packages that cannot serve an upgrade to the target.

    Each must be an OceanBase package no newer than ``version``-``release``; one of the
    target's version and build, of its release too (obshell matches that whole, the
    distribution with it). Older ones are the earlier steps of a cross-version route
    (obshell needs each step's packages), so a set without the target's own is left to the
    agent: the cluster may hold those already. Raises :class:`InvalidArgumentError`;
    nothing has been uploaded then. Packages whose header cannot be read are left to the
    agent.
    """
    target = f"{version}-{release.split('.', 1)[0]}"
    for path in paths:
        header = rpm_header(path)
        if header is None:
            continue
        name, have, build = header.identity
        if name not in OB_PACKAGES:
            raise InvalidArgumentError("packages", (
                f"{path!r} is {name} {have}-{build}, not an OceanBase package: an OceanBase "
                f"upgrade takes {', '.join(OB_PACKAGES)} (nothing was uploaded)"))
        key = _version_key(f"{have}-{build.split('.', 1)[0]}")
        if key > _version_key(target):
            raise InvalidArgumentError("packages", (
                f"{path!r} is {name} {have}-{build}, newer than the target {version}-"
                f"{release}: give the target's packages (nothing was uploaded)"))
        if key == _version_key(target) and build != release:  # another distribution, say
            raise InvalidArgumentError("packages", (
                f"{path!r} is {name} {have}-{build}, not of the target's release {release}: "
                "give the target's packages, or the release of these (nothing was uploaded)"))
