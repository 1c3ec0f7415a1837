"""The package calls of the API: uploads, the inventory, parameter backup, the environment."""

from __future__ import annotations

import logging
import os
from typing import NamedTuple, Optional, Union

from ._caller import Caller, CallsBase, contents
from ._errcodes import own_finding, unknown_route
from ._exceptions import (
    ApiError,
    DecodeError,
    InvalidArgumentError,
    ObshellError,
    PackageChangedError,
    PackageDamagedError,
    TransportError,
)
from ._models import ObParameter, UpgradePackageInfo
from ._request import Request
from ._text import printable
from ._transport import Timeout, read_reply
from ._transport_errors import reply_lost
from ._upload import (
    NEW_UPLOAD,
    check_package_digest,
    check_package_path,
    package_request,
    package_size,
)
from ._validate import MAX_LIFETIME, brief_repr, check_timeout, check_upload_timeout

__all__ = ["MAYBE_STORED", "PROBE_LOST", "PackageCalls", "SaidAs", "probe_lost"]

log = logging.getLogger("obshell_sdk")

#: What an upload whose reply was lost (or was a gateway's 5xx page) ends with: ``{again}``
#: who uploads it again, and when (:class:`SaidAs`).
MAYBE_STORED = (". The agent may have stored the package, or may still be storing it: "
                "client.packages() lists it once stored. {again}: each upload stores "
                "another copy, and the list shows only the newest")


class SaidAs(NamedTuple):
    """How an upload's errors say what to do next: who uploads again.

    They name the caller's ``client``; a rollout's target error names the target's own
    (``_rollout_report.target_said``).
    """

    #: A rollout's upload: after a lost reply, running the rollout again lists the target's
    #: packages and uploads it only when they lack it (else the caller, by hand).
    rollout: bool = False

    def maybe_stored(self) -> str:
        """:data:`MAYBE_STORED` as said to this client's user."""
        again = ("Running the rollout again uploads it only if it is not listed then"
                 if self.rollout else "Upload it again only if it is not listed")
        return MAYBE_STORED.format(again=again)


#: The caller's own ``client``: it uploads again by hand.
_CALLER = SaidAs()

#: How to go on after an upload that stored nothing.
_AGAIN = "run the upload (or the upgrade call or rollout that uploaded it) again"

#: What a lost reply to the upload route's probe (:func:`_has_new_upload`) ends with.
PROBE_LOST = (". That was the SDK's empty probe of the upload route, before the package was "
              f"sent: nothing was stored; {_AGAIN}")
#: The mark the probe's error carries (:func:`probe_lost` reads it), among its attributes:
#: it outlives any rewording of the message, and pickling (``ObshellError.__reduce__``).
_PROBE_MARK = "_upload_route_probe"

#: The slowest link an upload's default deadline allows for, in bytes a second.
_SLOWEST_LINK = 1024 * 1024


class PackageCalls(CallsBase):
    """Packages (upload, inventory, delete), parameter backup and restore, environment check."""

    _new_upload: Optional[bool] = None  # learnt on the first upload (a class default)

    def upload_package(
        self, path: Union[str, os.PathLike[str]], *, lifetime: Optional[float] = None,
        timeout: Optional[Timeout] = None,
    ) -> UpgradePackageInfo:
        """Upload an RPM (obshell or OceanBase) to the cluster; what the agent stored.

        The newer ``POST /api/v1/package`` is used where the agent has it (the body in
        clear, checked by its SHA-256), else ``POST /api/v1/upgrade/package`` (the body
        encrypted). The file is streamed from disk (memory stays at one read buffer).
        ``lifetime`` is how long the signed header stays valid (older agents check it after
        the whole body arrived): by default 600 s, or as long as the file takes at 1 MiB/s
        when that is longer; at most a day. ``timeout`` bounds the call: by default the
        client's connect timeout, then as long as the header lives (no less than the
        client's read timeout when the lifetime is the default one). A missing, empty or
        non-RPM file is refused before anything is sent (:class:`InvalidArgumentError`), and
        so is one that fails the MD5 check obshell makes of an upload (its RPM signature's
        SIZE and MD5, over the header and payload): cut short or damaged; so is one removed
        or made unreadable after these checks, before anything of it is sent (the route's
        probe may have gone). The file is read once for that check and the newer route's
        SHA-256. obshell checks no password on the newer route, so a wrong one is not
        noticed here: the workflows and rollouts make a signed read first. Any error of
        sending it (a 500, a lost reply, one that does not fit) starts with ``uploading
        'FILE': ``, the path as given.
        """
        file = check_package_path(path)
        bounds = _bounds(self, file, lifetime, timeout)  # all input checked before any I/O
        sha256 = check_package_digest(file, sha256=self._new_upload is not False)
        return _send_package(self, file, sha256, *bounds)

    def _upload_checked(self, file: str, sha256: Optional[str],
                        lifetime: Optional[float] = None, *, said_as: SaidAs = _CALLER
                        ) -> UpgradePackageInfo:
        """:meth:`upload_package` of a file checked already, its check's SHA-256 reused.

        ``file`` passed :func:`check_package_path` and :func:`check_package_digest`, which
        returned ``sha256`` (None: read here if the newer route wants it): the file is read
        once more, to send it. A file changed since is caught by the agent's own checks; one
        gone or unreadable is refused before it is sent (:class:`InvalidArgumentError`).
        ``said_as`` is who the errors' hints say uploads again (a rollout, or the caller).
        """
        return _send_package(self, file, sha256, *_bounds(self, file, lifetime, None),
                             said_as=said_as)

    def packages(self) -> list[UpgradePackageInfo]:
        """``GET /api/v1/upgrade/package/info``: the packages the cluster holds, newest first.

        One row per name, version, release and architecture (the newest upload of each).
        """
        return self._read(contents(UpgradePackageInfo.from_json), "GET",
                          "/api/v1/upgrade/package/info")

    def delete_package(self, package_id: int) -> None:
        """``DELETE /api/v1/upgrade/package/{id}``: remove a package from the cluster.

        obshell answers success whether or not the id existed: check :meth:`packages`.
        """
        if isinstance(package_id, bool) or not isinstance(package_id, int) or not (
                0 < package_id < 2**63):
            raise InvalidArgumentError("package_id", f"{brief_repr(package_id)} is not a "
                                       "package id (a positive integer, see packages())")
        self.call("DELETE", f"/api/v1/upgrade/package/{package_id}")

    def backup_params(self) -> list[ObParameter]:
        """``POST /api/v1/upgrade/params/backup``: the upgrade-sensitive parameters, per server.

        (``server_permanent_offline_time``, ``enable_rebalance``, ``enable_rereplication``.)
        """
        return self._read(contents(ObParameter.from_json), "POST",
                          "/api/v1/upgrade/params/backup")

    def restore_params(self) -> None:
        """``POST /api/v1/upgrade/params/restore``, as obshell offers it.

        Beware: obshell (checked at 61ee147) never reads this call's body and restores
        nothing; it answers success all the same. The upgrade DAGs restore the parameters
        themselves (their "Restore parameters" node).
        """
        log.warning("agent %s: obshell's params/restore restores nothing (it ignores its "
                    "input); the upgrade DAGs restore parameters themselves", self.agent)
        self.call("POST", "/api/v1/upgrade/params/restore", body={})

    def check_environment(self) -> None:
        """``POST /api/v1/upgrade/env/check``: this agent's Python and ``mysql.connector``.

        Returns when both are there; raises the agent's :class:`ApiError`
        (``Environment.WithoutPython`` / ``Environment.WithoutModule``) otherwise.
        """
        self.call("POST", "/api/v1/upgrade/env/check")


def _bounds(client: Caller, file: str, lifetime: Optional[float], timeout: Optional[Timeout]
            ) -> tuple[float, tuple[float, float]]:
    """An upload's signed lifetime and the call's ``(connect, read)`` timeout, checked."""
    if lifetime is None:
        lifetime = min(max(600.0, package_size(file) / _SLOWEST_LINK), MAX_LIFETIME)
        read = max(client.timeout[1], lifetime)
    else:  # the caller's bound, even below the client's read timeout
        lifetime = read = check_upload_timeout(lifetime, "lifetime")
    return lifetime, ((client.timeout[0], read) if timeout is None
                      else check_timeout(timeout, "timeout"))


def _send_package(client: Caller, file: str, sha256: Optional[str], lifetime: float,
                  limit: tuple[float, float], *, said_as: SaidAs = _CALLER
                  ) -> UpgradePackageInfo:
    """Send checked ``file`` (its SHA-256, if known) within ``lifetime`` and ``limit``.

    Whatever sending it raises (the route's probe, the upload, its reply) starts with
    ``uploading 'FILE': ``, the path as the caller gave it: a one-call upgrade or a rollout
    uploads several in turn. Only the errors the file itself caused (PackageDamagedError and
    its PackageChangedError) also carry it as ``file``: of others (a 500, a lost reply, a
    reply that does not fit) the agent or the link is the cause, the file only what was
    under way. An InvalidArgumentError is a refusal before sending: it names its argument.
    ``said_as`` is who the hints say uploads again (:meth:`PackageCalls._upload_checked`).
    """
    try:
        return _sent(client, file, sha256, lifetime, limit, said_as)
    except InvalidArgumentError:
        raise
    except ObshellError as exc:
        if isinstance(exc, PackageDamagedError):
            exc.file = file
        exc._prefix_message(f"uploading {file!r}: ")
        raise


def _sent(client: Caller, file: str, sha256: Optional[str], lifetime: float,
          limit: tuple[float, float], said_as: SaidAs) -> UpgradePackageInfo:
    """:func:`_send_package`'s work: the route asked (once), the file sent, the reply read."""
    new = _has_new_upload(client, (limit[0], min(client.timeout[1], limit[1])))  # within it
    request, bodies = package_request(file, lifetime, new=new, file_sha256=sha256)
    try:
        data = client._send(request, limit).data
    except (TransportError, DecodeError) as exc:
        failure = next((body.failure for body in bodies if body.failure is not None), None)
        if failure is not None:  # the file, not the link: the agent got part of it
            raise _cut_short(request, client.agent, failure) from exc
        if reply_lost(exc):  # the agent may have stored it
            exc._prefix_message("", said_as.maybe_stored())
        raise
    finally:
        for body in bodies:
            body.close()
    try:
        info = read_reply(UpgradePackageInfo.from_json, data, request.method, request.path,
                          client.agent)
    except DecodeError as exc:  # its envelope said it succeeded
        exc._prefix_message("", ". The agent said it stored the package: "
                            "client.packages() lists it")
        raise
    log.info("agent %s: stored package %s", client.agent, printable(
        f"{info.name} {info.version}-{info.release_distribution} ({info.architecture})"))
    return info


def _cut_short(request: Request, agent: str, failure: OSError) -> PackageChangedError:
    """The upload ``request`` the SDK cut short: its file could not be read to its end.

    The file changed while it was sent (it shrank, or a read of it failed): the agent got
    part of the body and stored nothing. The SDK's own finding, so status 0.
    """
    said = (f"the upload was cut short: the file could not be read to its end "
            f"({failure.strerror or failure}), so the agent got part of it and stored nothing")
    return own_finding(  # its own hint: no agent refused it, nothing was altered on the way
        PackageChangedError, said, f"{request.method} {request.path} on {agent}: {said}. "
        f"{_CUT_SHORT}", method=request.method, path=request.path, agent=agent,
        hint=_CUT_SHORT)


#: What to do after the SDK cut an upload short.
_CUT_SHORT = f"Make sure nothing is writing or removing the file, then {_AGAIN}"


def _has_new_upload(client: Caller, timeout: tuple[float, float]) -> bool:
    """Whether the agent has ``/api/v1/package``, asked once with an empty POST.

    An agent that has it refuses the empty upload (``Request.File.Missing``, or a legacy
    code before obshell 4.3 had error codes); one that does not answers as to an unknown
    route: 404, or 400 with code 1000 before 4.2.4 (PROTOCOL §1). Nothing is stored either
    way, so a lost reply (or a gateway's 5xx page) says so: :data:`PROBE_LOST`.
    """
    if client._new_upload is not None:
        return client._new_upload
    try:
        client._send(Request("POST", NEW_UPLOAD, signed=False), timeout)
        found = True  # an agent that took an empty upload has the route, oddly
    except ApiError as exc:
        found = not unknown_route(exc)
    except (TransportError, DecodeError) as exc:
        if reply_lost(exc):  # not "the agent may have stored it": it stores nothing
            exc._prefix_message("", PROBE_LOST)
            vars(exc)[_PROBE_MARK] = True
        raise
    client._new_upload = found
    log.debug("agent %s: %s upload", client.agent, "new" if found else "old")
    return found


def probe_lost(exc: ObshellError) -> bool:
    """Whether ``exc`` is the upload route's probe that lost its reply: nothing was stored.

    A POST whose reply was lost, but one that stores nothing (:func:`_has_new_upload`):
    the upload was never sent, so nothing is unknown. Read from the mark the probe set on
    its error where it was raised, never from the message's words.
    """
    return reply_lost(exc) and vars(exc).get(_PROBE_MARK) is True
