"""minerguard: find cryptominers in a Kubernetes cluster and contain them.

The public face is small: the ``minerguard`` command (``minerguard run`` for the
operator, ``minerguard scan`` for offline checks of manifests) and the two custom
resources, MinerPolicy and MinerIncident. Everything else is internal.
"""

__version__ = "0.1.0"
API_GROUP = "minerguard.io"
API_VERSION = "v1alpha1"

__all__ = ["API_GROUP", "API_VERSION", "__version__"]
