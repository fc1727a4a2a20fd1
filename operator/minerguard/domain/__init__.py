"""Everything minerguard decides without touching the world: pure functions and immutable values.

Nothing here imports kopf, the Kubernetes client, storage, services, actions or threading
(an import-linter contract in ``pyproject.toml`` enforces it), so every rule of detection,
containment reasoning and incident bookkeeping is testable without a cluster.
"""
