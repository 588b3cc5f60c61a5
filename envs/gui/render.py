"""Screenshots of a laid-out screen, drawn with Pillow and encoded as PNG.

The renderer draws exactly the boxes the layout computed, so a point read off
the screenshot is the point ``click(x, y)`` hits. The phone's dark-mode
setting switches the palette, as a real phone's would.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

from rounds.envs.gui.widgets import (
    HEADER_HEIGHT,
    SCREEN_HEIGHT,
    SCREEN_WIDTH,
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


@lru_cache(maxsize=4)
def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's bundled font (no system fonts needed)."""
    return ImageFont.load_default(size=size)


def render_png(screen: Screen, *, dark: bool = False) -> bytes:
    """The screen as PNG bytes (``SCREEN_WIDTH`` x ``SCREEN_HEIGHT``, RGB)."""
    palette = DARK if dark else LIGHT
    image = Image.new("RGB", (SCREEN_WIDTH, SCREEN_HEIGHT), palette.background)
    draw = ImageDraw.Draw(image)
    font = _font(14)
    top = body_top(screen)
    for widget in screen.body:
        if widget.visible or _overlaps(widget, top):
            _draw_widget(draw, widget, palette, font)
    # The title bar and tabs cover anything scrolled under them.
    draw.rectangle((0, 0, SCREEN_WIDTH, HEADER_HEIGHT), fill=palette.header)
    for widget in screen.header:
        _draw_widget(draw, widget, palette, font)
    if screen.tabs:
        draw.rectangle((0, HEADER_HEIGHT, SCREEN_WIDTH, top), fill=palette.background)
        for tab in screen.tabs:
            _draw_widget(draw, tab, palette, font)
    if screen.menu is not None:
        x1, y1 = screen.menu[0].box[:2] if screen.menu else (0, 0)
        y2 = screen.menu[-1].box[3] if screen.menu else 0
        draw.rectangle(
            (x1 - 1, y1 - 1, SCREEN_WIDTH - 3, y2 + 1), fill=palette.surface, outline=palette.line
        )
        for item in screen.menu:
            _draw_widget(draw, item, palette, font)
    if screen.dialog is not None:
        dialog = screen.dialog
        shade = Image.new("RGB", image.size, "#000000")
        image = Image.blend(image, shade, 0.45)
        draw = ImageDraw.Draw(image)
        draw.rounded_rectangle(dialog.box, radius=10, fill=palette.background, outline=palette.line)
        x1, y1 = dialog.box[0] + 12, dialog.box[1] + 10
        draw.text((x1, y1), dialog.title, fill=palette.text, font=_font(16))
        for index, line in enumerate(_wrap(dialog.message, 34)):
            draw.text((x1, y1 + 28 + index * TEXT_LINE_HEIGHT), line, fill=palette.text, font=font)
        for widget in dialog.widgets:
            _draw_widget(draw, widget, palette, font)
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
    draw: ImageDraw.ImageDraw,
    widget: Widget,
    palette: Palette,
    font: ImageFont.ImageFont | ImageFont.FreeTypeFont,
) -> None:
    x1, y1, x2, y2 = widget.box
    middle = (y1 + y2) // 2
    color = palette.text if widget.enabled else palette.muted
    role = widget.role
    if role == "row":
        for child in widget.children:
            _draw_widget(draw, child, palette, font)
        return
    if role == "button":
        fill = palette.accent if widget.enabled else palette.surface
        draw.rounded_rectangle((x1, y1, x2 - 1, y2 - 1), radius=8, fill=fill)
        text_color = palette.background if widget.enabled else palette.muted
        _centered(draw, widget.label, (x1, y1, x2, y2), text_color, font)
    elif role == "listitem":
        if widget.checked:
            draw.rectangle((x1, y1, x2, y2), fill=palette.surface)
        draw.text((x1 + 8, middle), widget.label, fill=color, font=font, anchor="lm")
        draw.line((x1, y2 + 1, x2, y2 + 1), fill=palette.line)
    elif role == "switch":
        draw.text((x1 + 4, middle), widget.label, fill=color, font=font, anchor="lm")
        on = bool(widget.checked)
        track = (x2 - 52, middle - 12, x2 - 4, middle + 12)
        draw.rounded_rectangle(track, radius=12, fill=palette.accent if on else palette.line)
        knob_x = track[2] - 12 if on else track[0] + 12
        draw.ellipse((knob_x - 10, middle - 10, knob_x + 10, middle + 10), fill="#ffffff")
    elif role in ("checkbox", "radio"):
        box = (x1 + 4, middle - 9, x1 + 22, middle + 9)
        if role == "checkbox":
            draw.rectangle(
                box, outline=color, width=2, fill=palette.accent if widget.checked else None
            )
        else:
            draw.ellipse(box, outline=color, width=2)
            if widget.checked:
                draw.ellipse((box[0] + 5, box[1] + 5, box[2] - 5, box[3] - 5), fill=palette.accent)
        draw.text((x1 + 32, middle), widget.label, fill=color, font=font, anchor="lm")
    elif role == "textbox":
        draw.rounded_rectangle(
            (x1, y1 + 2, x2 - 1, y2 - 2), radius=4, outline=palette.line, width=2
        )
        value = widget.value or ""
        shown = value if value else widget.placeholder or widget.label
        draw.text((x1 + 8, y1 + 4), widget.label, fill=palette.muted, font=_font(10))
        draw.text(
            (x1 + 8, middle + 5),
            shown[-38:],
            fill=palette.text if value else palette.muted,
            font=font,
            anchor="lm",
        )
    elif role == "tab":
        _centered(draw, widget.label, widget.box, palette.accent if widget.checked else color, font)
        if widget.checked:
            draw.rectangle((x1 + 4, y2 - 3, x2 - 4, y2), fill=palette.accent)
    elif role == "menuitem":
        draw.text((x1 + 12, middle), widget.label, fill=color, font=font, anchor="lm")
    elif role == "heading":
        size = 18 if y1 == 0 else 15
        draw.text((x1, middle), widget.label, fill=palette.text, font=_font(size), anchor="lm")
    else:  # text
        for index, line in enumerate(_wrap(widget.label, TEXT_LINE_CHARS)):
            draw.text((x1, y1 + 4 + index * TEXT_LINE_HEIGHT), line, fill=color, font=font)


def _centered(
    draw: ImageDraw.ImageDraw,
    text: str,
    box: tuple[int, int, int, int],
    color: str,
    font: ImageFont.ImageFont | ImageFont.FreeTypeFont,
) -> None:
    x1, y1, x2, y2 = box
    draw.text(((x1 + x2) // 2, (y1 + y2) // 2), text, fill=color, font=font, anchor="mm")
