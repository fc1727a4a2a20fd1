"""The decision: does a workload match a MinerPolicy, on what evidence, and what to do.

Pure functions of their inputs (no kopf, no Kubernetes client, no I/O, no clock), shared by
the operator and the offline ``minerguard scan``; the same inputs always give the same
verdict with the same evidence in the same order.

Rules
-----
1. **Scope** (:func:`in_scope`): a workload in one of ``scope.excludedNamespaces`` or whose
   labels match ``scope.excludedPodSelector`` is never evaluated. A ``namespaceSelector``
   must match the namespace's labels; when those are unknown (``None``, e.g. offline), a
   policy with a non-empty namespaceSelector does not apply. A ``podSelector`` must match
   the pod's labels. A missing selector is no constraint; ``{}`` selects everything (so
   ``excludedPodSelector: {}`` excludes every pod, as in Kubernetes).
2. **Findings** (:func:`spec_findings`): every container of every kind (containers,
   initContainers, ephemeralContainers) is read, in order; per container the signal kinds
   come in the order image, imageDigest, poolEndpoint, poolHost, poolPort, process,
   argument, wallet. A finding is one (signal kind, container, matched value): found twice,
   it is reported once, Strong if any of the indicators that found it is Strong.

   * *image*: each image pattern is tried on the whole reference
     (``docker.io/foo/xmrig:6.21``) and on its part after the last ``/`` (``xmrig:6.21``),
     so both ``*xmrig*`` and ``xmrig:*`` work.
   * *imageDigest*: the ``@sha256:...`` of the image reference and every ``sha256:<64 hex>``
     inside the container status ``imageID``.
   * *pools*: command, args and literal env values are cut into tokens (on whitespace,
     quotes, ``; | & ( ) < > { } ` , =``). A URL whose scheme is listed (``stratum+tcp://...``)
     is a *poolEndpoint*. Hosts of URLs and of ``host:port`` tokens are matched against the
     pool host patterns (*poolHost*). A listed port counts (*poolPort*) only in a
     ``host:port`` token or a URL whose scheme is not http, https, ws or wss, and never for
     a loopback or listen-all host (``localhost``, ``127.x``, ``0.0.0.0``); a bare number is
     never a port.
   * *process*: base names of command[0] (or args[0] without a command) and, for
     ``sh -c``/``bash -c`` style invocations, of the programs of the shell script: the
     first word of every command (after ``;``, ``|``, ``&``, ``(``, newlines, backquotes),
     the program after wrappers such as ``nohup``, ``exec``, ``env``, ``timeout`` or another
     shell, and every word that looks like a path (``/tmp/x``, ``./x``).
   * *argument*: a glob is matched against every command/args item and every word inside
     it; a regex is searched in the command line (command and args joined by spaces).
   * *wallet*: with ``monero: true``, any run of exactly 95 or 106 base58 characters
     starting with 4 or 8 in command, args or literal env values; further wallet patterns
     (regex searched in each value, glob matched against each word). Shown shortened.
3. **Match** (:func:`evaluate`): in scope, and at least one Strong finding or Weak findings
   of at least ``match.weakSignalsRequired`` distinct kinds, and every kind of
   ``match.requireSignals`` among the findings. Metric findings (CPU, from Prometheus) are
   measured by the caller against this policy's thresholds and passed in; they count like
   spec ones, but only for the kinds the policy declares under ``signals.cpu``.
4. **Actions**: none in Audit mode. In Enforce mode the policy's actions in order, minus
   those with ``when: HostAccess`` when the pod has no host access (privileged, hostPID,
   hostIPC, hostNetwork or a hostPath volume).
5. **Nodes** (:func:`evaluate_node`): node-level CPU findings (``nodeCpu``,
   ``nodeUnaccountedCpu``) are judged for the node itself, with the same match rule. Pod
   scope does not apply to a node, but a policy narrowed to some pods (a non-empty
   ``podSelector`` or ``namespaceSelector``) never judges nodes. Only the node actions
   (``cordon``, ``taint``) are taken, whatever their ``when``: a miner outside any pod has
   the host by definition.

Bounds
------
Whatever the pod, the work is bounded and the verdict does not depend on how it is done:

* the workload view holds at most 1 MiB of container text per pod, shared fairly between
  containers, each value cut to 64 KiB (see :mod:`minerguard.domain.workload`), and RE2 matches in
  linear time with bounded programs (see :mod:`minerguard.domain.patterns`);
* at most :data:`MAX_TOKENS` distinct tokens per container are examined per signal family
  (a token seen twice in a container is examined once, where it is first seen);
* at most :data:`MAX_EVIDENCE_PER_KIND` findings of each signal kind are kept in a verdict
  (the first ones, plus the first Strong one when none of those is); scanning for a kind
  stops once nothing more can be kept. The match decision is the same as with every
  finding, only the count in ``reason`` is lower;
* ``detail`` and ``value`` of each finding are made printable and cut to 200 characters
  (:class:`Evidence`).

Tokenising is done once per workload by :func:`prepare` and shared by the policies evaluated
on it in turn (pass it as ``prepared``), and every family of patterns is pre-checked with one
RE2 pass over all the values of the pod, then of each container, so that a policy costs
a few passes over the pod's text unless something in it looks like a match.
"""

from minerguard.domain.detection.evidence import MAX_DETAIL, Evidence, Verdict
from minerguard.domain.detection.findings import MAX_EVIDENCE_PER_KIND, Prepared, prepare, spec_findings
from minerguard.domain.detection.shell import shell_programs
from minerguard.domain.detection.tokens import MAX_TOKENS, words
from minerguard.domain.detection.verdict import evaluate, evaluate_node, in_scope
from minerguard.domain.kinds import NODE_ACTIONS

__all__ = [
    "MAX_DETAIL",
    "MAX_EVIDENCE_PER_KIND",
    "MAX_TOKENS",
    "NODE_ACTIONS",
    "Evidence",
    "Prepared",
    "Verdict",
    "evaluate",
    "evaluate_node",
    "in_scope",
    "prepare",
    "shell_programs",
    "spec_findings",
    "words",
]
