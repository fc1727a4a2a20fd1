"""Text helpers every part shares: printable, shortened values and plurals, one copy."""

from __future__ import annotations

ELLIPSIS = "…"


def printable(text: str) -> str:
    """``text`` with every non-printable character (control characters, line breaks, bidi
    overrides, lone surrogates, spaces other than the plain one) written as a Python escape
    such as ``\\x1b`` or ``\\u202e``, so that it shows as one line and as what it is."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else _escaped(char) for char in text)


def _escaped(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def shorten(text: str, limit: int = 200) -> str:
    """``text`` if it fits in ``limit`` characters, else its head and tail around an ellipsis."""
    if len(text) <= limit:
        return text
    if limit <= 1:
        return ELLIPSIS[:limit]
    keep = limit - 1
    head = (keep + 1) // 2
    return text[:head] + ELLIPSIS + text[len(text) - (keep - head) :]


def plural(count: int, word: str) -> str:
    """``count`` and ``word``, with an ``s`` unless the count is one."""
    return f"{count} {word}" + ("" if count == 1 else "s")
