"""Text shared by every reporter: untrusted strings made safe to show, byte and count formats, plurals.

Every string that comes from a trace or a document (paths, image names, command lines, frames, symbol names) is
untrusted: :func:`clean` makes control and format characters (bidirectional overrides, zero-width characters,
U+2028/U+2029) visible as escapes and caps the length. HTML escaping is the template engine's job.
"""

from __future__ import annotations

from typing import Final

_UNITS: Final = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")

# caps on what one untrusted string, or one list of them, may add to the page
MAX_FRAME: Final = 512
MAX_PATH: Final = 1024
MAX_COMMAND_LINE: Final = 2048
MAX_NAME: Final = 256
MAX_FRAMES: Final = 256
MAX_PROCESSES: Final = 50
MAX_LIST: Final = 16
MAX_HISTOGRAM: Final = 64


def _escape_char(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def clean(value: object, limit: int = 256) -> str:
    """An untrusted string made safe to show as text: control, format, separator and unassigned/surrogate
    characters become visible escapes; longer than ``limit`` is cut with a note of how much was cut."""
    s = value if isinstance(value, str) else "" if value is None else str(value)
    if not s.isprintable():
        s = "".join(_escape_char(ch) if not ch.isprintable() and ch != " " else ch for ch in s)
    if len(s) > limit:
        s = f"{s[:limit]}… (+{len(s) - limit:,} chars)"
    return s


def format_bytes(n: int, *, signed: bool = False) -> str:
    """``1536`` -> ``1.5 KiB``; ``signed`` puts ``+`` before a positive value (a negative one has ``-``)."""
    sign = "-" if n < 0 else "+" if signed and n > 0 else ""
    v = float(abs(n))
    unit = 0
    while v >= 1024 and unit < len(_UNITS) - 1:
        v /= 1024
        unit += 1
    if unit == 0:
        return f"{sign}{abs(n)} B"
    text = f"{v:.1f}" if v < 100 else f"{v:.0f}"
    if text == "1024" and unit < len(_UNITS) - 1:  # 1023.96 KiB rounds up to the next unit
        text, unit = "1.0", unit + 1
    return f"{sign}{text} {_UNITS[unit]}"


def format_count(n: int, *, signed: bool = False) -> str:
    """``1234567`` -> ``1,234,567`` (``+1,234,567`` when ``signed`` and positive)."""
    return f"{n:+,}" if signed and n > 0 else f"{n:,}"


def plural(n: int, one: str, many: str) -> str:
    """``1 block``, ``2 blocks``: the count with the word that fits it."""
    return f"{n:,} {one if n == 1 else many}"
