"""The project's own errors. ``storage`` turns every ``ApiException`` into one of these."""

from __future__ import annotations


class MinerguardError(Exception):
    """Base class of every error minerguard raises on purpose."""


class KubeError(MinerguardError):
    """A Kubernetes API call failed."""

    def __init__(self, message: str, status: int = 0, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class NotFound(KubeError):
    """The object does not exist (404)."""


class AlreadyExists(KubeError):
    """The object exists already (409 on create)."""


class Conflict(KubeError):
    """The object changed since it was read (409 on update)."""


class Forbidden(KubeError):
    """RBAC or an admission policy refused the call (403)."""


class Invalid(KubeError):
    """The apiserver rejected the object as invalid (422)."""


class Transient(KubeError):
    """The apiserver is unreachable, overloaded or answered 5xx/429: try again.

    ``retry_after``: the seconds the server asked to wait (its ``Retry-After`` header), if it did.
    """

    def __init__(self, message: str, status: int = 0, reason: str = "", retry_after: float | None = None) -> None:
        super().__init__(message, status, reason)
        self.retry_after = retry_after


class MetricsError(MinerguardError):
    """Prometheus could not be asked, or its answer could not be read."""
