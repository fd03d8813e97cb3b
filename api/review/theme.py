"""The review page's colours, with the WCAG 2.x contrast arithmetic that checks them.

``tests`` assert that every text/background pair used by the page reaches AA (4.5:1
for text, 3:1 for focus rings and box outlines against the page).
"""

from __future__ import annotations

from typing import Final

PALETTE: Final = {
    "bg": "#ffffff",
    "fg": "#1a1a1a",
    "muted": "#4a4a4a",
    "panel": "#f3f4f6",
    "border": "#6b7280",
    "primary": "#0b57d0",
    "on_primary": "#ffffff",
    "danger": "#b3261e",
    "on_danger": "#ffffff",
    "focus": "#7c2d12",
    "selected": "#fff4cc",
    "pending": "#8a4b00",
    "confirmed": "#1b6b2f",
    "rejected": "#5f5f5f",
    "crack": "#1d4ed8",
    "spalling_rebar": "#b91c1c",
    "corrosion": "#92400e",
    "efflorescence": "#6d28d9",
}

#: (foreground, background, minimum ratio) pairs the stylesheet uses.
TEXT_PAIRS: Final = [
    ("fg", "bg", 4.5),
    ("muted", "bg", 4.5),
    ("fg", "panel", 4.5),
    ("muted", "panel", 4.5),
    ("fg", "selected", 4.5),
    ("on_primary", "primary", 4.5),
    ("on_danger", "danger", 4.5),
    ("pending", "bg", 4.5),
    ("confirmed", "bg", 4.5),
    ("rejected", "bg", 4.5),
    ("pending", "selected", 4.5),
    ("bg", "crack", 4.5),
    ("bg", "spalling_rebar", 4.5),
    ("bg", "corrosion", 4.5),
    ("bg", "efflorescence", 4.5),
    ("bg", "pending", 4.5),
    ("focus", "bg", 3.0),
    ("focus", "panel", 3.0),
    ("border", "bg", 3.0),
]


def _channel(value: int) -> float:
    c = value / 255
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def luminance(hex_colour: str) -> float:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * _channel(r) + 0.7152 * _channel(g) + 0.0722 * _channel(b)


def contrast(a: str, b: str) -> float:
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def css_variables() -> str:
    body = "".join(f"--{name.replace('_', '-')}:{value};" for name, value in PALETTE.items())
    return f":root{{{body}}}\n"
