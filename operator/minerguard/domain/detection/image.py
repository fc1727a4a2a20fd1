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
"""

from __future__ import annotations

import json
from dataclasses import replace

from minerguard.domain.oci import ImageConfig
from minerguard.domain.text import shorten
from minerguard.domain.workload import ContainerView

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
    """The container (merged with its image config, when read) and then one view per history step."""
    config = container.image_config
    if config is None:
        return (container,)
    steps = tuple(history_view(container, number, text) for number, text in config.history)
    return (effective(container, config), *steps)


def without_image(container: ContainerView) -> ContainerView:
    """The container as its pod spec alone says (what a policy without ``imageConfig`` reads)."""
    return container if container.image_config is None else replace(container, image_config=None)
