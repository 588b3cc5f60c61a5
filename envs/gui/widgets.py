"""The widget toolkit of the built-in apps: widgets, screen layout, hit-testing and ids.

An app describes a screen as a :class:`Screen` of :class:`Widget` values built
from its state; :func:`layout` places every widget on the fixed-size display,
gives it an element id and marks what a scroll position hides. The laid-out
screen is what the accessibility text, the screenshot and the action checks all
read, so the three can never disagree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

#: The display, in pixels (a phone held upright).
SCREEN_WIDTH = 360
SCREEN_HEIGHT = 640
HEADER_HEIGHT = 48
TABS_HEIGHT = 40
MARGIN = 12
GAP = 4
#: Characters of wrapped text per line in the body (about 8 px a character at the body font).
TEXT_LINE_CHARS = 40
TEXT_LINE_HEIGHT = 18

#: A pixel box ``(x1, y1, x2, y2)``, ``x2``/``y2`` exclusive.
Box = tuple[int, int, int, int]

#: Height of each role in the body, in pixels.
ROLE_HEIGHT = {
    "button": 40,
    "listitem": 48,
    "switch": 44,
    "checkbox": 40,
    "radio": 36,
    "textbox": 44,
    "heading": 30,
    "text": TEXT_LINE_HEIGHT + 8,
    "menuitem": 40,
    "tab": TABS_HEIGHT,
    "row": 40,
}

#: What a click on a widget does; returns the message shown to the agent.
ClickHandler = Callable[[], str]
#: What typing into a text field does (the text replaces the field's value).
TypeHandler = Callable[[str], str]


@dataclass(eq=False)
class Widget:
    """One element on screen.

    ``key`` names the widget for the app's own logic and the scripted expert
    (never shown to the agent, who sees the numeric ``id``). ``checked`` is the
    on/off state of switches, checkboxes, radios and tabs; ``value`` the text of
    a text field. Layout fills ``id``, ``box`` and ``visible``.
    """

    role: str
    label: str
    key: str = ""
    enabled: bool = True
    checked: bool | None = None
    value: str | None = None
    placeholder: str = ""
    max_chars: int = 200
    on_click: ClickHandler | None = None
    on_type: TypeHandler | None = None
    children: list[Widget] = field(default_factory=list)
    id: int = 0
    box: Box = (0, 0, 0, 0)
    visible: bool = True

    @property
    def clickable(self) -> bool:
        """A click does something: the widget has a handler, or it is a field to focus."""
        return self.on_click is not None or self.role == "textbox"

    @property
    def editable(self) -> bool:
        return self.role == "textbox" and self.on_type is not None

    def height(self) -> int:
        if self.role == "text":
            lines = max(1, -(-len(self.label) // TEXT_LINE_CHARS))
            return lines * TEXT_LINE_HEIGHT + 8
        return ROLE_HEIGHT.get(self.role, 40)


@dataclass(eq=False)
class Dialog:
    """A modal dialog: while it is open only its widgets respond."""

    title: str
    message: str
    widgets: list[Widget]
    box: Box = (0, 0, 0, 0)


@dataclass(eq=False)
class Screen:
    """One screen of an app: a title bar, optional tabs, a scrolling body and modals."""

    title: str
    body: list[Widget]
    back: bool = True
    actions: list[Widget] = field(default_factory=list)
    """Buttons on the right of the title bar (e.g. "New", "More options")."""
    tabs: list[Widget] = field(default_factory=list)
    dialog: Dialog | None = None
    menu: list[Widget] | None = None
    scroll: int = 0
    max_scroll: int = 0
    header: list[Widget] = field(default_factory=list)
    hidden_above: int = 0
    hidden_below: int = 0
    elements: list[Widget] = field(default_factory=list)
    """Every widget with an id, in id order (after :func:`layout`)."""
    width: int = SCREEN_WIDTH
    height: int = SCREEN_HEIGHT

    def modal(self) -> list[Widget] | None:
        """The widgets of the open dialog or menu, or None when neither is open."""
        if self.dialog is not None:
            return self.dialog.widgets
        return self.menu

    def interactive(self) -> list[Widget]:
        """Widgets a click can reach now: the modal's, else the visible ones on screen."""
        modal = self.modal()
        if modal is not None:
            return [w for w in flatten(modal) if w.role != "row"]
        return [w for w in self.elements if w.visible]

    def by_id(self, element_id: int) -> Widget | None:
        if 1 <= element_id <= len(self.elements):
            return self.elements[element_id - 1]
        return None

    def by_key(self, key: str) -> Widget | None:
        for widget in self.elements:
            if widget.key == key:
                return widget
        return None

    def at(self, x: int, y: int) -> Widget | None:
        """The clickable widget under a point, among those a click can reach (hit-testing)."""
        hits = [
            w
            for w in self.interactive()
            if w.box[0] <= x < w.box[2] and w.box[1] <= y < w.box[3] and w.role != "text"
        ]
        return hits[-1] if hits else None


def flatten(widgets: list[Widget]) -> Iterator[Widget]:
    """Widgets and their children (a row's buttons), depth first."""
    for widget in widgets:
        yield widget
        yield from flatten(widget.children)


def body_top(screen: Screen) -> int:
    return HEADER_HEIGHT + (TABS_HEIGHT if screen.tabs else 0)


def content_height(screen: Screen) -> int:
    return MARGIN + sum(w.height() + GAP for w in screen.body)


def layout(screen: Screen, scroll: int = 0) -> Screen:
    """Place every widget, number them in reading order and mark what scrolling hides.

    ``scroll`` is clamped to the body's range. A body widget is visible only when
    it lies wholly inside the viewport below the title bar and tabs.
    """
    top = body_top(screen)
    viewport = SCREEN_HEIGHT - top
    screen.max_scroll = max(0, content_height(screen) - viewport)
    screen.scroll = max(0, min(scroll, screen.max_scroll))
    header: list[Widget] = []
    if screen.back:
        header.append(Widget("button", "Back", key="back", box=(4, 4, 44, 44), on_click=lambda: ""))
    right = SCREEN_WIDTH - 4
    placed_actions = []
    for action in reversed(screen.actions):
        width = max(44, 9 * len(action.label) + 16)
        action.box = (right - width, 4, right, 44)
        right -= width + 4
        placed_actions.append(action)
    left = 52 if screen.back else 12
    header.append(Widget("heading", screen.title, box=(left, 0, right, HEADER_HEIGHT)))
    header.extend(reversed(placed_actions))
    screen.header = header
    if screen.tabs:
        width = SCREEN_WIDTH // len(screen.tabs)
        for index, tab in enumerate(screen.tabs):
            tab.box = (index * width, HEADER_HEIGHT, (index + 1) * width, top)
    y = top + MARGIN - screen.scroll
    above = below = 0
    for widget in screen.body:
        height = widget.height()
        widget.box = (MARGIN, y, SCREEN_WIDTH - MARGIN, y + height)
        widget.visible = y >= top and y + height <= SCREEN_HEIGHT
        if not widget.visible:
            if y < top:
                above += 1
            else:
                below += 1
        if widget.children:
            _layout_row(widget)
        y += height + GAP
    screen.hidden_above, screen.hidden_below = above, below
    if screen.dialog is not None:
        _layout_dialog(screen.dialog)
    if screen.menu is not None:
        for index, item in enumerate(screen.menu):
            y = HEADER_HEIGHT + index * 40
            item.box = (SCREEN_WIDTH - 184, y, SCREEN_WIDTH - 4, y + 40)
    elements: list[Widget] = []
    groups = [header, screen.tabs, screen.body, screen.menu or []]
    if screen.dialog is not None:
        groups.append(screen.dialog.widgets)
    for group in groups:
        for widget in flatten(group):
            if widget.role == "row" or (widget.role == "heading" and not widget.label):
                continue
            elements.append(widget)
    for index, widget in enumerate(elements, start=1):
        widget.id = index
    screen.elements = elements
    return screen


def _layout_row(row: Widget) -> None:
    """Lay a row's children side by side in the row's box, sharing its width."""
    x1, y1, x2, y2 = row.box
    width = (x2 - x1 - GAP * (len(row.children) - 1)) // len(row.children)
    for index, child in enumerate(row.children):
        left = x1 + index * (width + GAP)
        child.box = (left, y1, left + width, y2)
        child.visible = row.visible


def _layout_dialog(dialog: Dialog) -> None:
    lines = max(1, -(-len(dialog.message) // 34)) if dialog.message else 0
    fields = [w for w in dialog.widgets if w.role != "button"]
    buttons = [w for w in dialog.widgets if w.role == "button"]
    height = 40 + lines * TEXT_LINE_HEIGHT + len(fields) * 48 + (48 if buttons else 0) + 12
    x1, x2 = 24, SCREEN_WIDTH - 24
    y1 = (SCREEN_HEIGHT - height) // 2
    dialog.box = (x1, y1, x2, y1 + height)
    y = y1 + 40 + lines * TEXT_LINE_HEIGHT
    for widget in fields:
        widget.box = (x1 + 12, y, x2 - 12, y + 44)
        y += 48
    if buttons:
        width = (x2 - x1 - 24 - GAP * (len(buttons) - 1)) // len(buttons)
        for index, button in enumerate(buttons):
            left = x1 + 12 + index * (width + GAP)
            button.box = (left, y + 4, left + width, y + 44)


def describe(widget: Widget) -> str:
    """One accessibility-tree line: id, role, label, states and bounding box."""
    parts = [f"[{widget.id}] {widget.role}"]
    if widget.label:
        parts.append(_quote(widget.label))
    if widget.role in ("textbox", "combobox"):
        parts.append(f"value={_quote(widget.value or '')}")
    if widget.checked is not None:
        if widget.role in ("radio", "tab"):
            parts.append("selected" if widget.checked else "not selected")
        else:
            parts.append("checked" if widget.checked else "unchecked")
    if not widget.enabled:
        parts.append("disabled")
    x1, y1, x2, y2 = widget.box
    parts.append(f"@({x1},{y1},{x2},{y2})")
    return " ".join(parts)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


def accessibility_text(screen: Screen) -> str:
    """The accessibility tree as text: every element a user could see now, one per line."""
    lines = [f"Screen: {screen.title} ({screen.width}x{screen.height} px)"]
    modal = screen.modal()
    if modal is not None:
        kind = "dialog" if screen.dialog is not None else "menu"
        if screen.dialog is not None:
            lines.append(f"Dialog {_quote(screen.dialog.title)}: {screen.dialog.message}".rstrip())
        lines.append(f"A {kind} is open; only its elements respond (back() closes it).")
        lines.extend("  " + describe(w) for w in flatten(modal) if w.role != "row")
        return "\n".join(lines)
    lines.extend(describe(w) for w in screen.elements if w.visible)
    if screen.hidden_above:
        lines.append(f"({screen.hidden_above} more elements above: scroll(up) to see them)")
    if screen.hidden_below:
        lines.append(f"({screen.hidden_below} more elements below: scroll(down) to see them)")
    return "\n".join(lines)
