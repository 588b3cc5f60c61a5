"""Files: folders, file details, rename and new-folder dialogs, moving, a trash with restore."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

import numpy as np

from rounds.envs.gui.device import App, Device, Route, confirm_dialog, go_to, text_dialog
from rounds.envs.gui.tasks import Step, Task, Template, normalise_answer, opened, pick, visited
from rounds.envs.gui.widgets import Dialog, Screen, Widget

ROOT: Route = ("files",)
TRASH = "Trash"
FOLDER_FILES = {
    "Documents": (
        "budget.xlsx",
        "cover_letter.docx",
        "lease.pdf",
        "notes.txt",
        "passport_scan.pdf",
        "recipes.docx",
        "resume.pdf",
        "tax_return_2025.pdf",
        "thesis_draft.docx",
        "todo.txt",
    ),
    "Downloads": (
        "boarding_pass.pdf",
        "installer.dmg",
        "invoice_8841.pdf",
        "manual.pdf",
        "podcast.mp3",
        "report_q3.pdf",
        "slides.pptx",
        "ticket.pdf",
        "wallpaper.png",
        "data_export.csv",
    ),
    "Photos": (
        "beach.jpg",
        "birthday.jpg",
        "cat.png",
        "concert.jpg",
        "garden.jpg",
        "hiking.jpg",
        "mountains.jpg",
        "sunset.jpg",
        "wedding.jpg",
        "snowman.jpg",
    ),
    "Music": (
        "demo_song.wav",
        "guitar_riff.mp3",
        "lullaby.mp3",
        "piano_piece.mp3",
        "podcast_ep1.mp3",
        "ringtone.m4a",
        "symphony.flac",
        "voice_memo.m4a",
    ),
}
NEW_FOLDERS = ("Archive", "Receipts", "Travel", "Projects", "Family", "Work")
NEW_NAMES = ("final", "old", "backup", "copy", "v2", "signed")


def folder_route(folder: str) -> Route:
    return ("files", "folder", folder)


def file_route(folder: str, name: str) -> Route:
    return ("files", "file", folder, name)


def move_route(folder: str, name: str) -> Route:
    return ("files", "move", folder, name)


@dataclass
class File:
    name: str
    size_kb: int
    starred: bool = False


@dataclass
class Trashed:
    file: File
    folder: str


@dataclass
class FilesApp(App):
    """The file manager's state: folders of files and the trash."""

    folders: dict[str, list[File]] = field(default_factory=dict)
    trash: list[Trashed] = field(default_factory=list)

    name = "files"
    title = "Files"

    @classmethod
    def generate(cls, rng: np.random.Generator) -> FilesApp:
        folders = {}
        for folder, names in FOLDER_FILES.items():
            count = int(rng.integers(4, len(names) + 1))
            chosen = sorted(pick(rng, names, count))
            folders[folder] = [File(n, int(rng.integers(4, 9000))) for n in chosen]
        return cls(folders=folders)

    def find(self, folder: str, name: str) -> File | None:
        return next((f for f in self.folders.get(folder, []) if f.name == name), None)

    def root(self) -> Route:
        return ROOT

    def parent(self, route: Route) -> tuple[Route, str]:
        if route == ROOT:
            return ("home",), "app:files"
        if route[1] == "folder":
            return ROOT, f"folder:{route[2]}"
        if route[1] == "file":
            return folder_route(route[2]), f"file:{route[3]}"
        return file_route(route[2], route[3]), "move"

    def screen(self, route: Route, device: Device) -> Screen:
        if route == ROOT:
            return self._root(device)
        if route[1] == "folder":
            if route[2] == TRASH:
                return self._trash(device)
            return self._folder(device, route[2])
        file = self.find(route[2], route[3])
        if file is None:
            return Screen("Files", [Widget("text", "This file is no longer here.")])
        if route[1] == "file":
            return self._file(device, route[2], file)
        return self._move(device, route[2], file)

    def _root(self, device: Device) -> Screen:
        names = [*self.folders, TRASH]
        body = [
            Widget(
                "listitem",
                f"{name} ({len(self.trash) if name == TRASH else len(self.folders[name])})",
                key=f"folder:{name}",
                on_click=go_to(device, folder_route(name)),
            )
            for name in names
        ]
        new = Widget(
            "button", "New folder", key="new_folder", on_click=lambda: _modal(device, "new_folder")
        )
        screen = Screen("Files", body, actions=[new])
        if device.modal is not None and device.modal.kind == "new_folder":
            screen.dialog = text_dialog(
                "New folder",
                "Folder name",
                device,
                "Create",
                lambda text: self._create(device, text),
            )
        return screen

    def _create(self, device: Device, text: str) -> str:
        name = text.strip()
        if name in self.folders or name == TRASH:
            return f"A folder named {name} already exists; choose another name."
        if "/" in name:
            return "Folder names cannot contain '/'."
        self.folders[name] = []
        device.close_modal()
        return f"Created the folder {name}."

    def _folder(self, device: Device, folder: str) -> Screen:
        body = [
            Widget(
                "listitem",
                f"{f.name}  {f.size_kb} KB{' ★' if f.starred else ''}",
                key=f"file:{f.name}",
                on_click=go_to(device, file_route(folder, f.name)),
            )
            for f in self.folders[folder]
        ]
        return Screen(folder, body or [Widget("text", "This folder is empty.")])

    def _file(self, device: Device, folder: str, file: File) -> Screen:
        def toggle_star() -> str:
            file.starred = not file.starred
            device.changed()
            return "Starred." if file.starred else "Star removed."

        body = [
            Widget("text", f"{file.size_kb} KB, in {folder}"),
            Widget("checkbox", "Starred", key="star", checked=file.starred, on_click=toggle_star),
            Widget(
                "button",
                "Rename",
                key="rename",
                on_click=lambda: _modal(device, "rename", text=file.name),
            ),
            Widget(
                "button",
                "Move to…",
                key="move",
                on_click=go_to(device, move_route(folder, file.name)),
            ),
            Widget(
                "button", "Delete", key="delete", on_click=lambda: _modal(device, "delete_file")
            ),
        ]
        screen = Screen(file.name, body)
        modal = device.modal
        if modal is not None and modal.kind == "rename":
            screen.dialog = text_dialog(
                "Rename",
                "New name",
                device,
                "Rename",
                lambda text: self._rename(device, folder, file, text),
            )
        if modal is not None and modal.kind == "delete_file":

            def delete() -> str:
                self.folders[folder].remove(file)
                self.trash.append(Trashed(file, folder))
                device.pop()
                return f"Moved {file.name} to the trash."

            screen.dialog = confirm_dialog(
                "Delete file?", f"Move {file.name} to the trash?", "Delete", delete, device
            )
        return screen

    def _rename(self, device: Device, folder: str, file: File, text: str) -> str:
        name = text.strip()
        if name != file.name and self.find(folder, name) is not None:
            return f"{folder} already has a file named {name}; choose another name."
        if "/" in name:
            return "File names cannot contain '/'."
        file.name = name
        self.folders[folder].sort(key=lambda f: f.name)
        device.replace(file_route(folder, name))
        return f"Renamed to {name}."

    def _move(self, device: Device, folder: str, file: File) -> Screen:
        def move_to(target: str) -> str:
            if self.find(target, file.name) is not None:
                return f"{target} already has a file named {file.name}."
            self.folders[folder].remove(file)
            self.folders[target].append(file)
            self.folders[target].sort(key=lambda f: f.name)
            device.pop(2)
            return f"Moved {file.name} to {target}."

        body = [Widget("text", f"Move {file.name} to:")]
        body += [
            Widget(
                "listitem",
                target,
                key=f"destination:{target}",
                enabled=target != folder,
                on_click=partial(move_to, target),
            )
            for target in self.folders
        ]
        return Screen("Move to", body)

    def _trash(self, device: Device) -> Screen:
        body = [
            Widget(
                "listitem",
                f"{t.file.name} (from {t.folder})",
                key=f"trashed:{t.file.name}",
                on_click=partial(_modal, device, "restore", name=t.file.name),
            )
            for t in self.trash
        ]
        screen = Screen(TRASH, body or [Widget("text", "The trash is empty.")])
        modal = device.modal
        if modal is not None and modal.kind == "restore":
            item = next((t for t in self.trash if t.file.name == modal.data["name"]), None)
            if item is not None:
                screen.dialog = self._restore_dialog(device, item)
        return screen

    def _restore_dialog(self, device: Device, item: Trashed) -> Dialog:
        def restore() -> str:
            folder = self.folders.setdefault(item.folder, [])
            if any(f.name == item.file.name for f in folder):
                return f"{item.folder} already has a file named {item.file.name}."
            self.trash.remove(item)
            folder.append(item.file)
            folder.sort(key=lambda f: f.name)
            device.close_modal()
            return f"Restored {item.file.name} to {item.folder}."

        return confirm_dialog(
            "Restore file?",
            f"Put {item.file.name} back in {item.folder}?",
            "Restore",
            restore,
            device,
        )


def _modal(device: Device, kind: str, **data: str) -> str:
    device.open_modal(kind, **data)
    return ""


# ------------------------------------------------------------------ templates


def _app(device: Device) -> FilesApp:
    app: FilesApp = device.app("files")
    return app


def _some_file(device: Device, rng: np.random.Generator) -> tuple[str, File]:
    app = _app(device)
    folder = pick(rng, list(app.folders))[0]
    files = app.folders[folder]
    return folder, files[int(rng.integers(len(files)))]


def _inventory(device: Device) -> dict[str, set[str]]:
    app = _app(device)
    return {folder: {f.name for f in files} for folder, files in app.folders.items()}


def _dialog_plan(d: Device, route: Route, kind: str, opener: str, text: str, ok: str) -> list[Step]:
    """Open a text dialog with ``opener``, type ``text`` into it, press ``ok``."""
    modal = d.modal
    if d.route != route or modal is None or modal.kind != kind:
        return [Step(route, opener)]
    if modal.data.get("text") != text:
        return [Step(route, "field:dialog", text)]
    return [Step(route, ok)]


def _delete(device: Device, rng: np.random.Generator) -> Task:
    folder, file = _some_file(device, rng)
    name = file.name
    expected = _inventory(device)
    expected[folder].discard(name)

    def done(d: Device) -> bool:
        return any(t.file.name == name and t.folder == folder for t in _app(d).trash)

    def plan(d: Device) -> list[Step]:
        if done(d):
            return []
        if d.modal is not None and d.modal.kind == "delete_file":
            return [Step(file_route(folder, name), "confirm")]
        return [Step(file_route(folder, name), "delete")]

    return Task(
        goal=f"Delete the file {name} from {folder}.",
        subgoals=[
            ("files open", opened("files")),
            (f"{folder} open", visited(folder_route(folder))),
            ("file in trash", done),
        ],
        verify=lambda d, _: done(d) and _inventory(d) == expected,
        plan=plan,
    )


def _rename(device: Device, rng: np.random.Generator) -> Task:
    folder, file = _some_file(device, rng)
    stem, dot, extension = file.name.rpartition(".")
    new = f"{stem}_{NEW_NAMES[int(rng.integers(len(NEW_NAMES)))]}{dot}{extension}"
    old, size = file.name, file.size_kb
    expected = _inventory(device)
    expected[folder] = (expected[folder] - {old}) | {new}

    def done(d: Device) -> bool:
        f = _app(d).find(folder, new)
        return f is not None and f.size_kb == size

    def plan(d: Device) -> list[Step]:
        if done(d):
            return []
        return _dialog_plan(d, file_route(folder, old), "rename", "rename", new, "ok")

    return Task(
        goal=f"Rename {old} in {folder} to {new}.",
        subgoals=[(f"{old} open", visited(file_route(folder, old))), ("renamed", done)],
        verify=lambda d, _: done(d) and _inventory(d) == expected,
        plan=plan,
    )


def _move(device: Device, rng: np.random.Generator) -> Task:
    folder, file = _some_file(device, rng)
    app = _app(device)
    target = pick(rng, [f for f in app.folders if f != folder and app.find(f, file.name) is None])[
        0
    ]
    name = file.name
    expected = _inventory(device)
    expected[folder].discard(name)
    expected[target].add(name)

    def done(d: Device) -> bool:
        return _app(d).find(target, name) is not None

    return Task(
        goal=f"Move {name} from {folder} to {target}.",
        subgoals=[
            (f"{name} open", visited(file_route(folder, name))),
            ("destination list open", visited(move_route(folder, name))),
            ("moved", done),
        ],
        verify=lambda d, _: _inventory(d) == expected,
        plan=lambda d: [] if done(d) else [Step(move_route(folder, name), f"destination:{target}")],
    )


def _new_folder(device: Device, rng: np.random.Generator) -> Task:
    name = pick(rng, NEW_FOLDERS)[0]
    expected = {**_inventory(device), name: set()}

    def done(d: Device) -> bool:
        return name in _app(d).folders

    return Task(
        goal=f"Create a new folder named {name} in Files.",
        subgoals=[("files open", opened("files")), ("folder created", done)],
        verify=lambda d, _: _inventory(d) == expected,
        plan=lambda d: (
            [] if done(d) else _dialog_plan(d, ROOT, "new_folder", "new_folder", name, "ok")
        ),
    )


def _folder_and_move(device: Device, rng: np.random.Generator) -> Task:
    name = pick(rng, NEW_FOLDERS)[0]
    folder, file = _some_file(device, rng)
    moved = file.name
    expected = _inventory(device)
    expected[folder].discard(moved)
    expected[name] = {moved}

    def plan(d: Device) -> list[Step]:
        if name not in _app(d).folders:
            return _dialog_plan(d, ROOT, "new_folder", "new_folder", name, "ok")
        if _app(d).find(name, moved) is None:
            return [Step(move_route(folder, moved), f"destination:{name}")]
        return []

    return Task(
        goal=f"Create a folder named {name} and move {file.name} from {folder} into it.",
        subgoals=[
            ("folder created", lambda d: name in _app(d).folders),
            ("file moved", lambda d: _app(d).find(name, moved) is not None),
        ],
        verify=lambda d, _: _inventory(d) == expected,
        plan=plan,
    )


def _restore(device: Device, rng: np.random.Generator) -> Task:
    app = _app(device)
    folder, file = _some_file(device, rng)
    app.folders[folder].remove(file)
    app.trash.append(Trashed(file, folder))
    other_folder, other = _some_file(device, rng)
    app.folders[other_folder].remove(other)
    app.trash.insert(0, Trashed(other, other_folder))
    restored = file.name
    expected = _inventory(device)
    expected[folder].add(restored)
    route = folder_route(TRASH)

    def plan(d: Device) -> list[Step]:
        if _app(d).find(folder, restored) is not None:
            return []
        if (
            d.modal is not None
            and d.modal.kind == "restore"
            and d.modal.data.get("name") == restored
        ):
            return [Step(route, "confirm")]
        return [Step(route, f"trashed:{restored}")]

    return Task(
        goal=f"Restore {restored} from the trash.",
        subgoals=[
            ("trash open", visited(route)),
            ("restored", lambda d: _app(d).find(folder, restored) is not None),
        ],
        verify=lambda d, _: _inventory(d) == expected and len(_app(d).trash) == 1,
        plan=plan,
    )


def _is_starred(folder: str, name: str, d: Device) -> bool:
    f = _app(d).find(folder, name)
    return f is not None and f.starred


def _star_two(device: Device, rng: np.random.Generator) -> Task:
    app = _app(device)
    folder = pick(rng, list(app.folders))[0]
    first, second = (
        app.folders[folder][int(i)] for i in rng.choice(len(app.folders[folder]), 2, replace=False)
    )
    first.starred = second.starred = False
    names = (first.name, second.name)

    def starred(d: Device, name: str) -> bool:
        return _is_starred(folder, name, d)

    return Task(
        goal=f"Star the files {names[0]} and {names[1]} in {folder}.",
        subgoals=[(f"{folder} open", visited(folder_route(folder)))]
        + [(f"{n} starred", partial(_is_starred, folder, n)) for n in names],
        verify=lambda d, _: all(starred(d, n) for n in names),
        plan=lambda d: [Step(file_route(folder, n), "star") for n in names if not starred(d, n)],
    )


def _count_question(device: Device, rng: np.random.Generator) -> Task:
    folder = pick(rng, list(_app(device).folders))[0]
    count = len(_app(device).folders[folder])
    return Task(
        goal=f'How many files are in the {folder} folder? Answer with finish("<number>").',
        subgoals=[
            ("files open", opened("files")),
            (f"{folder} open", visited(folder_route(folder))),
        ],
        verify=lambda d, answer: normalise_answer(answer) == str(count),
        plan=lambda d: [] if folder_route(folder) in d.visited else [Step(folder_route(folder))],
        answer=str(count),
    )


TEMPLATES = (
    Template("files.delete", "files", _delete),
    Template("files.rename", "files", _rename),
    Template("files.move", "files", _move),
    Template("files.new_folder", "files", _new_folder),
    Template("files.folder_and_move", "files", _folder_and_move),
    Template("files.restore", "files", _restore),
    Template("files.star_two", "files", _star_two),
    Template("files.count_question", "files", _count_question),
)
