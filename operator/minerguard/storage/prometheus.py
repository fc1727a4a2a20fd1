"""The Prometheus client: the one place the operator talks to Prometheus.

Any failure (unreachable, timeout, an error status, an answer that is not JSON) comes out
as :class:`~minerguard.errors.MetricsError`; reading the answer is the pure
:mod:`minerguard.domain.promql`'s job.
"""

from __future__ import annotations

from typing import Any

import requests
from prometheus_api_client import PrometheusConnect
from urllib3.util.retry import Retry

from minerguard.config import PrometheusSettings
from minerguard.errors import MetricsError


class PrometheusStorage:
    """Instant queries against one Prometheus, with the settings' URL, CA, token and timeout."""

    def __init__(self, settings: PrometheusSettings) -> None:
        session = requests.Session()
        if settings.ca_file:
            session.verify = settings.ca_file
        headers = {"Authorization": f"Bearer {settings.token}"} if settings.token else None
        self._session, self._headers, self._url = session, headers, settings.url.rstrip("/")
        self._timeout = max(1.0, settings.timeout)
        self._client = PrometheusConnect(
            url=settings.url,
            headers=headers,
            disable_ssl=False,
            retry=Retry(total=1, backoff_factor=0.1),
            session=session,
            timeout=max(1, int(settings.timeout)),
        )

    def query(self, promql: str) -> Any:
        """The raw ``data.result`` of an instant query; :class:`MetricsError` on any failure."""
        try:
            return self._client.custom_query(promql)
        except Exception as exc:
            raise MetricsError(_describe(exc)) from exc

    def targets(self) -> Any:
        """The ``data`` of ``/api/v1/targets?state=active`` (scrape intervals); :class:`MetricsError` on any failure."""
        try:
            r = self._session.get(
                f"{self._url}/api/v1/targets", params={"state": "active"}, headers=self._headers, timeout=self._timeout
            )
            r.raise_for_status()
            return r.json().get("data")
        except Exception as exc:
            raise MetricsError(_describe(exc)) from exc


def _describe(exc: Exception) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 300 else text[:297] + "..."
