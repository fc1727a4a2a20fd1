"""A container as it runs from its image: the image config merged the way Kubernetes does, and its history.

With ``signals.imageConfig`` a container whose image config the operator (or ``scan
--inspect-images``) has read is seen as the container that really starts, followed by one
view per history step, so that the same detection reads all of it:

* the pod's ``command`` replaces the image's ``Entrypoint``; the pod's ``args`` replace its
  ``Cmd``, and a pod ``command`` without ``args`` drops the image's ``Cmd`` too (as Kubernetes
  does). What comes from the image is reported as ``image config Entrypoint`` / ``image config Cmd``;
* the image's ``Env`` is read beneath the pod's env (a pod variable of the same name wins) and
  reported as ``image config Env NAME``; ``WorkingDir`` and each of ``Labels`` are read as texts;
* each history entry's ``created_by`` is one more view named ``image history step N: ...``: a
  ``RUN`` step is read as the shell script it ran, ``CMD``/``ENTRYPOINT`` as the command they set,
  and any other instruction (``ADD``, ``COPY``, ``ENV``, ``LABEL``...) as text.

Bounds (an image is anyone's input, as a pod is): at most :data:`~minerguard.domain.oci.MAX_HISTORY`
history steps of an image are kept (its oldest and newest, see :func:`~minerguard.domain.oci.kept_history`);
the history of an image run by several containers of a pod is read once, in the first of them; and a pod's
image text is read up to :data:`MAX_POD_IMAGE_TEXT`, shared fairly between its containers, and within a
container between its command (Entrypoint, Cmd, WorkingDir), Env, Labels and history, each kept whole
item by item (history steps from both ends). What is left out is said in the container's ``oversized``,
the Weak ``oversizedValue`` signal, as for a pod's own text over its bounds.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from itertools import pairwise

from minerguard.domain.oci import ImageConfig
from minerguard.domain.text import shorten
from minerguard.domain.workload import ContainerView, fair_shares

MAX_POD_IMAGE_TEXT = 2 << 20
"""Characters of image config text read per pod (each item counts :data:`ITEM_COST` more)."""
ITEM_COST = 64

_SH_C = ("/bin/sh -c ", "/bin/bash -c ", "sh -c ")
_BUILDKIT = " # buildkit"


def _strip_shell(text: str) -> str:
    for prefix in _SH_C:
        if text.startswith(prefix):
            return text[len(prefix) :]
    return text


def instruction(created_by: str) -> tuple[str, str]:
    """(instruction, rest) of a history entry: classic (``/bin/sh -c #(nop)  CMD [...]``, ``/bin/sh -c
    apt-get ...``), BuildKit (``RUN /bin/sh -c ... # buildkit``, ``ENV A=b``) or another builder's."""
    text = created_by.strip()
    if text.endswith(_BUILDKIT):
        text = text[: -len(_BUILDKIT)].rstrip()
    body = _strip_shell(text)
    if body != text:  # the classic builder: a shell command, or #(nop) and an instruction
        if not body.lstrip().startswith("#(nop)"):
            return "RUN", body
        text = body.lstrip()[len("#(nop)") :].strip()
    word, _, rest = text.partition(" ")
    if word.isalpha() and word.isupper():
        if word == "RUN":
            if rest.startswith("|"):  # BuildKit's build args: |2 A=1 B=2 /bin/sh -c ...
                count, _, rest = rest[1:].partition(" ")
                words = rest.split(" ", int(count) if count.isdigit() and int(count) < 1000 else 0)
                rest = words[-1] if count.isdigit() and len(words) > int(count) else rest
            return "RUN", _strip_shell(rest.strip())
        return word, rest.strip()
    return "RUN", text


def _exec_form(rest: str) -> tuple[str, ...] | None:
    if not rest.startswith("["):
        return None
    try:
        doc = json.loads(rest)
    except ValueError:
        return None
    return tuple(doc) if isinstance(doc, list) and all(isinstance(w, str) for w in doc) else None


def history_view(container: ContainerView, number: int, created_by: str) -> ContainerView:
    """One history step of a container's image, as a view of its own."""
    word, rest = instruction(created_by)
    where = f"image history step {number}: {shorten(f'{word} {rest}'.strip(), 120)}"
    base = ContainerView(kind=container.kind, name=container.name, command_from=where, args_from=where)
    if word == "RUN":
        return replace(base, command=("/bin/sh", "-c", rest))
    if word in ("CMD", "ENTRYPOINT"):
        argv = _exec_form(rest)
        return replace(base, command=argv if argv is not None else ("/bin/sh", "-c", rest))
    return replace(base, image_texts=((where, f"{word} {rest}"),))


def effective(container: ContainerView, config: ImageConfig) -> ContainerView:
    """The container as it starts: command/args/env of the pod over those of the image."""
    command, command_from = container.command, container.command_from
    args, args_from = container.args, container.args_from
    if not command and config.entrypoint:
        command, command_from = config.entrypoint, "image config Entrypoint"
    if not container.command and not args and config.cmd:
        args, args_from = config.cmd, "image config Cmd"
    own = {name for name, _ in container.env} | {name for name, _ in container.config_env}
    texts = [("image config WorkingDir", config.working_dir)] if config.working_dir else []
    texts += [(f"image config Labels {key}", f"{key}={value}") for key, value in config.labels]
    return replace(
        container,
        command=command,
        command_from=command_from,
        args=args,
        args_from=args_from,
        image_env=tuple((n, v) for n, v in config.env if n not in own),
        image_texts=tuple(texts),
        image_config=None,
    )


def image_views(container: ContainerView) -> tuple[ContainerView, ...]:
    """The container (merged with its image config, when read) and then one view per history step.
    The config is read as it is: see :func:`pod_image_views` for the bounds."""
    config = container.image_config
    if config is None:
        return (container,)
    steps = tuple(history_view(container, number, text) for number, text in config.history)
    first = effective(container, config)
    notes = _history_notes(config)
    if notes:
        first = replace(first, oversized=(*first.oversized, *notes))
    return (first, *steps)


def _history_notes(config: ImageConfig) -> tuple[str, ...]:
    if config.history_length <= len(config.history) or not config.history:
        return ()
    numbers = [number for number, _ in config.history]
    gaps = [(a + 1, b - 1) for a, b in pairwise(numbers) if b > a + 1]
    if numbers[-1] < config.history_length:
        gaps.append((numbers[-1] + 1, config.history_length))
    if not gaps:
        return ()
    first, last = gaps[0][0], gaps[-1][1]
    return (f"image history of {config.history_length} steps: steps {first} to {last} not read",)


def _cost(text: str) -> int:
    return len(text) + ITEM_COST


def _groups(config: ImageConfig) -> list[int]:
    """Characters of each part of a config: command (Entrypoint, Cmd, WorkingDir), Env, Labels, history."""
    words = (config.entrypoint or ()) + (config.cmd or ())
    return [
        sum(map(_cost, words)) + _cost(config.working_dir),
        sum(_cost(n) + len(v) for n, v in config.env),
        sum(_cost(k) + len(v) for k, v in config.labels),
        sum(_cost(t) for _, t in config.history),
    ]


def _keep(costs: Sequence[int], allowance: int) -> int:
    """How many of the first items fit in ``allowance``."""
    for index, cost in enumerate(costs):
        allowance -= cost
        if allowance < 0:
            return index
    return len(costs)


def _both_ends(steps: tuple[tuple[int, str], ...], allowance: int) -> tuple[tuple[int, str], ...]:
    """History steps taken alternately from the oldest and the newest end while they fit."""
    low, high, kept = 0, len(steps) - 1, set()
    while low <= high:
        for index in (low, high) if low < high else (low,):
            allowance -= _cost(steps[index][1])
            if allowance < 0:
                return tuple(s for i, s in enumerate(steps) if i in kept)
            kept.add(index)
        low, high = low + 1, high - 1
    return steps


def within(config: ImageConfig, share: int) -> tuple[ImageConfig, str]:
    """The config cut to ``share`` characters (fair shares between its parts, whole items kept), and a note."""
    groups = _groups(config)
    total = sum(groups)
    if total <= share:
        return config, ""
    argv, env, labels, history = fair_shares(groups, share)
    words = list(config.entrypoint or ()) + list(config.cmd or ())
    fit = _keep([_cost(config.working_dir), *map(_cost, words)], argv)
    kept = words[: max(0, fit - 1)]
    entry = len(config.entrypoint or ())
    cut = replace(
        config,
        working_dir=config.working_dir if fit else "",
        entrypoint=tuple(kept[:entry]) if config.entrypoint is not None else None,
        cmd=tuple(kept[entry:]) if config.cmd is not None else None,
        env=config.env[: _keep([_cost(n) + len(v) for n, v in config.env], env)],
        labels=config.labels[: _keep([_cost(k) + len(v) for k, v in config.labels], labels)],
        history=_both_ends(config.history, history),
    )
    read = sum(_groups(cut))
    return cut, f"image config text over the pod's image text budget: {read} of {total} characters read"


def pod_image_views(containers: Sequence[ContainerView]) -> list[tuple[ContainerView, ...]]:
    """Per container, its views (:func:`image_views`) within the pod's bounds: the history of an image
    is read once per pod (in the first container that runs it) and the image text is shared fairly."""
    seen: set[object] = set()
    firsts: list[bool] = []
    for container in containers:
        config = container.image_config
        ident = (config.config_digest or id(config)) if config is not None else None
        firsts.append(ident is not None and ident not in seen)
        seen.add(ident)
    demands = []
    for container, first in zip(containers, firsts, strict=True):
        config = container.image_config
        groups = _groups(config) if config is not None else [0, 0, 0, 0]
        demands.append(sum(groups) - (0 if first else groups[3]))
    views: list[tuple[ContainerView, ...]] = []
    for container, first, share in zip(containers, firsts, fair_shares(demands, MAX_POD_IMAGE_TEXT), strict=True):
        config = container.image_config
        if config is None:
            views.append((container,))
            continue
        if not first:
            config = replace(config, history=(), history_length=0)
        config, note = within(config, share)
        found = image_views(replace(container, image_config=config))
        if note:
            found = (replace(found[0], oversized=(*found[0].oversized, note)), *found[1:])
        views.append(found)
    return views


def without_image(container: ContainerView) -> ContainerView:
    """The container as its pod spec alone says (what a policy without ``imageConfig`` reads)."""
    return container if container.image_config is None else replace(container, image_config=None)
