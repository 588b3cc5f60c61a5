"""The replay's modal dialogs: a one-line prompt (search, filter) and the key help."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static


class PromptScreen(ModalScreen[str | None]):
    """A one-line question (search text, filter)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, placeholder: str, value: str = "") -> None:
        super().__init__()
        self.title_text = title
        self.placeholder = placeholder
        self.value = value

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(self.title_text)
            yield Input(value=self.value, placeholder=self.placeholder, id="prompt")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)


HELP = """[b]rounds replay[/b]

[b]Episode list[/b]
  up/down, j/k   move      pgup/pgdn  a page      g/G, home/end  first/last
  enter          open the episode
  /              search the observations and actions of every episode
  f              filter, e.g. outcome>0 env~Diag turns<=3 success=false
                 (and any metric the env declares, e.g. score>=0.5)
  s / r          sort by the next column / reverse the order
  escape         clear the search and the filter

[b]Episode[/b]
  j/k, down/up   next / previous turn
  n/p            next / previous episode (in the list's order)
  c              compare with the best or worst episode of the same task
  e              export the episode to Markdown (RUN_DIR/exports/)
  s              save the turn's screenshot as a PNG (RUN_DIR/exports/);
                 turns with one say "+ screenshot" above their observation
  escape         back to the list

?  this help      q  quit"""


class HelpScreen(ModalScreen[None]):
    """Every key binding."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close"),
        Binding("question_mark", "close", "Close"),
        Binding("q", "close", "Close"),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(HELP)

    def action_close(self) -> None:
        self.dismiss(None)
