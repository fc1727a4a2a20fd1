"""Every call the operator makes to the outside world: the Kubernetes API and Prometheus.

:mod:`.kubernetes` owns every Kubernetes API call and maps ``ApiException`` to the
project's errors; :mod:`.prometheus` owns every Prometheus query. Nothing else in the
package imports the Kubernetes or Prometheus clients.
"""
