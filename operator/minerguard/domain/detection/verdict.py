"""The verdict of a policy on a workload or a node (rules 1, 3, 4 and 5 of :mod:`minerguard.domain.detection`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from minerguard.domain.detection.evidence import Evidence, Verdict
from minerguard.domain.detection.findings import Prepared, spec_findings
from minerguard.domain.kinds import NODE_ACTIONS, NODE_SIGNAL_KINDS, SIGNAL_KINDS, STRONG, WEAK
from minerguard.domain.policy import Policy
from minerguard.domain.text import plural, printable, shorten
from minerguard.domain.workload import Workload


def in_scope(policy: Policy, workload: Workload, namespace_labels: Mapping[str, str] | None) -> bool:
    """Whether the policy applies to the workload (rule 1 of the module docstring)."""
    scope = policy.scope
    if workload.namespace in scope.excluded_namespaces:
        return False
    if scope.excluded_pod_selector is not None and scope.excluded_pod_selector.matches(workload.labels):
        return False
    selector = scope.namespace_selector
    if selector is not None and not selector.is_empty:
        if namespace_labels is None or not selector.matches(namespace_labels):
            return False
    return scope.pod_selector is None or scope.pod_selector.matches(workload.labels)


def _label(evidence: Evidence) -> str:
    return f"{evidence.signal} {shorten(evidence.value or evidence.detail, 60)}"


def _listing(items: Sequence[Evidence], limit: int = 3) -> str:
    text = ", ".join(_label(e) for e in items[:limit])
    return text + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _weak_kinds(evidence: Iterable[Evidence]) -> list[Evidence]:
    """The first Weak finding of each kind, in order."""
    first: dict[str, Evidence] = {}
    for item in evidence:
        if item.strength == WEAK:
            first.setdefault(item.signal, item)
    return list(first.values())


def _decide(policy: Policy, evidence: Sequence[Evidence]) -> tuple[bool, str]:
    strong = [e for e in evidence if e.strength == STRONG]
    weak = _weak_kinds(evidence)
    kinds = {e.signal for e in evidence}
    missing = sorted(policy.match.require - kinds, key=_kind_order)
    if strong:
        matched, reason = True, f"{plural(len(strong), 'strong signal')}: {_listing(strong)}"
    elif len(weak) >= policy.match.weak_required:
        matched, reason = True, f"{plural(len(weak), 'weak signal kind')}: {_listing(weak)}"
    elif weak:
        needed = policy.match.weak_required
        matched, reason = False, f"{plural(len(weak), 'weak signal kind')} of {needed} needed: {_listing(weak)}"
    else:
        matched, reason = False, "no signals found"
    if missing:
        return False, f"required signal kinds missing ({', '.join(missing)}); {reason}"
    return matched, reason


_ORDER = {kind: index for index, kind in enumerate(SIGNAL_KINDS)}


def _kind_order(kind: str) -> tuple[int, str]:
    return _ORDER.get(kind, len(_ORDER)), kind


def _actions(policy: Policy, workload: Workload) -> tuple[str, ...]:
    if not policy.enforce:
        return ()
    return tuple(a.name for a in policy.actions if a.when != "HostAccess" or workload.host_access)


def _judges_nodes(policy: Policy) -> bool:
    scope = policy.scope
    return all(s is None or s.is_empty for s in (scope.pod_selector, scope.namespace_selector))


def evaluate_node(
    policy: Policy,
    node: str,
    node_labels: Mapping[str, str] | None,
    metric_findings: Sequence[Evidence],
) -> Verdict:
    """The verdict of one policy on a node, from node-level CPU findings (rule 5).

    ``node_labels`` are accepted for symmetry with :func:`evaluate`; the MinerPolicy
    contract has no node selector, so they do not change the verdict today.
    """
    del node_labels  # no node selector in the contract (see the docstring)
    if not _judges_nodes(policy):
        return Verdict(
            policy=policy.name, matched=False, mode=policy.mode, evidence=(), actions=(), reason="not in scope"
        )
    kinds = NODE_SIGNAL_KINDS.intersection(policy.metric_kinds)
    evidence = tuple(dict.fromkeys(e for e in metric_findings if e.signal in kinds))
    matched, reason = _decide(policy, evidence)
    actions = tuple(a.name for a in policy.actions if a.name in NODE_ACTIONS) if matched and policy.enforce else ()
    return Verdict(
        policy=policy.name,
        matched=matched,
        mode=policy.mode,
        evidence=evidence,
        actions=actions,
        reason=shorten(f"node {printable(node)}: {reason}", 300),
    )


def evaluate(
    policy: Policy,
    workload: Workload,
    namespace_labels: Mapping[str, str] | None,
    metric_findings: Sequence[Evidence] = (),
    prepared: Prepared | None = None,
) -> Verdict:
    """The verdict of one policy on one workload (rules 1 to 4 of the module docstring).

    ``metric_findings`` are the caller's CPU and runtime findings for this policy; those of a
    kind the policy does not declare (under ``signals.cpu`` or ``signals.runtime``) are
    ignored. The evidence lists every finding, also when the workload does not match.
    """
    if not in_scope(policy, workload, namespace_labels):
        return Verdict(
            policy=policy.name, matched=False, mode=policy.mode, evidence=(), actions=(), reason="not in scope"
        )
    evidence = spec_findings(policy, workload, prepared)
    kinds = policy.caller_kinds
    evidence += tuple(dict.fromkeys(e for e in metric_findings if e.signal in kinds and e not in evidence))
    matched, reason = _decide(policy, evidence)
    return Verdict(
        policy=policy.name,
        matched=matched,
        mode=policy.mode,
        evidence=evidence,
        actions=_actions(policy, workload) if matched else (),
        reason=shorten(reason, 300),
    )
