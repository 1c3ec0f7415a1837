"""The fake agent's package inventory and obshell's checks of an uploaded package.

Rows are ``model/oceanbase.UpgradePkgInfo`` (PROTOCOL-upgrade-family.md §5); :func:`check_upload`
is ``CheckUpgradePkg`` (§6 steps 2-4, after the RPM was read); :func:`download_check` is the
lookup of the ``Download all required packages`` node (§4).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Optional

from ._dagmodel import FakeDag
from ._errors import ApiError
from ._golike import ZERO_TIME, rfc3339
from ._params import below_minimum, split_release, version_key
from ._rpm import RpmError, RpmPackage
from ._templates import SUPPORTED_NAMES

#: ``constant.CHUNK_SIZE``: packages are stored in OB in chunks of this many bytes.
CHUNK_SIZE = 8388607
_HOME = "/home/admin/oceanbase"
_UPGRADE_FILES = tuple(f"{_HOME}/etc/{n}" for n in (
    "upgrade_checker.py", "upgrade_pre.py", "upgrade_health_checker.py", "upgrade_post.py",
    "oceanbase_upgrade_dep.yml"))
_DEP_YAML = f"{_HOME}/etc/oceanbase_upgrade_dep.yml"


@dataclass
class PackageRow:
    """One stored package (``gmt_modify``: server-clock time of the upload)."""

    pkg_id: int
    name: str
    version: str
    release_distribution: str
    distribution: str
    release: str
    architecture: str
    size: int
    payload_size: int
    chunk_count: int
    md5: str
    upgrade_dep_yaml: str
    gmt_modify: float

    @property
    def key(self) -> tuple[str, str, str, str]:
        """What the inventory keeps one row of: name, version, release, architecture."""
        return self.name, self.version, self.release_distribution, self.architecture

    def bo_json(self, *, fresh: bool = False) -> dict[str, Any]:
        """``bo.UpgradePkgInfo`` (snake_case; ``upgrade_dep_yaml`` never copied)."""
        return {
            "pkg_id": self.pkg_id, "name": self.name, "version": self.version,
            "release_distribution": self.release_distribution,
            "distribution": self.distribution, "release": self.release,
            "architecture": self.architecture, "size": self.size,
            "payload_size": self.payload_size, "chunk_count": self.chunk_count,
            "md5": self.md5, "upgrade_dep_yaml": "",
            "gmt_modify": ZERO_TIME if fresh else rfc3339(int(self.gmt_modify)),
        }

    def model_json(self) -> dict[str, Any]:
        """The model itself, as the old upload answers it (Go field names, zero time)."""
        return {
            "PkgId": self.pkg_id, "Name": self.name, "Version": self.version,
            "ReleaseDistribution": self.release_distribution,
            "Distribution": self.distribution, "Release": self.release,
            "Architecture": self.architecture, "Size": self.size,
            "PayloadSize": self.payload_size, "ChunkCount": self.chunk_count,
            "Md5": self.md5, "UpgradeDepYaml": self.upgrade_dep_yaml, "GmtModify": ZERO_TIME,
        }


class PackageStore:
    """The uploaded packages (thread-safe); ids count up from 1 and are never reused."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[int, PackageRow] = {}
        self._next_id = 1

    def add(self, *, name: str, version: str, release: str, arch: str, size: int,
            payload_size: int, md5: str, dep_yaml: str, now: float) -> PackageRow:
        """Store a package; ``release`` is the RPM release (``build.dist``)."""
        parts = release.split(".")
        with self._lock:
            row = PackageRow(
                self._next_id, name, version, release, parts[1] if len(parts) > 1 else "",
                parts[0], arch, size, payload_size, -(-payload_size // CHUNK_SIZE), md5,
                dep_yaml, now)
            self._rows[row.pkg_id] = row
            self._next_id += 1
            return row

    def listing(self) -> list[PackageRow]:
        """``GET /api/v1/upgrade/package/info``: newest first, one row per key (newest wins)."""
        with self._lock:
            rows = sorted(self._rows.values(), key=lambda r: r.pkg_id, reverse=True)
        seen: set[tuple[str, str, str, str]] = set()
        out = []
        for row in rows:
            if row.key not in seen:
                seen.add(row.key)
                out.append(row)
        return out

    def delete(self, pkg_id: int) -> None:
        """Delete the row ``pkg_id`` if there is one."""
        with self._lock:
            self._rows.pop(pkg_id, None)

    def find(self, name: str, version: str, arch: str, *, release: Optional[str] = None,
             build: Optional[str] = None, dist: Optional[str] = None) -> Optional[PackageRow]:
        """The newest row matching name, version, architecture and the given release parts."""
        for row in self.listing():
            if (row.name, row.version, row.architecture) != (name, version, arch):
                continue
            if release is not None and row.release_distribution != release:
                continue
            if build is not None and (row.release, row.distribution) != (build, dist):
                continue
            return row
        return None


def _missing_files(name: str, missing: object) -> ApiError:
    return ApiError(500, "OB.Package.MissingFile",
                    f"These files are missing in package '{name}': '{missing}'")


def _check_version(pkg: RpmPackage) -> None:
    try:
        split_release(pkg.release)
        if below_minimum(pkg.version):
            raise ApiError(400, "Agent.OBVersionNotSupported",
                           f"Unsupported OB version '{pkg.version}', the minimum supported "
                           "version is '4.2.0.0'")
    except ApiError as exc:
        raise ApiError(exc.status, exc.err_code,
                       f"failed to check version and release: {exc.message}") from None


def _check_payload(pkg: RpmPackage) -> None:
    """``pkg.CheckCompressAndFormat``, before the dependency YAML is read: xz, cpio."""
    if pkg.compressor != "xz":
        raise ApiError(400, "Package.Compression.NotSupported",
                       f"Unsupported compression '{pkg.compressor}', the supported compression "
                       "is 'xz'")
    if pkg.payload_format != "cpio":
        raise ApiError(400, "Package.Format.Invalid",
                       f"Unsupported payload format '{pkg.payload_format}', the supported "
                       "payload format is 'cpio'")


def _needs_upgrade_files(pkg: RpmPackage, ob_version: str) -> bool:
    build = pkg.release.split(".", 1)[0]
    if not ob_version:  # no running OceanBase known: every package is newer
        return True
    return (version_key(f"{pkg.version}-{build}") > version_key(ob_version)
            and pkg.version != ob_version.partition("-")[0])


def check_upload(pkg: RpmPackage, *, edition: str, ob_version: str) -> str:
    """``CheckUpgradePkg``: name for the edition, version and release, required files.

    Returns the dependency YAML to store ("" unless an OB package newer than ``ob_version``).

    Raises:
        ApiError: obshell's refusal (without ``data``; the old upload adds ``"data": null``).

    """
    supported = SUPPORTED_NAMES[edition]
    if pkg.name == "oceanbase-diagnostic-tool":
        return ""
    if pkg.name not in supported:
        raise ApiError(400, "OB.Package.Name.NotSupport",
                       f"Unsupported name '{pkg.name}', the supported names are "
                       f"[{', '.join(supported)}]")
    _check_version(pkg)
    if pkg.name == "oceanbase-ce-libs":
        if not any(f.path == f"{_HOME}/lib" and f.is_dir for f in pkg.files):
            raise _missing_files(pkg.name, f"{_HOME}/lib")
        return ""
    expected = [f"{_HOME}/bin/obshell"]
    if pkg.name != "obshell":
        expected = [f"{_HOME}/bin/observer"] + ([] if edition == "business" else expected)
    newer = pkg.name != "obshell" and _needs_upgrade_files(pkg, ob_version)
    if newer:
        expected += _UPGRADE_FILES
    missing = [path for path in expected if not pkg.has_file(path)]
    if missing:
        raise _missing_files(pkg.name, f"[{' '.join(missing)}]")
    if not newer:
        return ""
    _check_payload(pkg)
    try:
        data = pkg.payload_file(_DEP_YAML)
    except RpmError as exc:
        raise ApiError(500, "Common.Unexpected", str(exc)) from None
    return "" if data is None else data.decode("utf-8", "replace")


def download_logs(dag: FakeDag, store: PackageStore, arch: str) -> tuple[list[str], Optional[str]]:
    """The ``Download all required packages`` node: its log lines and error (or ``None``).

    Looks each of the DAG's required packages up by name, version, build number, distribution
    (after the last dot of the release sent) and architecture; a missing one is gorm's plain
    ``record not found``.
    """
    build = dag.target_release
    dist = dag.release_full.rsplit(".", 1)[-1]
    logs = [f"The required upgrade package is [{' '.join(dag.required_packages)}]",
            f"The 1th version in the upgrade route is: {dag.target_version}-{build}"]
    if dag.upgrade_dir:
        logs.append(f"The directory for this upgrade check task is {dag.upgrade_dir}")
    logs.append("Confirm that all the required packages have been uploaded.")
    for name in dag.required_packages:
        if store.find(name, dag.target_version, arch, build=build, dist=dist) is None:
            return logs, "record not found"
    return logs, None
