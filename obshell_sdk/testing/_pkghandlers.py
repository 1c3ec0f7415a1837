"""Handlers of the package endpoints: both uploads, inventory, deletion (upgrade family §5, §6).

``POST /api/v1/upgrade/package`` (behind ``Verify``, AES-encrypted multipart) and
``POST /api/v1/package`` (``VerifyFile`` only: clear multipart, ``X-OCS-File-SHA256``) share
the package checks of ``_packages.py``; they answer the stored row in two key styles.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Optional

from ._context import Context
from ._crypto import DecryptError
from ._errors import NO_DATA, ApiError, NoRouteError
from ._packages import PackageRow, check_upload
from ._params import require_cluster_agent, split_release
from ._rpm import LEAD_MAGIC, RpmError, read_rpm

_RPM_NAME = re.compile(
    r"^(?P<name>.+)-(?P<version>[^-]+)-(?P<release>[^-]+)\.(?P<arch>[^.]+)\.rpm$")
_GO_INT = re.compile(r"^[+-]?[0-9]+$")


def multipart_file(body: bytes, content_type: str) -> tuple[str, Optional[bytes], str]:
    """Part ``file`` of a multipart body: (filename, content or ``None``, Go's error text)."""
    m = re.search(r'boundary="?([^";]+)"?', content_type)
    if not content_type.lower().startswith("multipart/form-data") or not m:
        return "", None, "request Content-Type isn't multipart/form-data"
    delim = b"--" + m.group(1).encode("latin-1")
    for part in body.split(delim)[1:]:
        if part.startswith(b"--"):
            break
        head, sep, data = part.partition(b"\r\n\r\n")
        if not sep:
            continue
        disp = next((line for line in head.decode("latin-1").split("\r\n")
                     if line.lower().startswith("content-disposition")), "")
        if re.search(r'\bname="?file"?(;|$|\s)', disp):
            fn = re.search(r'filename="([^"]*)"', disp)
            content = data[:-2] if data.endswith(b"\r\n") else data
            return (fn.group(1) if fn else ""), content, ""
    return "", None, "http: no such file"


def _file_part(ctx: Context, *, data_null: bool) -> tuple[str, bytes]:
    filename, content, error = multipart_file(
        ctx.body, ctx.req.header_lookup("Content-Type") or "")
    if content is None:
        raise ApiError(500, "Request.File.Missing",
                       f"File 'file' in the request is missing: {error}", data_null=data_null)
    return filename, content


def _lenient_row(ctx: Context, filename: str, content: bytes) -> PackageRow:
    """A non-RPM on the old upload, without ``strict_upload``: named after its file name."""
    m = _RPM_NAME.match(filename)
    name, version, release, arch = (m.group("name"), m.group("version"), m.group("release"),
                                    m.group("arch")) if m else ("obshell", "", "", "x86_64")
    split_release(release)
    return ctx.state.inventory.add(
        name=name, version=version, release=release, arch=arch, size=len(content),
        payload_size=len(content), md5=hashlib.md5(content).hexdigest(),  # noqa: S324
        dep_yaml="", now=ctx.state.now())


def _store(ctx: Context, filename: str, content: bytes) -> PackageRow:
    """Read and check the RPM as obshell does, then store it (raises :class:`ApiError`)."""
    a = ctx.state
    try:
        pkg = read_rpm(content)
    except RpmError as exc:
        raise ApiError(500, "Common.Unexpected", str(exc)) from None
    dep_yaml = check_upload(pkg, edition=a.edition, ob_version=a.ob_version)
    row = a.inventory.add(name=pkg.name, version=pkg.version, release=pkg.release,
                          arch=pkg.arch, size=pkg.size, payload_size=pkg.payload_size,
                          md5=pkg.md5, dep_yaml=dep_yaml, now=a.now())
    a.packages.append((filename, content))
    return row


def upload_package(ctx: Context) -> Any:
    """``POST /api/v1/upgrade/package``: the old, encrypted upload; Go field names.

    Without ``strict_upload`` a file that is not an RPM at all is stored under its file name
    (``name-version-release.arch.rpm``), as earlier versions of this fake did.
    """
    a = ctx.state
    require_cluster_agent(a.identity, f"{a.host}:{a.port}")
    filename, content = _file_part(ctx, data_null=True)
    if not a.strict_upload and not content.startswith(LEAD_MAGIC):
        row = _lenient_row(ctx, filename, content)
        a.packages.append((filename, content))
        return row.model_json()
    try:
        return _store(ctx, filename, content).model_json()
    except ApiError as exc:
        exc.data_null = True
        raise


def verify_file(ctx: Context, content: bytes) -> None:
    """``VerifyFile``: ``X-OCS-File-SHA256`` must decrypt to the part's lowercase hex SHA-256.

    Raises:
        ApiError: 401 ``Common.Unauthorized`` (undecryptable) or
            ``Security.Authentication.File.Sha256Mismatch`` (different, or no header).

    """
    header = ctx.req.header_lookup("X-OCS-File-SHA256") or ""
    try:
        claimed = ctx.state.key.decrypt_b64(header)
    except DecryptError as exc:
        raise ApiError(401, "Common.Unauthorized",
                       f"Unauthorized: decrypt file sha256 failed: {exc}") from None
    if claimed != hashlib.sha256(content).hexdigest().encode():
        raise ApiError(401, "Security.Authentication.File.Sha256Mismatch", "File SHA256 mismatch")


def new_upload(ctx: Context) -> Any:
    """``POST /api/v1/package``: ``VerifyFile``, then the upload; snake_case, no ``data`` on error.

    A 404 when the agent predates it (``new_upload`` false).
    """
    a = ctx.state
    if not a.new_upload:
        raise NoRouteError()
    filename, content = _file_part(ctx, data_null=False)
    verify_file(ctx, content)
    require_cluster_agent(a.identity, f"{a.host}:{a.port}", data_null=False)
    return _store(ctx, filename, content).bo_json(fresh=True)


def package_info(ctx: Context) -> Any:
    """``GET /api/v1/upgrade/package/info``: the inventory, newest first (``contents``)."""
    a = ctx.state
    require_cluster_agent(a.identity, f"{a.host}:{a.port}", data_null=False)
    return [row.bo_json() for row in a.inventory.listing()]


def delete_package(ctx: Context) -> Any:
    """``DELETE /api/v1/upgrade/package/{id}``: 200 without data, whether or not it existed."""
    a = ctx.state
    require_cluster_agent(a.identity, f"{a.host}:{a.port}", data_null=False)
    text = ctx.path.split("/")[5]
    if not _GO_INT.match(text) or not -(1 << 63) <= int(text) < (1 << 63):
        reason = "invalid syntax" if not _GO_INT.match(text) else "value out of range"
        raise ApiError(400, "Request.Query.Param.Illegal",
                       f"Query parameter 'id' is illegal%!(EXTRA string=strconv.Atoi: "
                       f'parsing "{text}": {reason})')
    if int(text) <= 0:
        raise ApiError(400, "Request.Path.Param.Empty", "Path parameter 'pkg_id' is empty")
    a.inventory.delete(int(text))
    return NO_DATA
