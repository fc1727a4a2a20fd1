"""``minerguard scan``: evaluate Kubernetes manifests against MinerPolicies, offline.

    minerguard scan [--policies PATH ...] [-o text|json|sarif] [--fail-on enforce|audit|never] PATH...

Without ``--policies`` the default pack is used: ``minerguard/pack/*.yaml``, package data
in the wheel, which is the repository's ``manifests/policies`` (a symlink; the policies
chart reads the same files), so a plain ``pip install`` scans without a checkout.

Inputs are files, folders (searched recursively for ``*.yaml``, ``*.yml`` and ``*.json``)
or ``-`` for standard input; YAML files may hold several documents, and ``kind: List``
objects are opened. Every Pod and the pod template of every Deployment, StatefulSet,
DaemonSet, ReplicaSet, Job, CronJob and ReplicationController is evaluated against every
policy with the operator's own code (:func:`~minerguard.domain.policy.parse_policy`,
:func:`~minerguard.domain.workload.workloads_from_manifest`, :func:`~minerguard.domain.detection.evaluate`).

Offline there is no Prometheus and no namespace: CPU signals cannot be evaluated (each
policy that has some is named in a note, and in ``notEvaluable`` in JSON), and a policy with
a ``namespaceSelector`` applies to nothing.

Exit status: 0 when nothing matched, 1 when something matched, 2 on bad input. Each problem
is one line on standard error naming the file (and the document, counted from 1, or the
item of a List), and ``-o json`` lists them under ``errors`` as well; a bad file or
document does not stop the others from being scanned and reported, but the exit status
is then 2. Bad input is:

* a missing or unreadable path, a file over 64 MiB, bytes that are not UTF-8, invalid
  YAML or JSON (also a number or date YAML or JSON cannot represent), an empty manifest
  file (no documents);
* a document that is not a mapping, or has no ``kind``; a ``List`` whose ``items`` is
  not a list, or Lists nested more than 8 deep; more than 10000 objects in one file
  (YAML aliases can multiply them), the rest being ignored;
* a workload (Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob,
  ReplicationController) with a wrong type where minerguard reads it: ``spec`` that is a
  list, ``containers`` that is a string, an ``env`` that is a number, no pod template...
  One line per document names the first such field and how many more there are. What
  can be read is still scanned, as the operator would;
* an object of another kind that has a pod template (a typo such as ``Deploymnet``, or a
  custom workload such as an Argo Rollout): minerguard cannot say how it runs its pods,
  so it is not scanned. Objects of other kinds (Service, ConfigMap, MinerPolicy...) are
  skipped and counted;
* an invalid MinerPolicy (named, with its document), or one defined twice; a policy path
  without any MinerPolicy.

Text output is made printable (control characters in names and values are escaped).
"""

from __future__ import annotations

from minerguard.scan.cli import main

__all__ = ["main"]
