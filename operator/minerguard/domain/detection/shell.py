"""The programs a container runs: argv, ``sh -c`` scripts, wrappers and script files."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from minerguard.domain.detection.tokens import MAX_TOKENS, base_name, words
from minerguard.domain.patterns import bounded
from minerguard.domain.workload import ContainerView

SHELLS = frozenset({"sh", "bash", "ash", "dash", "zsh", "ksh", "mksh", "busybox"})
WRAPPERS = SHELLS | frozenset(
    {"nohup", "exec", "env", "sudo", "nice", "ionice", "timeout", "setsid", "time", "command", "stdbuf", "taskset"}
)
_COMMAND_BREAKS = frozenset(";|&()`\n")
_QUOTES_AND_SPACE = frozenset(" \t\r\v\f'\"<>{}")
_PATH_PREFIXES = ("/", "./", "../", "~/")


def _shell_words(script: str) -> Iterator[tuple[str, bool]]:
    """Words of a shell script, each with whether it starts a command."""
    current: list[str] = []
    starts = True
    for char in bounded(script):
        if char in _COMMAND_BREAKS or char in _QUOTES_AND_SPACE:
            if current:
                yield "".join(current), starts
                current, starts = [], False
            if char in _COMMAND_BREAKS:
                starts = True
        else:
            current.append(char)
    if current:
        yield "".join(current), starts


def _is_option(word: str) -> bool:
    return word.startswith("-") or "=" in word or word.replace(".", "").isdigit()


def shell_programs(script: str) -> list[str]:
    """Base names of the programs a shell script runs (see rule 2, *process*), in order."""
    programs: list[str] = []
    expect_program = False
    for count, (word, starts) in enumerate(_shell_words(script)):
        if count >= MAX_TOKENS:
            break
        if starts:
            expect_program = True
        if expect_program and _is_option(word):
            continue  # VAR=value prefixes, wrapper options such as -n 10 or -c
        if expect_program or word.startswith(_PATH_PREFIXES):
            name = base_name(word)
            if name:
                programs.append(name)
            expect_program = expect_program and name in WRAPPERS
    return programs


def _is_shell_c_flag(word: str) -> bool:
    return len(word) > 1 and word[0] == "-" and word[1] != "-" and word[1:].isalpha() and "c" in word


def argv_of(container: ContainerView) -> list[tuple[str, str]]:
    return [("command", item) for item in container.command] + [("args", item) for item in container.args]


def _shell_index(argv: Sequence[tuple[str, str]]) -> int | None:
    """Index of the shell among the first words of argv (``sh``, ``/bin/bash``, ``busybox``), if any."""
    return next((i for i, (_, word) in enumerate(argv[:4]) if base_name(word) in SHELLS), None)


def shell_scripts(argv: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """(where, script) of a ``sh -c SCRIPT`` style invocation, if argv is one."""
    index = _shell_index(argv)
    if index is None:
        return []
    for flag_index in range(index + 1, len(argv) - 1):
        if _is_shell_c_flag(argv[flag_index][1]):
            return [argv[flag_index + 1]]
    return []


def shell_script_file(argv: Sequence[tuple[str, str]]) -> tuple[str, str] | None:
    """(where, path) of the script file of ``sh SCRIPT`` (a shell without ``-c``), if argv is one."""
    index = _shell_index(argv)
    if index is None or shell_scripts(argv):
        return None
    for where, word in argv[index + 1 : index + 8]:
        if not word.startswith("-") and base_name(word) not in SHELLS:
            return where, word
    return None


def programs_of(container: ContainerView) -> list[tuple[str, str]]:
    """(where, base name) of the programs a container runs."""
    found: list[tuple[str, str]] = []
    if container.command:
        found.append(("command", base_name(container.command[0])))
    elif container.args:
        found.append(("args", base_name(container.args[0])))
    argv = argv_of(container)
    for where, script in shell_scripts(argv):
        found += [(f"shell script in {where}", name) for name in shell_programs(script)]
    script_file = shell_script_file(argv)
    if script_file is not None:
        found.append((script_file[0], base_name(script_file[1])))
    return [(where, name) for where, name in found if name]


def argument_tokens(container: ContainerView) -> Iterator[tuple[str, str]]:
    """(where, token): every command/args item, then the words inside it when it has several."""
    for where, item in argv_of(container):
        yield where, item
        split = words(item)
        if len(split) > 1 or (split and split[0] != item):
            yield from ((where, word) for word in split)
