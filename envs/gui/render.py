"""Screenshots of a laid-out screen, drawn with Pillow and encoded as PNG.

The renderer draws exactly the boxes the layout computed, so a point read off
the screenshot is the point ``click(x, y)`` hits. The phone's dark-mode
setting switches the palette, as a real phone's would.
"""

from __future__ import annotations

import importlib.util
import io
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from rounds.envs.gui.widgets import (
    HEADER_HEIGHT,
    SCREEN_HEIGHT,
    TEXT_LINE_CHARS,
    TEXT_LINE_HEIGHT,
    Screen,
    Widget,
    body_top,
)


@dataclass(frozen=True)
class Palette:
    background: str
    surface: str
    text: str
    muted: str
    accent: str
    line: str
    header: str


LIGHT = Palette("#ffffff", "#f1f3f4", "#202124", "#9aa0a6", "#1a73e8", "#dadce0", "#e8f0fe")
DARK = Palette("#121212", "#2a2a2a", "#e8eaed", "#80868b", "#8ab4f8", "#3c4043", "#1f2933")


def _font_file() -> str | None:
    """DejaVu Sans, which covers the apps' symbols and non-English languages (●, ★, ç, Č, Ε),
    from the system or matplotlib's copy; None falls back to Pillow's bundled Latin font."""
    candidates = [Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")]
    spec = importlib.util.find_spec("matplotlib")
    if spec is not None and spec.origin is not None:
        candidates.append(Path(spec.origin).parent / "mpl-data/fonts/ttf/DejaVuSans.ttf")
    return next((str(path) for path in candidates if path.is_file()), None)


@lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    path = _font_file()
    if path is not None:
        return ImageFont.truetype(path, size)
    return ImageFont.load_default(size=size)


@lru_cache(maxsize=8192)
def _text_mask(text: str, size: int, anchor: str) -> tuple[Image.Image, int, int]:
    """A label's glyphs as an 8-bit mask and its offset from the anchor point.

    FreeType rendering is the renderer's main cost and labels repeat across
    frames, so each (text, size, anchor) is rasterised once.
    """
    font = _font(size)
    x0, y0, x1, y1 = (int(v) for v in font.getbbox(text, anchor=anchor))
    mask = Image.new("L", (max(1, x1 - x0), max(1, y1 - y0)), 0)
    ImageDraw.Draw(mask).text((-x0, -y0), text, fill=255, font=font, anchor=anchor)
    return mask, x0, y0


def _text(
    image: Image.Image,
    xy: tuple[int, int],
    text: str,
    color: str,
    size: int = 14,
    anchor: str = "la",
) -> None:
    # One line per label (a typed value may hold newlines, which anchored text cannot take).
    text = " ".join(text.split())
    if not text:
        return
    try:
        mask, dx, dy = _text_mask(text, size, anchor)
    except (OSError, RuntimeError, ValueError):  # text the layout engine rejects
        mask, dx, dy = _text_mask(text.encode("ascii", "replace").decode(), size, anchor)
    image.paste(color, (xy[0] + dx, xy[1] + dy), mask)


@lru_cache(maxsize=4096)
def _fitting(text: str, width: int) -> int:
    """The largest of 14, 12 and 10 pt at which a label fits ``width`` pixels."""
    for size in (14, 12):
        if _font(size).getlength(" ".join(text.split())) <= width:
            return size
    return 10


def render_png(screen: Screen, *, dark: bool = False) -> bytes:
    """The screen as PNG bytes (``screen.width`` x ``screen.height``, RGB)."""
    palette = DARK if dark else LIGHT
    image = Image.new("RGB", (screen.width, screen.height), palette.background)
    draw = ImageDraw.Draw(image)
    top = body_top(screen)
    for widget in screen.body:
        if widget.visible or _overlaps(widget, top):
            _draw_widget(image, draw, widget, palette)
    # The title bar and tabs cover anything scrolled under them.
    draw.rectangle((0, 0, screen.width, HEADER_HEIGHT), fill=palette.header)
    for widget in screen.header:
        _draw_widget(image, draw, widget, palette)
    if screen.tabs:
        draw.rectangle((0, HEADER_HEIGHT, screen.width, top), fill=palette.background)
        for tab in screen.tabs:
            _draw_widget(image, draw, tab, palette)
    if screen.menu:
        x1, y1 = screen.menu[0].box[:2]
        y2 = screen.menu[-1].box[3]
        draw.rectangle(
            (x1 - 1, y1 - 1, screen.width - 3, y2 + 1), fill=palette.surface, outline=palette.line
        )
        for item in screen.menu:
            _draw_widget(image, draw, item, palette)
    if screen.dialog is not None:
        dialog = screen.dialog
        image = Image.blend(image, Image.new("RGB", image.size, "#000000"), 0.45)
        draw = ImageDraw.Draw(image)
        draw.rounded_rectangle(dialog.box, radius=10, fill=palette.background, outline=palette.line)
        x1, y1 = dialog.box[0] + 12, dialog.box[1] + 10
        _text(image, (x1, y1), dialog.title, palette.text, 16)
        for index, line in enumerate(_wrap(dialog.message, 34)):
            _text(image, (x1, y1 + 28 + index * TEXT_LINE_HEIGHT), line, palette.text)
        for widget in dialog.widgets:
            _draw_widget(image, draw, widget, palette)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _overlaps(widget: Widget, top: int) -> bool:
    return widget.box[3] > top and widget.box[1] < SCREEN_HEIGHT


def _wrap(text: str, width: int) -> list[str]:
    words, lines, line = text.split(), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    if line:
        lines.append(line)
    return lines


def _draw_widget(
    image: Image.Image, draw: ImageDraw.ImageDraw, widget: Widget, palette: Palette
) -> None:
    x1, y1, x2, y2 = widget.box
    middle = (y1 + y2) // 2
    center = ((x1 + x2) // 2, middle)
    color = palette.text if widget.enabled else palette.muted
    role = widget.role
    if role == "row":
        for child in widget.children:
            _draw_widget(image, draw, child, palette)
    elif role == "button":
        fill = palette.accent if widget.enabled else palette.surface
        draw.rounded_rectangle((x1, y1, x2 - 1, y2 - 1), radius=8, fill=fill)
        text_color = palette.background if widget.enabled else palette.muted
        _text(image, center, widget.label, text_color, _fitting(widget.label, x2 - x1 - 8), "mm")
    elif role == "listitem":
        if widget.checked:
            draw.rectangle((x1, y1, x2, y2), fill=palette.surface)
        _text(image, (x1 + 8, middle), widget.label, color, anchor="lm")
        draw.line((x1, y2 + 1, x2, y2 + 1), fill=palette.line)
    elif role == "switch":
        _text(image, (x1 + 4, middle), widget.label, color, anchor="lm")
        on = bool(widget.checked)
        track = (x2 - 52, middle - 12, x2 - 4, middle + 12)
        draw.rounded_rectangle(track, radius=12, fill=palette.accent if on else palette.line)
        knob_x = track[2] - 12 if on else track[0] + 12
        draw.ellipse((knob_x - 10, middle - 10, knob_x + 10, middle + 10), fill="#ffffff")
    elif role in ("checkbox", "radio"):
        box = (x1 + 4, middle - 9, x1 + 22, middle + 9)
        if role == "checkbox":
            checked = palette.accent if widget.checked else None
            draw.rectangle(box, outline=color, width=2, fill=checked)
        else:
            draw.ellipse(box, outline=color, width=2)
            if widget.checked:
                draw.ellipse((box[0] + 5, box[1] + 5, box[2] - 5, box[3] - 5), fill=palette.accent)
        _text(image, (x1 + 32, middle), widget.label, color, anchor="lm")
    elif role == "textbox":
        draw.rounded_rectangle(
            (x1, y1 + 2, x2 - 1, y2 - 2), radius=4, outline=palette.line, width=2
        )
        value = widget.value or ""
        shown = value if value else widget.placeholder or widget.label
        _text(image, (x1 + 8, y1 + 4), widget.label, palette.muted, 10)
        _text(
            image,
            (x1 + 8, middle + 5),
            shown[-38:],
            palette.text if value else palette.muted,
            anchor="lm",
        )
    elif role == "tab":
        _text(image, center, widget.label, palette.accent if widget.checked else color, anchor="mm")
        if widget.checked:
            draw.rectangle((x1 + 4, y2 - 3, x2 - 4, y2), fill=palette.accent)
    elif role == "menuitem":
        _text(image, (x1 + 12, middle), widget.label, color, anchor="lm")
    elif role == "heading":
        _text(image, (x1, middle), widget.label, palette.text, 18 if y1 == 0 else 15, "lm")
    else:  # text
        for index, line in enumerate(_wrap(widget.label, TEXT_LINE_CHARS)):
            _text(image, (x1, y1 + 4 + index * TEXT_LINE_HEIGHT), line, color)
