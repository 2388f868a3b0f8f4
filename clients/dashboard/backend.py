"""The administrator's calls, blocking, each one a plain function of the session: the views run them through
``Controller.run`` (a worker thread), never on Tk's thread."""

from __future__ import annotations

from dataclasses import dataclass

from workspace.v1 import activity_pb2, monitoring_pb2, presence_pb2, users_pb2
from workspace_client import LoginRefused, Session

#: Presence is asked for this many people per call (the server's limit is 500).
PRESENCE_BATCH = 500
#: The activity feed starts with this many recent entries.
RECENT_ACTIVITY = 100


def sign_in(address: str, username: str, password: str, **session_options) -> Session:  # type: ignore[no-untyped-def]
    """A session for an administrator; anyone else is refused with a clear message (and logged out)."""
    session = Session(address, app="dashboard", **session_options)
    try:
        user = session.login(username, password)
        if user.role != users_pb2.ROLE_ADMIN:
            session.logout()
            raise LoginRefused(
                f"{user.username} is not an administrator: the dashboard is for administrators only.", "not_admin"
            )
    except Exception:
        session.close()
        raise
    return session


def resume(address: str, **session_options) -> Session | None:  # type: ignore[no-untyped-def]
    """The remembered administrator session for ``address``, if there is one and it still works."""
    session = Session(address, app="dashboard", **session_options)
    try:
        user = session.resume()
    except Exception:
        session.close()
        raise
    if user is None or user.role != users_pb2.ROLE_ADMIN:
        session.close()
        return None
    return session


def all_users(session: Session, show_disabled: bool = True) -> list[users_pb2.User]:
    users: list[users_pb2.User] = []
    token = ""
    while True:
        request = users_pb2.ListUsersRequest(page_size=200, page_token=token, show_disabled=show_disabled)
        reply = session.call(session.users.ListUsers, request)
        users.extend(reply.users)
        token = reply.next_page_token
        if not token:
            return users


@dataclass(frozen=True)
class PersonPresence:
    user: users_pb2.User
    presence: presence_pb2.Presence


def people(session: Session, include_offline: bool = False) -> list[PersonPresence]:
    """Everyone's presence (enabled accounts), online and away first, then by name."""
    users = all_users(session, show_disabled=False)
    by_id = {u.id: u for u in users}
    rows: list[PersonPresence] = []
    ids = list(by_id)
    for start in range(0, len(ids), PRESENCE_BATCH):
        request = presence_pb2.GetPresenceRequest(user_ids=ids[start : start + PRESENCE_BATCH])
        for presence in session.call(session.presence.GetPresence, request).presences:
            if include_offline or presence.state != presence_pb2.PRESENCE_STATE_OFFLINE:
                rows.append(PersonPresence(by_id[presence.user_id], presence))
    rows.sort(key=lambda r: (r.presence.state, r.user.username))
    return rows


def issues(session: Session, show_resolved: bool = False) -> list[monitoring_pb2.ClientIssue]:
    request = monitoring_pb2.ListClientIssuesRequest(page_size=200, show_resolved=show_resolved)
    return list(session.call(session.monitoring.ListClientIssues, request).issues)


def resolve_issue(session: Session, issue_id: int) -> monitoring_pb2.ClientIssue:
    request = monitoring_pb2.ResolveClientIssueRequest(issue_id=issue_id)
    return session.call(session.monitoring.ResolveClientIssue, request).issue


def recent_activity(session: Session) -> list[activity_pb2.ActivityEntry]:
    """The newest entries, newest first."""
    request = activity_pb2.ListActivityRequest(page_size=RECENT_ACTIVITY)
    return list(session.call(session.activity.ListActivity, request).entries)


def create_account(session: Session, username: str, display_name: str, password: str, admin: bool) -> users_pb2.User:
    user = users_pb2.User(
        username=username, display_name=display_name, role=users_pb2.ROLE_ADMIN if admin else users_pb2.ROLE_USER
    )
    request = users_pb2.CreateUserRequest(user=user, password=password)
    return session.call(session.users.CreateUser, request).user


def set_disabled(session: Session, user_id: int, disabled: bool) -> users_pb2.User:
    request = users_pb2.UpdateUserRequest(
        user=users_pb2.User(id=user_id, disabled=disabled), update_mask={"paths": ["disabled"]}
    )
    return session.call(session.users.UpdateUser, request).user


def reset_password(session: Session, user_id: int, password: str) -> int:
    """A new password for another account; returns how many of its sessions ended."""
    request = users_pb2.ResetPasswordRequest(user_id=user_id, new_password=password)
    return session.call(session.users.ResetPassword, request).sessions_ended
