"""A group's members window: who is in it (admins marked), adding and removing people, leaving."""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable
from typing import TYPE_CHECKING

import ttkbootstrap as ttk
from workspace.v1 import chat_pb2
from workspace_client import NotSignedIn, sentence

from . import backend

#: Leave (and Delete in the chat) asks for a second click within this many ms.
CONFIRM_MS = 4000

if TYPE_CHECKING:
    from .chat import ChatView


class MembersDialog(ttk.Toplevel):
    """A group's members, admins marked. An admin adds people picked from the directory and removes members;
    everyone may leave (a second click confirms). Not modal; it follows the group's changes as the event stream
    brings them (``ChatView._merge_conversation`` calls ``show``)."""

    def __init__(self, view: ChatView, conversation: chat_pb2.Conversation) -> None:
        super().__init__(master=view, title="Members", resizable=(True, True))
        self.transient(view.winfo_toplevel())
        self.view, self.conversation_id, self.conversation = view, conversation.id, conversation
        self.alive = True
        self._confirm_after: str | None = None
        frame = ttk.Frame(self, padding=14)
        frame.pack(fill="both", expand=True)
        frame.columnconfigure(0, weight=1)
        frame.columnconfigure(1, weight=1)
        frame.rowconfigure(3, weight=1)
        self.heading = ttk.Label(frame, text="", font=("TkDefaultFont", 12, "bold"))
        self.heading.grid(row=0, column=0, columnspan=2, sticky="w")
        self.note = ttk.Label(frame, text="", bootstyle="secondary", wraplength=520, justify="left")
        self.note.grid(row=1, column=0, columnspan=2, sticky="w", pady=(2, 10))

        ttk.Label(frame, text="Members", font=("TkDefaultFont", 10, "bold")).grid(row=2, column=0, sticky="w")
        self.members = ttk.Treeview(frame, columns=("role",), height=10, selectmode="browse")
        self.members.heading("#0", text="Name", anchor="w")
        self.members.heading("role", text="Role", anchor="w")
        self.members.column("#0", width=190, stretch=True)
        self.members.column("role", width=70, stretch=False)
        self.members.tag_configure("admin", font=("TkDefaultFont", 10, "bold"))
        self.members.grid(row=3, column=0, sticky="nsew", padx=(0, 10))
        self.remove_button = ttk.Button(
            frame, text="Remove from group", command=self.remove_selected, bootstyle="danger-outline"
        )
        self.remove_button.grid(row=4, column=0, sticky="w", pady=(6, 0))

        # Adding people: for the group's admins only (hidden for the others).
        self.add_head = ttk.Frame(frame)
        self.add_head.grid(row=2, column=1, sticky="ew")
        ttk.Label(self.add_head, text="Add people", font=("TkDefaultFont", 10, "bold")).pack(side="left")
        self.find = tk.StringVar()
        self.find_entry = ttk.Entry(self.add_head, textvariable=self.find, width=14)
        self.find_entry.pack(side="right")
        ttk.Label(self.add_head, text="Find", bootstyle="secondary").pack(side="right", padx=(0, 6))
        self.find.trace_add("write", lambda *_: self._fill_candidates())
        self.candidates = ttk.Treeview(frame, height=10, selectmode="extended", show="tree")
        self.candidates.column("#0", width=220, stretch=True)
        self.candidates.grid(row=3, column=1, sticky="nsew")
        self.candidates.bind("<Double-1>", lambda _e: self.add_selected())
        self.add_button = ttk.Button(frame, text="Add to group", command=self.add_selected, bootstyle="primary")
        self.add_button.grid(row=4, column=1, sticky="w", pady=(6, 0))

        self.result = ttk.Label(frame, text="", bootstyle="secondary", wraplength=520, justify="left")
        self.result.grid(row=5, column=0, columnspan=2, sticky="w", pady=(10, 0))
        bottom = ttk.Frame(frame)
        bottom.grid(row=6, column=0, columnspan=2, sticky="ew", pady=(10, 0))
        self.leave_button = ttk.Button(bottom, text="Leave group", command=self.leave, bootstyle="danger")
        self.leave_button.pack(side="left")
        ttk.Button(bottom, text="Close", command=self.destroy, bootstyle="secondary-outline").pack(side="right")
        self.bind("<Escape>", lambda _e: self.destroy())
        self.bind("<Destroy>", self._destroyed, add="+")
        self.show(conversation)
        self._place()

    def _place(self) -> None:
        """Over the middle of the main window (without a window manager it would sit in the screen's corner)."""
        self.update_idletasks()
        main = self.view.winfo_toplevel()
        x = main.winfo_rootx() + max(0, (main.winfo_width() - self.winfo_reqwidth()) // 2)
        y = main.winfo_rooty() + max(0, (main.winfo_height() - self.winfo_reqheight()) // 3)
        self.geometry(f"+{x}+{y}")

    def _destroyed(self, event: tk.Event) -> None:
        if event.widget is not self:
            return
        self.alive = False
        if self._confirm_after is not None:
            self.after_cancel(self._confirm_after)
            self._confirm_after = None
        if self.view.members_dialog is self:
            self.view.members_dialog = None

    def label(self, user_id: int) -> str:
        user = self.view.users.get(user_id)
        name = (user.display_name or user.username) if user is not None else f"#{user_id}"
        return f"{name} (you)" if user_id == self.view.me else name

    def admin(self) -> bool:
        return any(
            m.user_id == self.view.me and m.role == chat_pb2.MEMBER_ROLE_ADMIN for m in self.conversation.members
        )

    def show(self, conversation: chat_pb2.Conversation) -> None:
        """The group as it is now: its members, and what the person may do."""
        self.conversation = conversation
        count = len(conversation.members)
        self.title(f"Members of {conversation.name}")
        self.heading.configure(text=f"{conversation.name}: {count} member{'s' if count != 1 else ''}")
        chosen = self.members.selection()
        self.members.delete(*self.members.get_children())
        for member in conversation.members:
            admin = member.role == chat_pb2.MEMBER_ROLE_ADMIN
            self.members.insert(
                "",
                "end",
                iid=str(member.user_id),
                text=" " + self.label(member.user_id),
                values=("admin" if admin else "member",),
                tags=("admin",) if admin else (),
            )
        kept = [iid for iid in chosen if self.members.exists(iid)]
        if kept:
            self.members.selection_set(kept)
        if self.admin():
            self.note.configure(
                text="You are an admin of this group: add people from the directory, or remove a member."
            )
            self.remove_button.configure(state="normal")
            for widget in (self.add_head, self.candidates, self.add_button):
                widget.grid()
        else:
            self.note.configure(text="Only the group's admins can add or remove people. Anyone can leave.")
            self.remove_button.configure(state="disabled")
            for widget in (self.add_head, self.candidates, self.add_button):
                widget.grid_remove()
        self._fill_candidates()

    def _fill_candidates(self) -> None:
        """The directory's people who are not in the group, filtered by Find."""
        inside = {m.user_id for m in self.conversation.members}
        wanted = self.find.get().strip().lower()
        chosen = self.candidates.selection()
        self.candidates.delete(*self.candidates.get_children())
        people = sorted(
            (u for u in self.view.users.values() if u.id not in inside and not u.disabled),
            key=lambda u: (u.display_name or u.username).lower(),
        )
        for user in people:
            name = user.display_name or user.username
            if wanted and wanted not in name.lower() and wanted not in user.username.lower():
                continue
            self.candidates.insert("", "end", iid=str(user.id), text=f" {name}")
        kept = [iid for iid in chosen if self.candidates.exists(iid)]
        if kept:
            self.candidates.selection_set(kept)

    def _said(self, text: str, style: str = "secondary") -> None:
        if self.alive:
            self.result.configure(text=text, bootstyle=style)

    def _failed(self, doing: str) -> Callable[[Exception], None]:
        def failed(error: Exception) -> None:
            if isinstance(error, NotSignedIn) or not self.alive:
                self.view.on_error(error, doing)
                return
            self._said(sentence(error, doing), "danger")

        return failed

    def add_selected(self) -> None:
        chosen = [int(iid) for iid in self.candidates.selection()]
        if not chosen:
            self._said("Select the people to add in the list on the right (Ctrl-click for several).", "danger")
            return
        self.add_people(chosen)

    def add_people(self, user_ids: list[int]) -> None:
        conversation_id = self.conversation_id
        names = ", ".join(self.label(u) for u in user_ids)

        def done(conversation: chat_pb2.Conversation) -> None:
            self.view._merge_conversation(conversation)  # shows it here too
            if self.alive:
                self.find.set("")
            self._said(f"Added {names}.", "success")

        self._said(f"Adding {names}…")
        self.view.controller.run(
            lambda: backend.add_members(self.view.session, conversation_id, user_ids), done, self._failed("add people")
        )

    def remove_selected(self) -> None:
        chosen = self.members.selection()
        if not chosen:
            self._said("Select the member to remove in the list on the left.", "danger")
            return
        user_id = int(chosen[0])
        if user_id == self.view.me:
            self._said("To leave the group yourself, use Leave group.", "danger")
            return
        conversation_id, name = self.conversation_id, self.label(user_id)

        def done(conversation: chat_pb2.Conversation) -> None:
            self.view._merge_conversation(conversation)
            self._said(f"Removed {name}.", "success")

        self._said(f"Removing {name}…")
        self.view.controller.run(
            lambda: backend.remove_member(self.view.session, conversation_id, user_id),
            done,
            self._failed(f"remove {name}"),
        )

    def leave(self) -> None:
        """Two clicks: the first asks for a second one within a few seconds."""
        if self.leave_button.cget("text") != "Click again to leave":
            self.leave_button.configure(text="Click again to leave")
            self._confirm_after = self.after(CONFIRM_MS, self._unconfirm)
            self._said(f"You will no longer see “{self.conversation.name}” or its messages.")
            return
        self._unconfirm()
        view, conversation_id, name = self.view, self.conversation_id, self.conversation.name
        self._said("Leaving…")
        view.controller.run(
            lambda: backend.leave(view.session, conversation_id),
            lambda _reply: view._drop_conversation(conversation_id, f"You left “{name}”."),
            self._failed("leave the group"),
        )

    def _unconfirm(self) -> None:
        if self._confirm_after is not None:
            self.after_cancel(self._confirm_after)
            self._confirm_after = None
        if self.alive:
            self.leave_button.configure(text="Leave group")
