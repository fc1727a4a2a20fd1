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
   * What is read: command and args, with Kubernetes ``$(VAR)`` references expanded from
     the container's env; literal env values; with ``signals.configMaps``, the values and
     files of the ConfigMaps the pod references; and everything :mod:`.shell` finds by
     reading the scripts the container runs the way a shell does (wrappers and ``sh -c`` at
     any depth, ``eval``, ``$(...)``, here-documents, shell variables, script files from
     ConfigMaps) and, with ``signals.decodePayloads`` (the default), by decoding base64,
     hex, printf and gzip stages. Miner JSON configs (in any of these texts) are read as
     ``--key=value`` options (see :mod:`.options`).
   * *pools*: all these texts are cut into tokens (on whitespace, quotes,
     ``; | & ( ) < > { } ` , =``); a short option glued to its value (``-ostratum+tcp://...``)
     and a percent-encoded token are read as the value they hold. A URL whose scheme is
     listed (``stratum+tcp://...``, compared lowercased) is a *poolEndpoint*. Hosts of
     non-web URLs, of ``host:port`` tokens and of the values of a miner's pool options
     (``-o``, ``--url``, ``--pool``, ``--server``, a miner config's ``url``; there a bare
     host counts too) are matched against the pool host patterns (*poolHost*); the host of
     an http(s)/ws(s) URL is not pool usage (a price dashboard, a pool's statistics API)
     unless passed as a pool option. A listed port counts (*poolPort*) only in a
     ``host:port`` token or a URL whose scheme is not http, https, ws or wss, and never for
     a loopback or listen-all host (``localhost``, ``127.x``, ``0.0.0.0``); a bare number is
     never a port.
   * *process*: base names of the programs really started: command[0] (or args[0] without a
     command), then after assignments and wrappers (``nohup``, ``nice -n N``, ``timeout D``,
     ``env A=B``, ``setsid``, ``exec -a``, ``sudo -u U --``, ``chroot DIR``, ``taskset``,
     ``ionice``, ``stdbuf``, ``busybox``, ``xargs``, ...), in every command of every script
     read, and the script file of ``sh FILE``. Arguments are not programs
     (``pkill -f xmrig`` runs ``pkill``).
   * *argument*: a glob is matched against every command/args item, every word inside it,
     every word of the commands the scripts run (variables substituted) and every option of
     a miner config; a regex is searched in the command line (command and args joined by
     spaces, then each such command and config on a line of its own).
   * *wallet*: with ``monero: true``, any run of exactly 95 or 106 base58 characters
     starting with 4 or 8 in the texts read; further wallet patterns (regex searched in each
     text, glob matched against each word). A wallet is reported with its indicator's
     strength (Monero: Strong) only when it is passed to a miner (the value of a user,
     login or wallet option such as ``-u``, ``--user``, ``-O``, ``--wallet-address``; a
     stratum URL's user; a miner config's ``user``); anywhere else it is Weak. Shown shortened.
   * *encodedPayload* and *oversizedValue* (Weak, reported by policies that read container
     text): a payload fed to a shell that cannot be decoded or is over the bounds; a value
     or a container's text over the bounds (see Bounds), or a script too large or too deep
     to read to the end.
3. **Match** (:func:`evaluate`): in scope, and at least one Strong finding or Weak findings
   of at least ``match.weakSignalsRequired`` distinct kinds, and every kind of
   ``match.requireSignals`` among the findings. Metric findings (CPU, from Prometheus) are
   measured by the caller against this policy's thresholds and passed in; they count like
   spec ones, but only for the kinds the policy declares under ``signals.cpu``. Runtime
   findings (``runtime``: Falco events for the pod that ``signals.runtime`` counts, see
   :mod:`.runtime`) are passed in the same way and count the same way.
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
  containers, each value kept to 64 KiB as its head and tail (see
  :mod:`minerguard.domain.workload`), and RE2 matches in linear time with bounded programs
  (see :mod:`minerguard.domain.patterns`);
* scripts are read to a nesting depth of 6 and at most 4000 commands and 1 MiB of script per
  container; payloads are decoded up to 48 KiB in and 64 KiB out (256 KiB per container);
  miner configs are read up to 256 KiB per text (see :mod:`.shell` and :mod:`.options`);
* with ``signals.imageConfig``, at most 256 history steps per image, an image's history read once per
  pod, and 2 MiB of image text per pod shared fairly between containers (see :mod:`.image`); the
  reading of a history is kept per config digest from one pod to the next (:data:`.findings.MAX_CACHED_HISTORY`);
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
