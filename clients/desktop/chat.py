"""Chat: the conversation list, the people directory, one conversation's messages, the compose box.

Everything here runs on Tk's thread. The network is reached through ``Controller.run`` (a worker thread) and
the events of ``ChatService.StreamEvents`` arrive through ``handle_event`` (the main window forwards them from
the library's resumable stream). The message view is one ``Text`` widget whatever the number of messages:
older pages are loaded with ``ListMessages`` when it is scrolled to the top, and written in above what is
there (never the whole view again). Above it, a search of every conversation (``SearchMessages``); beside its
title, a group's members (``MembersDialog``).
"""

from __future__ import annotations

import time
import tkinter as tk
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import ttkbootstrap as ttk
from workspace.v1 import chat_pb2, presence_pb2, users_pb2
from workspace_client import Session, Unreachable
from workspace_client.tk_bridge import Controller

from . import backend
from .chat_members import CONFIRM_MS, MembersDialog

#: A typing notice is sent again after this many seconds of continued typing (the server delivers one per 2 s).
TYPING_EVERY = 3.0
#: Someone's "typing" lasts this long when the event carries no expiry.
TYPING_DEFAULT = 6.0
#: The outbox is tried again this often while it waits for the server, ms.
OUTBOX_RETRY_MS = 2000
#: Messages of one person less than this many seconds apart share one header.
GROUP_SECONDS = 300
REACTIONS = ("♥", "✔")
#: What the emoji menus offer (to write, and to react with): symbols of the Basic Multilingual Plane, which
#: Tk 8.6 draws with the ordinary fonts (DejaVu Sans has them all; Tk cannot draw the colour emoji beyond).
EMOJI = (
    *("☺", "☹", "♥", "❤", "✔", "✘"),
    *("★", "☘", "☀", "☁", "☂", "❄"),
    *("☕", "⚡", "✈", "☎", "✉", "✂"),
    *("✎", "♫", "⚠", "♪", "✌", "☝"),
)
#: Emoji per column of the menus.
EMOJI_ROWS = 6
#: Opening a search result loads at most this many older pages to reach it.
SEEK_PAGES = 50
#: The longest text the server searches for, characters.
SEARCH_MAX = 200
DOT_COLOURS = {
    presence_pb2.PRESENCE_STATE_ONLINE: "#2fb344",
    presence_pb2.PRESENCE_STATE_AWAY: "#f59f00",
    presence_pb2.PRESENCE_STATE_OFFLINE: "#adb5bd",
}
PRESENCE_WORDS = {
    presence_pb2.PRESENCE_STATE_ONLINE: "online",
    presence_pb2.PRESENCE_STATE_AWAY: "away",
    presence_pb2.PRESENCE_STATE_OFFLINE: "offline",
}


@dataclass
class Pending:
    """A message in the outbox: shown greyed until the server has it; its ``request_id`` makes retries safe."""

    request_id: str
    conversation_id: int
    text: str
    reply_to: int = 0


def dot(colour: str, size: int = 12) -> tk.PhotoImage:
    image = tk.PhotoImage(width=size, height=size)
    centre, radius = (size - 1) / 2, size / 2 - 2
    for y in range(size):
        row = []
        for x in range(size):
            inside = (x - centre) ** 2 + (y - centre) ** 2 <= radius**2
            row.append(colour if inside else "")
        for x, pixel in enumerate(row):
            if pixel:
                image.put(pixel, (x, y))
    return image


def clock(stamp: Any) -> str:
    if not stamp.seconds:
        return ""
    moment = datetime.fromtimestamp(stamp.seconds)
    return moment.strftime("%H:%M") if moment.date() == datetime.now().date() else moment.strftime("%d %b %H:%M")


def one_line(text: str, limit: int = 60) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def day_of(stamp: Any) -> date:
    return datetime.fromtimestamp(stamp.seconds).date()


def day_label(day: date) -> str:
    """The line between two days of messages: "— Thursday 26 November —" (with the year if it is not this one)."""
    label = f"{day:%A} {day.day} {day:%B}"
    if day.year != datetime.now().year:
        label += f" {day.year}"
    return f"— {label} —"


def snippet(text: str, query: str, limit: int = 80) -> str:
    """One line of ``text`` that shows where ``query`` is in it."""
    flat = " ".join(text.split())
    where = flat.lower().find(query.lower())
    if where > limit // 3 and len(flat) > limit:
        flat = "…" + flat[where - limit // 4 :]
    return one_line(flat, limit)


class ChatView(ttk.Frame):
    def __init__(
        self,
        parent: tk.Misc,
        controller: Controller,
        session: Session,
        on_error: Callable[[Exception, str], None],
    ) -> None:
        super().__init__(parent, padding=6)
        self.controller, self.session, self.on_error = controller, session, on_error
        assert session.user is not None
        self.me = session.user.id
        self.users: dict[int, users_pb2.User] = {session.user.id: session.user}
        self.presence: dict[int, int] = {}
        self.conversations: dict[int, chat_pb2.Conversation] = {}
        self.open_id = 0
        #: The open conversation's loaded messages, by id; older pages join as the view is scrolled up.
        self.messages: dict[int, chat_pb2.Message] = {}
        self.older_token = ""
        self.loading_older = False
        self.loaded = False
        self.drafts: dict[int, str] = {}
        self.outbox: list[Pending] = []
        self.sending = False
        #: Called when a message joins or leaves the outbox.
        self.on_outbox: Callable[[], None] = lambda: None
        #: Called once per new message from someone else, as it arrives (notifications, the title's badge).
        self.on_incoming: Callable[[chat_pb2.Message], None] = lambda message: None
        self.newest_incoming = 0
        self.online = False
        self.typing: dict[tuple[int, int], float] = {}
        self.typing_sent: dict[int, float] = {}
        self.selected = 0
        self.reply_to = 0
        self.editing = 0
        #: A search result being opened: (conversation, message), and how many older pages were loaded for it.
        self.wanted: tuple[int, int] | None = None
        self.seek_pages = 0
        #: The search results on show, by message id (bounded by the pages asked for with "More").
        self.found: dict[int, chat_pb2.Message] = {}
        self.found_query = ""
        self.found_token = ""
        #: Bumped by each search call and by leaving the results: a late answer to an older one is dropped.
        self.search_serial = 0
        self.members_dialog: MembersDialog | None = None
        self._confirm_after: str | None = None
        self._retry_after: str | None = None
        self.dots = {state: dot(colour) for state, colour in DOT_COLOURS.items()}
        self.group_icon = dot("#4582ec")
        self._tick_after: str | None = None
        self._build()
        self._tick()
        self.bind("<Destroy>", self._destroyed, add="+")

    def _destroyed(self, event: tk.Event) -> None:
        """Timers die with the view: none may fire into a closed window."""
        if event.widget is not self:
            return
        for timer in (self._tick_after, self._retry_after, self._confirm_after):
            if timer is not None:
                self.after_cancel(timer)
        self._tick_after = self._retry_after = self._confirm_after = None

    # --- layout ------------------------------------------------------------------------------------------

    def _build(self) -> None:
        panes = ttk.Panedwindow(self, orient="horizontal")
        panes.pack(fill="both", expand=True)
        left = ttk.Frame(panes, padding=(0, 0, 6, 0))
        right = ttk.Frame(panes, padding=(6, 0, 0, 0))
        panes.add(left, weight=0)
        panes.add(right, weight=1)

        ttk.Label(left, text="Conversations", font=("TkDefaultFont", 11, "bold")).pack(anchor="w", pady=(0, 4))
        box = ttk.Frame(left)
        box.pack(fill="both", expand=True)
        self.list = ttk.Treeview(box, columns=("last", "unread"), height=12, selectmode="browse")
        self.list.heading("#0", text="Name", anchor="w")
        self.list.heading("last", text="Last message", anchor="w")
        self.list.heading("unread", text="New", anchor="center")
        self.list.column("#0", width=140, minwidth=90, stretch=False)
        self.list.column("last", width=160, minwidth=80, stretch=True)
        self.list.column("unread", width=44, minwidth=36, stretch=False, anchor="center")
        self.list.tag_configure("unread", font=("TkDefaultFont", 9, "bold"))
        bar = ttk.Scrollbar(box, orient="vertical", command=self.list.yview)
        self.list.configure(yscrollcommand=bar.set)
        self.list.pack(side="left", fill="both", expand=True)
        bar.pack(side="left", fill="y")
        self.list.bind("<<TreeviewSelect>>", lambda _e: self._list_selected())

        people_head = ttk.Frame(left)
        people_head.pack(fill="x", pady=(10, 4))
        ttk.Label(people_head, text="People", font=("TkDefaultFont", 11, "bold")).pack(side="left")
        self.message_button = ttk.Button(
            people_head, text="Message", command=self.message_selected_person, bootstyle="primary-outline"
        )
        self.message_button.pack(side="right")
        self.search = tk.StringVar()
        find = ttk.Frame(left)
        find.pack(fill="x", pady=(0, 4))
        ttk.Label(find, text="Find", bootstyle="secondary").pack(side="left", padx=(0, 6))
        ttk.Entry(find, textvariable=self.search).pack(side="left", fill="x", expand=True)
        self.search.trace_add("write", lambda *_: self._fill_people())
        group = ttk.Frame(left)
        group.pack(side="bottom", fill="x", pady=(4, 0))
        ttk.Label(group, text="Group", bootstyle="secondary").pack(side="left", padx=(0, 6))
        self.group_button = ttk.Button(group, text="New group", command=self.new_group, bootstyle="secondary-outline")
        self.group_button.pack(side="right")
        self.group_name = ttk.Entry(group)
        self.group_name.pack(side="left", fill="x", expand=True, padx=(0, 6))
        self.group_name.bind("<Return>", lambda _e: self.new_group())
        people_box = ttk.Frame(left)
        people_box.pack(fill="both", expand=True)
        self.people = ttk.Treeview(people_box, columns=("state",), height=8, selectmode="extended", show="tree")
        self.people.column("#0", width=250, stretch=True)
        self.people.column("state", width=80, stretch=False)
        people_bar = ttk.Scrollbar(people_box, orient="vertical", command=self.people.yview)
        self.people.configure(yscrollcommand=people_bar.set)
        self.people.pack(side="left", fill="both", expand=True)
        people_bar.pack(side="left", fill="y")
        self.people.bind("<Double-1>", lambda _e: self.message_selected_person())

        self._build_search(right)
        # The conversation, or in its place while a search is on show, the results.
        self.conversation_area = ttk.Frame(right)
        self.conversation_area.pack(fill="both", expand=True)
        self.results_area = ttk.Frame(right)
        self._build_results(self.results_area)
        right = self.conversation_area

        header = ttk.Frame(right)
        header.pack(fill="x")
        self.title = ttk.Label(header, text="Choose a conversation", font=("TkDefaultFont", 13, "bold"))
        self.title.pack(side="left", anchor="w")
        # Packed only while a group is open: a direct conversation has no members to manage.
        self.members_button = ttk.Button(
            header, text="Members", command=self.show_members, bootstyle="secondary-outline"
        )
        self.subtitle = ttk.Label(right, text="", bootstyle="secondary")
        self.subtitle.pack(anchor="w", pady=(0, 4))

        # The compose area is packed from the bottom first: a small window shrinks the messages, never it.
        compose = ttk.Frame(right)
        compose.pack(side="bottom", fill="x")
        self.compose = ttk.Entry(compose)
        self.compose.pack(side="left", fill="x", expand=True)
        self.compose.bind("<Return>", lambda _e: self.send())
        self.compose.bind("<Escape>", lambda _e: self.cancel_mode())
        self.compose.bind("<Key>", self._keyed)
        self.emoji_button = ttk.Button(compose, text="☺", width=3, bootstyle="secondary-outline")
        self.emoji_menu = self._emoji_menu(self.insert_emoji)
        self.emoji_button.configure(command=lambda: self._post(self.emoji_menu, self.emoji_button))
        self.emoji_button.pack(side="left", padx=(6, 0))
        self.send_button = ttk.Button(compose, text="Send", command=self.send, bootstyle="primary", width=8)
        self.send_button.pack(side="left", padx=(6, 0))

        actions = ttk.Frame(right)
        actions.pack(side="bottom", fill="x", pady=(2, 4))
        self.reply_button = ttk.Button(actions, text="Reply", command=self.start_reply, bootstyle="secondary-link")
        self.edit_button = ttk.Button(actions, text="Edit", command=self.start_edit, bootstyle="secondary-link")
        self.delete_button = ttk.Button(actions, text="Delete", command=self.delete_selected, bootstyle="danger-link")
        self.react_buttons = [
            ttk.Button(actions, text=emoji, command=lambda e=emoji: self.toggle_reaction(e), bootstyle="secondary-link")
            for emoji in REACTIONS
        ]
        self.more_reactions = ttk.Button(actions, text="☺ …", bootstyle="secondary-link")
        self.reaction_menu = self._emoji_menu(self.toggle_reaction)
        self.more_reactions.configure(command=lambda: self._post(self.reaction_menu, self.more_reactions))
        self.react_buttons.append(self.more_reactions)
        self.cancel_button = ttk.Button(actions, text="Cancel", command=self.cancel_mode, bootstyle="secondary-link")
        for widget in (self.reply_button, self.edit_button, self.delete_button, *self.react_buttons):
            widget.pack(side="left")
        self.cancel_button.pack(side="right")
        self.banner = ttk.Label(right, text="", bootstyle="info")
        self.banner.pack(side="bottom", anchor="w")
        self.typing_label = ttk.Label(right, text="", bootstyle="secondary", font=("TkDefaultFont", 9, "italic"))
        self.typing_label.pack(side="bottom", anchor="w", pady=(2, 0))

        text_box = ttk.Frame(right)
        text_box.pack(fill="both", expand=True)
        self.text = tk.Text(
            text_box, wrap="word", state="disabled", cursor="arrow", padx=10, pady=8, relief="flat", height=10
        )
        self.text_bar = ttk.Scrollbar(text_box, orient="vertical", command=self.text.yview)
        self.text.configure(yscrollcommand=self._scrolled)
        self.text.pack(side="left", fill="both", expand=True)
        self.text_bar.pack(side="left", fill="y")
        self.text.bind("<Button-1>", self._clicked)
        self._style_text()
        self._update_actions()

    def _emoji_menu(self, choose: Callable[[str], None]) -> tk.Menu:
        """A menu of ``EMOJI`` in columns; choosing one calls ``choose`` with it."""
        menu = tk.Menu(self, tearoff=False, font=("TkDefaultFont", 14))
        for index, emoji in enumerate(EMOJI):
            menu.add_command(
                label=emoji, command=lambda e=emoji: choose(e), columnbreak=bool(index and index % EMOJI_ROWS == 0)
            )
        return menu

    def _post(self, menu: tk.Menu, under: tk.Misc) -> None:
        menu.tk_popup(under.winfo_rootx(), under.winfo_rooty() + under.winfo_height())

    def insert_emoji(self, emoji: str) -> None:
        """Into the message being written, where the cursor is."""
        self.compose.insert("insert", emoji)
        self.compose.focus_set()

    def _build_search(self, parent: tk.Misc) -> None:
        bar = ttk.Frame(parent)
        bar.pack(fill="x", pady=(0, 8))
        ttk.Label(bar, text="Search messages", bootstyle="secondary").pack(side="left", padx=(0, 6))
        self.search_clear = ttk.Button(bar, text="Clear", command=self.clear_search, bootstyle="secondary-link")
        self.search_clear.pack(side="right")
        self.search_button = ttk.Button(
            bar, text="Search", command=self.search_messages, bootstyle="primary-outline", width=8
        )
        self.search_button.pack(side="right", padx=(6, 0))
        self.search_hint = ttk.Label(bar, text="", bootstyle="secondary")
        self.search_hint.pack(side="right", padx=(6, 0))
        self.search_entry = ttk.Entry(bar)
        self.search_entry.pack(side="left", fill="x", expand=True)
        self.search_entry.bind("<Return>", lambda _e: self.search_messages())
        self.search_entry.bind("<Escape>", lambda _e: self.clear_search())

    def _build_results(self, area: ttk.Frame) -> None:
        head = ttk.Frame(area)
        head.pack(fill="x", pady=(0, 4))
        self.results_label = ttk.Label(head, text="", font=("TkDefaultFont", 11, "bold"))
        self.results_label.pack(side="left")
        ttk.Label(head, text="Double-click a message (or Enter) to open it", bootstyle="secondary").pack(side="right")
        foot = ttk.Frame(area)
        foot.pack(side="bottom", fill="x", pady=(6, 0))
        self.more_button = ttk.Button(
            foot, text="More results", command=self._search_page, bootstyle="secondary-outline", state="disabled"
        )
        self.more_button.pack(side="left")
        self.open_result_button = ttk.Button(foot, text="Open", command=self.open_result, bootstyle="primary")
        self.open_result_button.pack(side="right")
        box = ttk.Frame(area)
        box.pack(fill="both", expand=True)
        columns = ("conversation", "sender", "time", "text")
        self.results = ttk.Treeview(box, columns=columns, show="headings", selectmode="browse")
        for column, heading, width, stretch in (
            ("conversation", "Conversation", 150, False),
            ("sender", "From", 120, False),
            ("time", "When", 100, False),
            ("text", "Message", 300, True),
        ):
            self.results.heading(column, text=heading, anchor="w")
            self.results.column(column, width=width, minwidth=60, stretch=stretch)
        bar = ttk.Scrollbar(box, orient="vertical", command=self.results.yview)
        self.results.configure(yscrollcommand=bar.set)
        self.results.pack(side="left", fill="both", expand=True)
        bar.pack(side="left", fill="y")
        self.results.bind("<Double-1>", lambda _e: self.open_result())
        self.results.bind("<Return>", lambda _e: self.open_result())
        self.results.bind("<Escape>", lambda _e: self.clear_search())

    def _style_text(self) -> None:
        style = ttk.Style()
        background = style.lookup("TEntry", "fieldbackground") or "white"
        foreground = style.lookup("TLabel", "foreground") or "black"
        self.text.configure(background=background, foreground=foreground, font=("TkDefaultFont", 10))
        self.text.tag_configure("meta", font=("TkDefaultFont", 9, "bold"), spacing1=8)
        self.text.tag_configure("time", font=("TkDefaultFont", 8), foreground="#868e96")
        self.text.tag_configure("quote", font=("TkDefaultFont", 9, "italic"), foreground="#868e96", lmargin1=12)
        self.text.tag_configure("body", lmargin1=0, lmargin2=0, spacing3=2)
        self.text.tag_configure("deleted", font=("TkDefaultFont", 9, "italic"), foreground="#868e96")
        self.text.tag_configure("reactions", font=("TkDefaultFont", 9), foreground="#4582ec")
        self.text.tag_configure("pending", foreground="#adb5bd")
        self.text.tag_configure("notice", foreground="#868e96", justify="center", font=("TkDefaultFont", 9))
        self.text.tag_configure(
            "day", foreground="#868e96", justify="center", font=("TkDefaultFont", 9, "bold"), spacing1=10, spacing3=2
        )
        self.text.tag_configure("selected", background="#e7f1ff" if _light(background) else "#2b3e50")

    # --- loading -----------------------------------------------------------------------------------------

    def load(self) -> None:
        """(Re)load conversations, people and their presence; reopen the open conversation."""
        self.controller.run(
            lambda: backend.conversations(self.session), self._got_conversations, self._failed("load the conversations")
        )
        self.load_people()
        if self.open_id:
            self.open(self.open_id, keep_draft=True)

    def load_people(self) -> None:
        self.controller.run(lambda: backend.directory(self.session), self._got_people, self._failed("load people"))

    def _failed(self, doing: str) -> Callable[[Exception], None]:
        return lambda error: self.on_error(error, doing)

    def _got_conversations(self, found: list[chat_pb2.Conversation]) -> None:
        for conversation in found:
            known = self.conversations.get(conversation.id)
            if known is not None and known.last_message.id > conversation.last_message.id:
                continue  # an event was newer than this snapshot
            self.conversations[conversation.id] = conversation
        self._fill_list()
        self.loaded = True

    def _got_people(self, users: list[users_pb2.User]) -> None:
        for user in users:
            self.users[user.id] = user
        self._fill_people()
        self._fill_list()
        ids = [u.id for u in users]
        self.controller.run(lambda: backend.presences(self.session, ids), self._got_presence, lambda _e: None)

    def _got_presence(self, found: list[presence_pb2.Presence]) -> None:
        for presence in found:
            self.presence[presence.user_id] = presence.state
        self._fill_people()
        self._fill_list()
        self._show_title()

    # --- the lists -----------------------------------------------------------------------------------------

    def name(self, user_id: int) -> str:
        if user_id == self.me:
            return "You"
        user = self.users.get(user_id)
        if user is None:
            return "a former member" if user_id == 0 else f"#{user_id}"
        return user.display_name or user.username

    def other(self, conversation: chat_pb2.Conversation) -> int:
        for member in conversation.members:
            if member.user_id != self.me:
                return member.user_id
        return 0

    def conversation_title(self, conversation: chat_pb2.Conversation) -> str:
        if conversation.kind == chat_pb2.CONVERSATION_KIND_DIRECT:
            return self.name(self.other(conversation))
        return conversation.name

    def _icon(self, conversation: chat_pb2.Conversation) -> tk.PhotoImage:
        if conversation.kind == chat_pb2.CONVERSATION_KIND_DIRECT:
            state = self.presence.get(self.other(conversation), presence_pb2.PRESENCE_STATE_OFFLINE)
            return self.dots.get(state, self.dots[presence_pb2.PRESENCE_STATE_OFFLINE])
        return self.group_icon

    def ordered(self) -> list[chat_pb2.Conversation]:
        return sorted(
            self.conversations.values(),
            key=lambda c: (c.last_activity_time.seconds, c.last_activity_time.nanos, c.id),
            reverse=True,
        )

    def _fill_list(self) -> None:
        wanted = [str(c.id) for c in self.ordered()]
        for iid in self.list.get_children():
            if iid not in wanted:
                self.list.delete(iid)
        for index, conversation in enumerate(self.ordered()):
            iid = str(conversation.id)
            last = conversation.last_message
            if not last.id:
                preview = "No messages yet"
            elif last.delete_time.seconds:
                preview = "Message deleted"
            else:
                who = "You: " if last.sender_id == self.me else ""
                preview = who + one_line(last.text, 40)
            unread = conversation.unread_count if conversation.id != self.open_id else 0
            values = (preview, str(unread) if unread else "")
            options = {
                "text": " " + self.conversation_title(conversation),
                "image": self._icon(conversation),
                "values": values,
                "tags": ("unread",) if unread else (),
            }
            if self.list.exists(iid):
                self.list.item(iid, **options)
                if self.list.index(iid) != index:
                    self.list.move(iid, "", index)
            else:
                self.list.insert("", index, iid=iid, **options)

    def _fill_people(self) -> None:
        wanted = self.search.get().strip().lower()
        chosen = self.people.selection()
        self.people.delete(*self.people.get_children())
        people = sorted(
            (u for u in self.users.values() if u.id != self.me and not u.disabled),
            key=lambda u: (self.presence.get(u.id, 3), (u.display_name or u.username).lower()),
        )
        for user in people:
            label = user.display_name or user.username
            if wanted and wanted not in label.lower() and wanted not in user.username.lower():
                continue
            state = self.presence.get(user.id, presence_pb2.PRESENCE_STATE_OFFLINE)
            self.people.insert(
                "",
                "end",
                iid=str(user.id),
                text=f" {label}",
                image=self.dots.get(state, self.dots[presence_pb2.PRESENCE_STATE_OFFLINE]),
                values=(PRESENCE_WORDS.get(state, ""),),
            )
        kept = [iid for iid in chosen if self.people.exists(iid)]
        if kept:
            self.people.selection_set(kept)

    def new_group(self) -> None:
        """A group with the people selected (Ctrl-click for several) and the name typed beside the button."""
        name, members = self.group_name.get().strip(), [int(i) for i in self.people.selection()]
        if not name or not members:
            self.on_error(ValueError("select the people in the list and type the group's name"), "create a group")
            return

        def done(conversation: chat_pb2.Conversation) -> None:
            self.group_name.delete(0, "end")
            self.people.selection_set(())
            self._merge_conversation(conversation)
            self.open(conversation.id)

        self.controller.run(lambda: backend.group(self.session, name, members), done, self._failed("create the group"))

    def message_selected_person(self) -> None:
        chosen = self.people.selection()
        if chosen:
            self.message_person(int(chosen[0]))

    def message_person(self, user_id: int) -> None:
        """Open the direct conversation with someone, creating it if it does not exist yet."""

        def done(conversation: chat_pb2.Conversation) -> None:
            self._merge_conversation(conversation)
            self.open(conversation.id)

        self.controller.run(lambda: backend.direct(self.session, user_id), done, self._failed("start the conversation"))

    def _list_selected(self) -> None:
        chosen = self.list.selection()
        if chosen and int(chosen[0]) != self.open_id:
            self.open(int(chosen[0]))

    # --- one conversation ----------------------------------------------------------------------------------

    def open(self, conversation_id: int, keep_draft: bool = False) -> None:
        if self.open_id and not keep_draft:
            self.drafts[self.open_id] = self._compose_text()
        switching = conversation_id != self.open_id
        self.open_id = conversation_id
        self.messages, self.older_token, self.loading_older = {}, "", True
        self.selected = self.reply_to = self.editing = 0
        if switching or not keep_draft:
            self.compose.delete(0, "end")
            self.compose.insert(0, self.drafts.get(conversation_id, ""))
        self.banner.configure(text="")
        if self.list.exists(str(conversation_id)) and self.list.selection() != (str(conversation_id),):
            self.list.selection_set(str(conversation_id))
            self.list.see(str(conversation_id))
        self._show_title()
        self._render(notice="Loading…")
        self._fill_list()
        self._update_actions()

        def done(page: tuple[list[chat_pb2.Message], str]) -> None:
            if self.open_id != conversation_id:
                return
            messages, token = page
            for message in messages:
                self.messages.setdefault(message.id, message)
            self.older_token, self.loading_older = token, False
            self._render(to_end=True)
            self._mark_read()
            self._seek()

        def failed(error: Exception) -> None:
            self.loading_older = False
            self.on_error(error, "load the messages")

        self.controller.run(lambda: backend.messages(self.session, conversation_id), done, failed)
        self.compose.focus_set()

    def _show_title(self) -> None:
        conversation = self.conversations.get(self.open_id)
        if conversation is None:
            self.members_button.pack_forget()
            return
        self.title.configure(text=self.conversation_title(conversation))
        if conversation.kind == chat_pb2.CONVERSATION_KIND_GROUP:
            if not self.members_button.winfo_manager():
                self.members_button.pack(side="right")
        else:
            self.members_button.pack_forget()
        if conversation.kind == chat_pb2.CONVERSATION_KIND_DIRECT:
            state = self.presence.get(self.other(conversation), presence_pb2.PRESENCE_STATE_OFFLINE)
            self.subtitle.configure(text=f"● {PRESENCE_WORDS.get(state, '')}", foreground=DOT_COLOURS.get(state))
        else:
            names = ", ".join(self.name(m.user_id) for m in conversation.members)
            self.subtitle.configure(text=f"{len(conversation.members)} members: {one_line(names, 90)}", foreground="")

    def _scrolled(self, first: str, last: str) -> None:
        self.text_bar.set(first, last)
        if float(first) <= 0.0 and self.older_token and not self.loading_older and self.open_id:
            self.load_older()

    def load_older(self) -> None:
        """The page before the oldest loaded message; the view keeps showing what it showed."""
        conversation_id, token = self.open_id, self.older_token
        self.loading_older = True

        def done(page: tuple[list[chat_pb2.Message], str]) -> None:
            if self.open_id != conversation_id:
                return
            messages, next_token = page
            self.older_token = next_token
            self._prepend([m for m in messages if m.id not in self.messages])
            self.loading_older = False
            self._seek()

        def failed(error: Exception) -> None:
            self.loading_older = False
            self.on_error(error, "load older messages")

        self.controller.run(lambda: backend.messages(self.session, conversation_id, token), done, failed)

    def _prepend(self, page: list[chat_pb2.Message]) -> None:
        """Write an older page in above the first message shown, as ``_render`` would have, and keep the view on
        what it showed. The first message is written again after the page: its date line and its header depend on
        the message before it, which it now has."""
        text = self.text
        first = self.messages[min(self.messages)] if self.messages else None
        page = sorted(page, key=lambda m: m.id)
        block = text.tag_ranges(f"m{first.id}") if first is not None else ()
        if first is None or not block or (page and page[-1].id > first.id) or "day" not in text.tag_names("1.0"):
            for message in page:  # not the view that _render wrote with older pages to come: write it all
                self.messages[message.id] = message
            self._render()
            return
        for message in page:
            self.messages[message.id] = message
        page_ids = {m.id for m in page}
        top = text.index("@0,0")
        in_first = text.compare(top, "<", block[-1])
        text.mark_set("view_top", top)
        text.configure(state="normal")
        text.delete("1.0", block[-1])  # the first message with its date line
        text.mark_set("seam", "1.0")
        text.mark_gravity("seam", "right")  # each insertion goes after the one before
        if not self.older_token:
            text.insert("seam", "The beginning of the conversation\n", ("notice",))
        previous: chat_pb2.Message | None = None
        for message in page:
            self._write(message, previous, at="seam")
            previous = message
        text.mark_set("old_first", "seam")
        text.mark_gravity("old_first", "left")
        self._write(first, previous, at="seam")
        for message in self.messages.values():  # replies shown as "an earlier message" now know what they quote
            if message.reply_to_message_id in page_ids and message.id not in page_ids:
                self._requote(message)
        self._highlight()
        text.configure(state="disabled")
        text.yview("old_first" if in_first else "view_top")
        for mark in ("seam", "old_first", "view_top"):
            text.mark_unset(mark)

    def _requote(self, message: chat_pb2.Message) -> None:
        ranges = self.text.tag_ranges(f"m{message.id}")
        quoted = self.text.tag_nextrange("quote", ranges[0], ranges[-1]) if ranges else ()
        if quoted:
            self.text.delete(quoted[0], quoted[1])
            self.text.insert(quoted[0], self._quote(message) + "\n", ("quote", f"m{message.id}"))

    def _highlight(self) -> None:
        self.text.tag_remove("selected", "1.0", "end")
        ranges = self.text.tag_ranges(f"m{self.selected}") if self.selected in self.messages else ()
        if ranges:
            self.text.tag_add("selected", ranges[0], ranges[-1])

    def _render(self, to_end: bool = False, notice: str = "") -> None:
        """Write the loaded messages (and the outbox) into the Text widget, keeping the scroll position."""
        at_end = to_end or self.text.yview()[1] >= 0.999
        top = self.text.index("@0,0")
        text = self.text
        text.configure(state="normal")
        text.delete("1.0", "end")
        if notice:
            text.insert("end", notice + "\n", ("notice",))
        elif not self.older_token and self.open_id:
            text.insert("end", "The beginning of the conversation\n", ("notice",))
        previous: chat_pb2.Message | None = None
        for message_id in sorted(self.messages):
            message = self.messages[message_id]
            self._write(message, previous)
            previous = message
        self._write_outbox()
        self._highlight()
        text.configure(state="disabled")
        if at_end:
            text.see("end")
        else:
            text.yview(top)

    def _write_outbox(self) -> None:
        """The open conversation's messages still being sent, after the others (tagged ``pending``)."""
        for pending in self.outbox:
            if pending.conversation_id == self.open_id:
                self.text.insert("end", "You  ", ("meta", "pending"))
                self.text.insert("end", "sending…\n", ("time", "pending"))
                self.text.insert("end", pending.text + "\n", ("body", "pending"))

    def _at_end(self, write: Callable[[], None]) -> None:
        """Changes the end of the view (the newest message, the outbox) without rewriting the rest: a long
        history makes a full ``_render`` cost a noticeable moment for every message. A view scrolled to its end
        stays there; any other stays where it was."""
        text = self.text
        at_end = text.yview()[1] >= 0.999
        top = text.index("@0,0")
        text.configure(state="normal")
        pending = text.tag_ranges("pending")
        if pending:  # (not through "end": Tk would take the newline before them instead of its own last one)
            text.delete(pending[0], "end-1c")
        write()
        self._write_outbox()
        self._highlight()
        text.configure(state="disabled")
        if at_end:
            text.see("end")
        else:
            text.yview(top)

    def show_outbox(self) -> None:
        """The outbox changed (a message to send, or one refused): only its rows are written again."""
        self._at_end(lambda: None)

    def _append(self, message: chat_pb2.Message) -> None:
        """A message newer than every one shown: written at the end, as ``_render`` would have."""
        previous = self.messages[max(self.messages)] if self.messages else None
        self.messages[message.id] = message
        self._at_end(lambda: self._write(message, previous))

    def _rewrite(self, message: chat_pb2.Message) -> bool:
        """A shown message as it is now (edited, deleted, reacted to), written again in its place; False when
        only a full ``_render`` can show it (it is not in the view)."""
        text = self.text
        ranges = text.tag_ranges(f"m{message.id}")
        if not ranges:
            return False
        earlier = [i for i in self.messages if i < message.id]
        previous = self.messages[max(earlier)] if earlier else None
        self.messages[message.id] = message
        text.configure(state="normal")
        text.mark_set("rewrite", ranges[0])
        text.mark_gravity("rewrite", "right")
        text.delete(ranges[0], ranges[-1])
        self._write(message, previous, at="rewrite", day_line=False)
        text.mark_unset("rewrite")
        for other in self.messages.values():  # replies quote its text
            if other.reply_to_message_id == message.id:
                self._requote(other)
        self._highlight()
        text.configure(state="disabled")
        return True

    def _write(
        self, message: chat_pb2.Message, previous: chat_pb2.Message | None, at: str = "end", day_line: bool = True
    ) -> None:
        """One message at ``at`` (an index or a mark of gravity right); ``previous`` is the one shown above it.
        ``day_line``: False when the message is written again under its date line, which stays."""
        tag = f"m{message.id}"
        text = self.text
        edited = bool(message.edit_time.seconds and not message.delete_time.seconds)
        new_day = previous is None or day_of(previous.create_time) != day_of(message.create_time)
        if new_day and day_line:
            text.insert(at, day_label(day_of(message.create_time)) + "\n", ("day",))
        follows = (
            not new_day
            and previous is not None
            and previous.sender_id == message.sender_id
            and 0 <= message.create_time.seconds - previous.create_time.seconds < GROUP_SECONDS
            and not message.reply_to_message_id
            and not edited
        )
        if not follows:  # a run of messages from one person within a few minutes shares one header
            text.insert(at, self.name(message.sender_id) + "  ", ("meta", tag))
            stamp = clock(message.create_time) + ("  (edited)" if edited else "")
            text.insert(at, stamp + "\n", ("time", tag))
        if message.reply_to_message_id:
            text.insert(at, self._quote(message) + "\n", ("quote", tag))
        if message.delete_time.seconds:
            text.insert(at, "This message was deleted.\n", ("deleted", tag))
        else:
            text.insert(at, message.text + "\n", ("body", tag))
        if message.reactions:
            marks = "   ".join(f"{r.emoji} {len(r.user_ids)}" for r in message.reactions)
            text.insert(at, marks + "\n", ("reactions", tag))

    def _quote(self, message: chat_pb2.Message) -> str:
        quoted = self.messages.get(message.reply_to_message_id)
        if quoted is None:
            return "↪ an earlier message"
        return f"↪ {self.name(quoted.sender_id)}: {one_line(quoted.text, 70) or 'deleted message'}"

    def _clicked(self, event: tk.Event) -> None:
        index = self.text.index(f"@{event.x},{event.y}")
        for tag in self.text.tag_names(index):
            if tag.startswith("m") and tag[1:].isdigit():
                self.select_message(int(tag[1:]))
                return

    def select_message(self, message_id: int) -> None:
        self.selected = message_id if message_id in self.messages else 0
        self._highlight()
        self._update_actions()

    def _mine(self, message_id: int) -> bool:
        message = self.messages.get(message_id)
        return message is not None and message.sender_id == self.me and not message.delete_time.seconds

    def _update_actions(self) -> None:
        selected = self.messages.get(self.selected)
        usable = selected is not None and not selected.delete_time.seconds
        for widget in (self.reply_button, *self.react_buttons):
            widget.configure(state="normal" if usable else "disabled")
        for widget in (self.edit_button, self.delete_button):
            widget.configure(state="normal" if self._mine(self.selected) else "disabled")
        self.cancel_button.configure(state="normal" if (self.reply_to or self.editing) else "disabled")
        self.send_button.configure(text="Save" if self.editing else "Send")
        self.delete_button.configure(text="Delete")

    def show_message(self, conversation_id: int, message_id: int) -> None:
        """Open a conversation at one of its messages, selected: older pages are loaded until it is there."""
        self.wanted, self.seek_pages = (conversation_id, message_id), 0
        if conversation_id == self.open_id and not self.loading_older:
            self._seek()
        else:
            self.open(conversation_id)

    def _seek(self) -> None:
        """One step towards the message wanted: select it if it is loaded, else ask for the page before."""
        if self.wanted is None or self.loading_older:
            return  # nothing wanted, or a page is on its way (its arrival calls this again)
        conversation_id, message_id = self.wanted
        if conversation_id != self.open_id:
            self.wanted = None
            return
        if message_id in self.messages:
            self.wanted = None
            self.select_message(message_id)
            ranges = self.text.tag_ranges(f"m{message_id}")
            self.text.see(ranges[-1])
            self.text.see(ranges[0])
            return
        if self.older_token and (not self.messages or min(self.messages) > message_id):
            if self.seek_pages < SEEK_PAGES:
                self.seek_pages += 1
                self.load_older()
                return
            self.wanted = None
            self.banner.configure(
                text=f"That message is more than {SEEK_PAGES} pages back: scroll up to reach it, or search for "
                "something more precise."
            )
            return
        self.wanted = None
        self.banner.configure(text="That message is not in the conversation any more (it was deleted).")

    # --- searching -----------------------------------------------------------------------------------------

    def search_messages(self) -> None:
        """Search every conversation for the text in the search field (Enter, or the Search button)."""
        query = self.search_entry.get().strip()
        if not query:
            self.search_hint.configure(text="Type a word to look for in all your conversations.")
            return
        if len(query) > SEARCH_MAX:
            self.search_hint.configure(text=f"Search for at most {SEARCH_MAX} characters.")
            return
        self.search_hint.configure(text="")
        self.conversation_area.pack_forget()
        self.results_area.pack(fill="both", expand=True)
        self.results.delete(*self.results.get_children())
        self.found, self.found_query, self.found_token = {}, query, ""
        self.results_label.configure(text=f"Searching for “{one_line(query, 40)}”…")
        self._search_page()

    def _search_page(self) -> None:
        """The next page of results, added under those shown ("More results")."""
        query, token = self.found_query, self.found_token
        self.search_serial += 1
        serial = self.search_serial
        self.more_button.configure(state="disabled")

        def done(page: tuple[list[chat_pb2.Message], str]) -> None:
            if serial != self.search_serial:
                return
            messages, self.found_token = page
            for message in messages:
                if message.id in self.found:
                    continue
                self.found[message.id] = message
                conversation = self.conversations.get(message.conversation_id)
                self.results.insert(
                    "",
                    "end",
                    iid=str(message.id),
                    values=(
                        self.conversation_title(conversation) if conversation is not None else "a conversation",
                        self.name(message.sender_id),
                        clock(message.create_time),
                        snippet(message.text, query),
                    ),
                )
            shown = one_line(query, 40)
            if not self.found:
                self.results_label.configure(text=f"No message contains “{shown}”.")
            else:
                more = ", more to come" if self.found_token else ""
                many = "message contains" if len(self.found) == 1 else "messages contain"
                self.results_label.configure(text=f"{len(self.found)} {many} “{shown}”{more}")
            self.more_button.configure(state="normal" if self.found_token else "disabled")
            if self.found and not self.results.selection():
                first = self.results.get_children()[0]
                self.results.selection_set(first)
                self.results.focus(first)

        def failed(error: Exception) -> None:
            if serial == self.search_serial:
                self.results_label.configure(text="The search did not work.")
                self.more_button.configure(state="normal" if self.found_token else "disabled")
                self.on_error(error, "search the messages")

        self.controller.run(lambda: backend.search_messages(self.session, query, token), done, failed)

    def clear_search(self) -> None:
        """Back to the conversation (Escape, or Clear)."""
        self.search_serial += 1  # an answer still on its way is dropped
        self.search_entry.delete(0, "end")
        self.search_hint.configure(text="")
        self._leave_results()

    def _leave_results(self) -> None:
        self.results.delete(*self.results.get_children())
        self.found, self.found_token = {}, ""
        self.more_button.configure(state="disabled")
        self.results_area.pack_forget()
        self.conversation_area.pack(fill="both", expand=True)

    def searching(self) -> bool:
        return bool(self.results_area.winfo_manager())

    def open_result(self) -> None:
        chosen = self.results.selection()
        message = self.found.get(int(chosen[0])) if chosen else None
        if message is None:
            return
        self.search_serial += 1
        self._leave_results()  # the query stays in the field: Enter runs it again
        self.show_message(message.conversation_id, message.id)

    # --- a group's members ---------------------------------------------------------------------------------

    def show_members(self) -> None:
        conversation = self.conversations.get(self.open_id)
        if conversation is None or conversation.kind != chat_pb2.CONVERSATION_KIND_GROUP:
            return
        if self.members_dialog is not None and self.members_dialog.winfo_exists():
            if self.members_dialog.conversation_id == conversation.id:
                self.members_dialog.lift()
                return
            self.members_dialog.destroy()
        self.members_dialog = MembersDialog(self, conversation)

    def _drop_conversation(self, conversation_id: int, notice: str) -> None:
        """The person is no longer in a conversation (left, or removed): it goes from the list and the view."""
        self.conversations.pop(conversation_id, None)
        if self.members_dialog is not None and self.members_dialog.conversation_id == conversation_id:
            self.members_dialog.destroy()
            self.members_dialog = None
        if self.open_id == conversation_id:
            self.open_id = 0
            self.messages = {}
            self.older_token = ""
            self.selected = self.reply_to = self.editing = 0
            self.title.configure(text="Choose a conversation")
            self.subtitle.configure(text="")
            self.members_button.pack_forget()
            self.banner.configure(text="")
            self._render(notice=notice)
            self._update_actions()
        self._fill_list()

    # --- writing -------------------------------------------------------------------------------------------

    def _compose_text(self) -> str:
        return self.compose.get()

    def _keyed(self, event: tk.Event) -> None:
        if event.keysym in ("Return", "Escape") or not self.open_id or self.editing:
            return
        now = time.monotonic()
        if now - self.typing_sent.get(self.open_id, -TYPING_EVERY) < TYPING_EVERY:
            return
        self.typing_sent[self.open_id] = now
        conversation_id = self.open_id
        self.controller.run(lambda: backend.typing(self.session, conversation_id), None, lambda _e: None)

    def start_reply(self) -> None:
        message = self.messages.get(self.selected)
        if message is None:
            return
        self.editing, self.reply_to = 0, message.id
        self.banner.configure(text=f"Replying to {self.name(message.sender_id)}: {one_line(message.text, 60)}")
        self._update_actions()
        self.compose.focus_set()

    def start_edit(self) -> None:
        if not self._mine(self.selected):
            return
        if not self.editing:
            self.drafts[self.open_id] = self._compose_text()
        self.editing, self.reply_to = self.selected, 0
        self.compose.delete(0, "end")
        self.compose.insert(0, self.messages[self.selected].text)
        self.banner.configure(text="Editing your message: Enter saves, Escape cancels")
        self._update_actions()
        self.compose.focus_set()

    def cancel_mode(self) -> None:
        if self.editing:
            self.compose.delete(0, "end")
            self.compose.insert(0, self.drafts.get(self.open_id, ""))
        self.editing = self.reply_to = 0
        self.banner.configure(text="")
        self._update_actions()

    def send(self) -> None:
        text = self._compose_text().strip()
        if not text or not self.open_id:
            return
        if self.editing:
            message_id = self.editing
            self.controller.run(
                lambda: backend.edit(self.session, message_id, text), self._changed, self._failed("edit the message")
            )
            self.editing = 0
            self.compose.delete(0, "end")
            self.compose.insert(0, self.drafts.get(self.open_id, ""))
            self.banner.configure(text="")
            self._update_actions()
            return
        self.outbox.append(Pending(backend.new_request_id(), self.open_id, text, self.reply_to))
        self.reply_to = 0
        self.drafts.pop(self.open_id, None)
        self.compose.delete(0, "end")
        self.banner.configure(text="")
        self._update_actions()
        self.show_outbox()
        self.text.see("end")
        self.on_outbox()
        self.flush()

    def flush(self) -> None:
        """Send the outbox in order, one at a time; on an outage it waits and is tried again."""
        if self.sending or not self.outbox:
            return
        if not self.online:
            self._retry_later()
            return
        pending = self.outbox[0]
        self.sending = True

        def done(message: chat_pb2.Message) -> None:
            self.sending = False
            self.outbox = [p for p in self.outbox if p.request_id != pending.request_id]
            self._message_arrived(message)
            self.on_outbox()
            self.flush()

        def failed(error: Exception) -> None:
            self.sending = False
            if isinstance(error, Unreachable):
                self._retry_later()
                return
            self.outbox = [p for p in self.outbox if p.request_id != pending.request_id]
            if pending.conversation_id == self.open_id:
                self.show_outbox()
            self.on_error(error, f"send “{one_line(pending.text, 40)}”")
            self.flush()

        self.controller.run(
            lambda: backend.send(
                self.session, pending.conversation_id, pending.text, pending.request_id, pending.reply_to
            ),
            done,
            failed,
        )

    def _retry_later(self) -> None:
        if self._retry_after is None:

            def again() -> None:
                self._retry_after = None
                self.flush()

            self._retry_after = self.after(OUTBOX_RETRY_MS, again)

    def delete_selected(self) -> None:
        """Two clicks: the first turns the button into "Confirm delete" for a few seconds."""
        if not self._mine(self.selected):
            return
        if self.delete_button.cget("text") != "Confirm delete":
            self.delete_button.configure(text="Confirm delete")
            self._confirm_after = self.after(CONFIRM_MS, lambda: self.delete_button.configure(text="Delete"))
            return
        if self._confirm_after is not None:
            self.after_cancel(self._confirm_after)
            self._confirm_after = None
        message_id = self.selected
        self.delete_button.configure(text="Delete")
        self.controller.run(
            lambda: backend.delete(self.session, message_id), self._changed, self._failed("delete the message")
        )

    def toggle_reaction(self, emoji: str) -> None:
        message = self.messages.get(self.selected)
        if message is None:
            return
        mine = any(r.emoji == emoji and self.me in r.user_ids for r in message.reactions)
        message_id = message.id
        self.controller.run(
            lambda: backend.react(self.session, message_id, emoji, not mine), self._changed, self._failed("react")
        )

    def _changed(self, message: chat_pb2.Message) -> None:
        """A message as it is now (edited, deleted, reacted to)."""
        if message.conversation_id == self.open_id and message.id in self.messages:
            if not self._rewrite(message):
                self.messages[message.id] = message
                self._render()
            self._update_actions()
        conversation = self.conversations.get(message.conversation_id)
        if conversation is not None and conversation.last_message.id == message.id:
            conversation.last_message.CopyFrom(message)
            self._fill_list()

    def _mark_read(self) -> None:
        conversation = self.conversations.get(self.open_id)
        if conversation is None or not self.messages:
            return
        newest = max(self.messages)
        if newest <= conversation.last_read_message_id and not conversation.unread_count:
            return
        conversation.last_read_message_id = max(conversation.last_read_message_id, newest)
        conversation.unread_count = 0
        conversation_id = conversation.id
        self._fill_list()
        self.controller.run(lambda: backend.mark_read(self.session, conversation_id, newest), None, lambda _e: None)

    # --- live events ---------------------------------------------------------------------------------------

    def set_online(self, online: bool) -> None:
        self.online = online
        if online:
            self.flush()

    def handle_event(self, event: chat_pb2.Event) -> None:
        kind = event.WhichOneof("payload")
        if kind == "message_created":
            self._message_arrived(event.message_created)
        elif kind == "conversation_created":
            self._merge_conversation(event.conversation_created)
        elif kind == "read_marker_moved":
            self._read_marker(event.read_marker_moved)
        elif kind in ("message_edited", "message_deleted", "reactions_changed"):
            self._changed(getattr(event, kind))
        elif kind == "members_added":
            self._merge_conversation(event.members_added.conversation)
        elif kind == "members_removed":
            change = event.members_removed
            if self.me in change.user_ids:
                self._drop_conversation(change.conversation.id, "You are no longer in this conversation.")
            else:
                self._merge_conversation(change.conversation)
        elif kind == "presence_changed":
            self.presence[event.presence_changed.user_id] = event.presence_changed.state
            self._fill_people()
            self._fill_list()
            self._show_title()
        elif kind == "typing":
            typing = event.typing
            lasts = typing.expire_time.seconds - event.create_time.seconds if typing.expire_time.seconds else 0
            lasts = lasts if 0 < lasts <= 30 else TYPING_DEFAULT
            self.typing[(typing.conversation_id, typing.user_id)] = time.monotonic() + lasts
            self._show_typing()

    def _merge_conversation(self, conversation: chat_pb2.Conversation) -> None:
        known = self.conversations.get(conversation.id)
        if known is not None:
            merged = chat_pb2.Conversation()
            merged.CopyFrom(conversation)
            if known.last_message.id > conversation.last_message.id:
                merged.last_message.CopyFrom(known.last_message)
                merged.last_activity_time.CopyFrom(known.last_activity_time)
            merged.unread_count = max(known.unread_count, conversation.unread_count)
            merged.last_read_message_id = max(known.last_read_message_id, conversation.last_read_message_id)
            conversation = merged
        self.conversations[conversation.id] = conversation
        for member in conversation.members:
            if member.user_id not in self.users:
                self.load_people()  # someone new: the directory is read again
                break
        self._fill_list()
        if conversation.id == self.open_id:
            self._show_title()
        if self.members_dialog is not None and self.members_dialog.conversation_id == conversation.id:
            self.members_dialog.show(conversation)

    def _message_arrived(self, message: chat_pb2.Message) -> None:
        if message.sender_id != self.me and message.id > self.newest_incoming:  # a replayed event is not new
            self.newest_incoming = message.id
            self.on_incoming(message)
        conversation = self.conversations.get(message.conversation_id)
        if conversation is None:
            self.controller.run(
                lambda: backend.conversation(self.session, message.conversation_id),
                self._merge_conversation,
                lambda _e: None,
            )
            return
        self.typing.pop((message.conversation_id, message.sender_id), None)
        if message.request_id:
            self.outbox = [p for p in self.outbox if p.request_id != message.request_id or message.sender_id != self.me]
        newer = message.id > conversation.last_message.id
        if newer:
            conversation.last_message.CopyFrom(message)
            conversation.last_activity_time.CopyFrom(message.create_time)
            if message.sender_id != self.me and message.id > conversation.last_read_message_id:
                conversation.unread_count += 1
        if message.conversation_id == self.open_id and message.id not in self.messages:
            if not self.messages or message.id > max(self.messages):
                self._append(message)
            else:  # an older one (a late answer): its place is among the others
                self.messages[message.id] = message
                self._render()
            self._mark_read()
        self._fill_list()
        self._show_typing()

    def _read_marker(self, marker: chat_pb2.ReadMarker) -> None:
        conversation = self.conversations.get(marker.conversation_id)
        if conversation is None or marker.last_read_message_id <= conversation.last_read_message_id:
            return
        conversation.last_read_message_id = marker.last_read_message_id
        if marker.last_read_message_id >= conversation.last_message.id:
            conversation.unread_count = 0
            self._fill_list()
        else:  # read elsewhere up to some older message: ask how many are left
            self.controller.run(
                lambda: backend.conversation(self.session, marker.conversation_id),
                lambda fresh: self._merge_unread(fresh),
                lambda _e: None,
            )

    def _merge_unread(self, fresh: chat_pb2.Conversation) -> None:
        conversation = self.conversations.get(fresh.id)
        if conversation is not None:
            conversation.unread_count = fresh.unread_count
            self._fill_list()

    def _show_typing(self) -> None:
        now = time.monotonic()
        self.typing = {key: until for key, until in self.typing.items() if until > now}
        names = [self.name(user) for (conversation, user), _ in self.typing.items() if conversation == self.open_id]
        if not names:
            text = ""
        elif len(names) == 1:
            text = f"{names[0]} is typing…"
        else:
            text = f"{', '.join(names[:-1])} and {names[-1]} are typing…"
        if self.typing_label.cget("text") != text:
            self.typing_label.configure(text=text)

    def _tick(self) -> None:
        self._show_typing()
        self._tick_after = self.after(500, self._tick)

    def typing_text(self) -> str:
        return str(self.typing_label.cget("text"))

    def message_text(self) -> str:
        return self.text.get("1.0", "end-1c")


def _light(colour: str) -> bool:
    colour = colour.lstrip("#")
    if len(colour) != 6:
        return True
    red, green, blue = (int(colour[i : i + 2], 16) for i in (0, 2, 4))
    return red * 0.299 + green * 0.587 + blue * 0.114 > 140
