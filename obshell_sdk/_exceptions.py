"""Every error the SDK raises, in one tree rooted at :class:`ObshellError`.

::

    ObshellError
    ├── InvalidArgumentError        the caller's input was refused; nothing was sent (a ValueError)
    ├── TransportError              the agent could not be talked to
    │   ├── ConnectError            never reached the agent or its proxy (refused, DNS, timeout)
    │   └── ConnectionLostError     reached it, but the reply did not arrive
    │       ├── ReadTimeoutError    ... because the read timeout ran out
    │       └── OutcomeUnknownError a task-creating call lost its reply and no task was found
    ├── DecodeError                 the reply is not what obshell sends (not HTTP/JSON, wrong shape)
    ├── WeakKeyError                the agent's RSA key is too short to carry a password
    ├── ApiError                    obshell answered with an error (status 0: the SDK's own)
    │   ├── AuthError               the agent refused the credentials (401 and friends)
    │   │   ├── WrongPasswordError
    │   │   ├── PasswordKindError   the agent wants the other password (agent vs root@sys)
    │   │   ├── AuthExpiredError    our expiry time was already past on the agent's clock
    │   │   ├── UriMismatchError
    │   │   ├── DecryptFailedError  the agent could not decrypt the header (stale key)
    │   │   └── AuthDialectError    the agent found no header it reads: another auth dialect?
    │   ├── BadRequestError         a 400 no class here names: the agent refused the parameters
    │   │   └── OperatorRefusedError  obshell refused an operator (retry...): nothing was changed
    │   ├── NotFoundError           404
    │   │   └── TaskNotFoundError
    │   ├── UnderMaintenanceError   another maintenance task holds the cluster lock
    │   ├── PackageMissingError     a package the call needs was not uploaded (400 or 500)
    │   └── ServerError             a 5xx no class here names
    │       └── PackageDamagedError an uploaded RPM failed the agent's MD5 check (after the SDK's)
    │           └── PackageChangedError  the file changed while sent: a 401 (SHA-256), or cut short
    ├── TaskError                   a followed task did not end well; carries ``task_id``
    │   ├── TaskStateError          an operator does not apply to the task's state (not sent)
    │   ├── TaskTimeoutError        the wait's deadline passed (the task goes on; a TimeoutError)
    │   ├── TaskUnreachableError    polling kept failing for longer than the failure budget
    │   ├── TaskFailedError         FAILED; carries the failing sub-tasks and their logs
    │   ├── TaskCancelledError      FAILED after CANCEL
    │   ├── TaskRolledBackError     SUCCEED after ROLLBACK: the change did not happen
    │   └── UpgradeNotConfirmedError  the upgrade succeeded but /info shows another version
    └── RolloutStoppedError         a rollout stopped on an error of its own, not a cluster's

The tree is drawn here only. Its classes live here but for three: ``TaskError``'s family in
:mod:`._task_errors` (what a task's end means, not an agent's reply), ``OperatorRefusedError``
in :mod:`._errcodes` (it reads the refused ``Operator`` from its code) and the last, with the
rollout report it carries. Those here need the standard library (and :mod:`._text`) only.
No message ever contains a password.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from ._text import printable

if TYPE_CHECKING:  # pragma: no cover
    from ._models import ErrorInfo

__all__ = ["ApiError", "AuthDialectError", "AuthError", "AuthExpiredError", "BadRequestError",
           "ConnectError", "ConnectionLostError", "DecodeError", "DecryptFailedError",
           "InvalidArgumentError", "NotFoundError", "ObshellError", "OutcomeUnknownError",
           "PackageChangedError", "PackageDamagedError", "PackageMissingError", "PasswordKindError",
           "ReadTimeoutError", "ServerError", "TaskNotFoundError", "TransportError",
           "UnderMaintenanceError", "UriMismatchError", "WeakKeyError", "WrongPasswordError"]


def _restore(cls: type[ObshellError], args: tuple[object, ...], state: dict[str, object]) -> object:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class ObshellError(Exception):
    r"""Base of every error raised by obshell_sdk. Every one of them pickles (for process pools).

    Its text shows control characters as hex escapes (ESC as ``\x1b``): messages quote what the
    agent wrote (errors, task names, logs), and a traceback printed on a terminal must not
    let an agent drive it. Attributes such as :attr:`ApiError.message` keep the raw text.
    """

    def __str__(self) -> str:
        return printable(super().__str__(), keep_newlines=True)

    def __reduce__(self) -> tuple[object, ...]:
        return (_restore, (type(self), self.args, self.__dict__))

    def _prefix_message(self, prefix: str, suffix: str = "") -> None:
        """Start the message with ``prefix`` and end it with ``suffix``, once; attributes stay."""
        text = str(self.args[0]) if len(self.args) == 1 else Exception.__str__(self)
        text = text if text.startswith(prefix) else prefix + text
        Exception.__init__(self, text if text.endswith(suffix) else text + suffix)  # sets args


class InvalidArgumentError(ObshellError, ValueError):
    """An argument, named by ``argument``, was refused before anything was sent to the agent.

    But for two: a one-call upgrade's package that the agent read as another version than
    the one asked for is refused after it was stored (the message says so, with its id); a
    package file removed after its checks, when earlier uploads may have gone already.
    """

    def __init__(self, argument: str, message: str) -> None:
        super().__init__(f"{argument}: {message}")
        self.argument = argument


class TransportError(ObshellError):
    """The exchange broke below obshell's protocol: ``method`` ``path`` on ``agent`` (host:port)."""

    def __init__(self, message: str, *, method: str, path: str, agent: str) -> None:
        super().__init__(f"{method} {path} on {agent}: {message}")
        self.method = method
        self.path = path
        self.agent = agent


class ConnectError(TransportError):
    """The agent, or its proxy, could not be reached (connection refused, unknown host, timeout).

    The request certainly did not reach the agent, so repeating it cannot run anything twice.
    """


class ConnectionLostError(TransportError):
    """The request may have reached the agent but no complete reply came back."""


class ReadTimeoutError(ConnectionLostError):
    """The agent did not answer within the read timeout."""


class OutcomeUnknownError(ConnectionLostError):
    """A call that creates a task lost its reply, and the agent shows no such task (yet).

    It was not sent again (that could start the operation twice). ``dag_name`` is the name the
    task would have; look for it before trying again.
    """

    def __init__(self, message: str, *, method: str, path: str, agent: str, dag_name: str) -> None:
        super().__init__(message, method=method, path=path, agent=agent)
        self.dag_name = dag_name


class DecodeError(ObshellError):
    """A reply did not have the shape obshell gives it, or was not HTTP at all (no ``status``).

    ``where``: the JSON path of the part that did not fit (``data.nodes[2].state``); ``excerpt``:
    the start of a reply that could not be read; ``status``: the reply's HTTP status when the
    reply as a whole was not obshell's (0 when its data did not fit, or it was not HTTP: then
    ``excerpt`` is its first line); ``method``, ``path``: the request, and ``agent``, its
    ``host:port``, whose reply it is (the message starts with them; empty only for a model built
    outside a call, ``DagDetail.from_json(obj)``); ``task_id``: the task a poll was about, or "".
    """

    def __init__(self, message: str, *, where: str = "", excerpt: str = "", status: int = 0,
                 method: str = "", path: str = "", task_id: str = "", agent: str = "") -> None:
        text = f"{where}: {message}" if where else message
        super().__init__(text + (f" (reply starts with {excerpt!r})" if excerpt else ""))
        self.where = where
        self.excerpt = excerpt
        self.status = status
        self.method: str = ""
        self.path: str = path
        self.task_id = task_id
        self.agent: str = agent
        if method:
            self._name_exchange(method, path, agent)

    def _name_exchange(self, method: str, path: str, agent: str) -> None:
        """Say whose reply this is: ``method path on agent``, unless it says so already."""
        if not self.method:
            self.method = method
            self.path = path
            self.agent = agent
            self._prefix_message(f"{method} {path}{f' on {agent}' if agent else ''}: ")

    @property
    def refusal_page(self) -> bool:
        """True for a 3xx or 4xx page, not obshell's, sent instead of passing the request on.

        No obshell handler ran such a request: it is safe to send again. A 2xx or 5xx page
        (a gateway timeout) may come after the agent acted, so may not be.
        """
        return 300 <= self.status < 500


class WeakKeyError(ObshellError):
    """The agent's RSA key (``bits`` long) is shorter than ``PasswordAuth(min_key_bits=...)``.

    Nothing was signed with it (``agent``: who offered it). obshell up to 4.4.1 ships 512-bit
    keys, which can be factored; agents from 4.4.2 on replace them with 1024-bit keys.
    """

    def __init__(self, message: str, *, bits: int, agent: str = "") -> None:
        super().__init__(message)
        self.bits = bits
        self.agent = agent


class ApiError(ObshellError):
    """The agent answered with an obshell error envelope, or the SDK refused on what it showed.

    Mostly the agent's reply: :attr:`status` is its HTTP status. :attr:`status` 0 is the SDK's
    own refusal from what the agent showed, which no agent sent (no :attr:`trace_id`): before
    an upgrade's uploads, an :class:`UnderMaintenanceError` (a FAILED or cancelled task holds
    the cluster's lock) or a :class:`BadRequestError` (a SINGLE agent, of no cluster); the
    CLI's :class:`NotFoundError` for ``package delete`` of an id the cluster's package list
    lacks; a :class:`PackageChangedError` for an upload cut short (its file no longer read).

    Branch on :attr:`err_code` (obshell 4.3.1 and later) or :attr:`code` (older agents) or on
    the subclass, never on :attr:`message`, which the agent may localise.
    """

    def __init__(self, *, status: int, err_code: str, code: int, message: str, trace_id: str,
                 method: str, path: str, error: Optional[ErrorInfo] = None,
                 agent: str = "") -> None:
        label = err_code or (f"code {code}" if code else f"HTTP {status}")
        trace, hint = (f", trace id {trace_id}" if trace_id else ""), self.hint and ". " + self.hint
        # the agent's words on one line: a newline in them cannot forge a line of ours
        super().__init__(f"{method} {path}{f' on {agent}' if agent else ''} failed: HTTP {status} "
                         f"{printable(label)}: {printable(message)}{trace}{hint}")
        #: The HTTP status of the reply; 0 when the SDK refused on its own (no agent sent it).
        self.status = status
        #: obshell's errCode, e.g. ``Task.NotFound`` (empty when the agent sent only a code).
        self.err_code = err_code
        #: obshell's numeric (legacy) code, 0 when absent.
        self.code = code
        #: The agent's message (localised with ``accept_language``): show it, never parse it.
        self.message = message
        #: The ``X-OBSHELL-Trace-ID`` of the exchange, for the agent's log ("" if none).
        self.trace_id = trace_id
        #: The request's method and path, and the agent's ``host:port`` ("" if not known).
        self.method: str = method
        self.path: str = path
        self.agent: str = agent
        #: The envelope's whole ``error`` object, when it had one.
        self.error = error

    #: What the caller can do next (empty when there is nothing specific); ends the message.
    #: The class's, or the error's own: what its errCode says (``OperatorRefusedError``'s, say).
    hint: str = ""


class AuthError(ApiError):
    """The agent refused the request's credentials."""

    hint = ("Check the passwords (PasswordAuth's password and agent_password, or "
            "OBSHELL_PASSWORD and OBSHELL_AGENT_PASSWORD for from_env)")


class WrongPasswordError(AuthError):
    """The root@sys password or the agent password is wrong."""

    hint = ("The password was refused (the error code says which): give the right one "
            "(PasswordAuth's password or agent_password, OBSHELL_PASSWORD or "
            "OBSHELL_AGENT_PASSWORD for from_env)")


class PasswordKindError(AuthError):
    """The agent wants the other kind of password (agent password vs root@sys password)."""

    hint = ("Give PasswordAuth the agent password (agent_password=...) when the agent has "
            "one, else the root@sys password")


class AuthExpiredError(AuthError):
    """The signed expiry time was already past on the agent's clock."""

    hint = "The clocks disagree: sync this machine's clock or raise PasswordAuth(lifetime=...)"


class UriMismatchError(AuthError):
    """The signed request-target differs from the one the agent received (a rewriting proxy?)."""

    hint = "Something between us and the agent rewrote the URL; talk to the agent directly"


class DecryptFailedError(AuthError):
    """The agent could not decrypt the auth header, usually because its key changed."""

    hint = "The agent's key changed or the header was damaged; the SDK refetches the key once"


class AuthDialectError(AuthError):
    """The agent found no auth header it reads in the signed request (never a wrong password)."""

    hint = ("A proxy between may have dropped the header (reach the agent without one), or "
            "the agent takes another auth dialect (obshell 4.2.2 X-OCS-Auth, later ones "
            "X-OCS-Header): drop version= if you forced one, or force the agent's with "
            "PasswordAuth(..., version='v1' or 'v2')")


class BadRequestError(ApiError):
    """The agent refused the parameters (HTTP 400)."""


class NotFoundError(ApiError):
    """The agent has no such thing (HTTP 404)."""


class TaskNotFoundError(NotFoundError):
    """No task, node or sub-task has this id."""

    hint = ("Check the task id; list unfinished tasks on the agent to find it. If you started "
            "a task and its agent is restarting, wait for it: client.task(id, exists=True).wait()")


class UnderMaintenanceError(ApiError):
    """Another maintenance task holds the cluster lock (a failed upgrade keeps it)."""

    hint = ("The task named in the message holds the lock (client.last_maintenance_dag() finds "
            "it): if it is running, client.task(dag.id).wait(); if it failed (or was cancelled), "
            "client.task(dag.id).retry(), .rollback() or .skip(), as its steps allow")


class PackageMissingError(ApiError):
    """The agent lacks a package the call needs (it names them); the call made no task."""

    hint = ("Upload the packages it names first, client.upload_package(path) for each (OceanBase"
            " CE needs oceanbase-ce and oceanbase-ce-libs), then call again")


class ServerError(ApiError):
    """The agent failed internally (HTTP 5xx)."""


class PackageDamagedError(ServerError):
    """An uploaded RPM failed obshell's MD5 check: damaged or changed after the SDK's own check.

    :attr:`file` names the package the SDK was uploading (the message starts with it).
    """

    hint = "The file is damaged or changed: check it (rpm -K FILE) or download it again, then retry"
    #: The package file the upload sent, as the caller gave its path ("" when not known).
    file: str = ""


class PackageChangedError(PackageDamagedError):
    """The file changed while it was read and sent (something still writing it, or removing it).

    Mostly obshell's ``Security.Authentication.File.Sha256Mismatch`` (HTTP 401, the newer
    upload): the bytes it got differ from the SHA-256 sent with them (or were altered on the
    way); no credential was refused. Status 0: the SDK cut the upload short, the file no
    longer readable to its end (it shrank). The agent stored nothing either way, and the
    SDK does not send it again by itself. A :class:`PackageDamagedError` (so a
    :class:`ServerError`, whatever its status): what catches a damaged upload catches it.
    """

    hint = ("The file changed while it was sent (is something still writing it?), or its "
            "bytes were altered on the way: make sure nothing is writing it, then run the upload "
            "(or the upgrade call or rollout that uploaded it) again; this file was not stored")
