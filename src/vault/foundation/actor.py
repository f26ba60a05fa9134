"""Who is doing something: recorded on every journal event."""

from __future__ import annotations

import getpass
import os
import socket

from pydantic import BaseModel, ConfigDict


class Actor(BaseModel):
    """The OS user, host and (over SSH) client address behind an operation."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    user: str
    uid: int
    host: str
    ssh_client: str | None = None


def current_actor() -> Actor:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    # SSH_CONNECTION is "client_ip client_port server_ip server_port".
    ssh = os.environ.get("SSH_CONNECTION", "").split()
    ssh_client = f"{ssh[0]}:{ssh[1]}" if len(ssh) >= 2 else None
    return Actor(user=user, uid=os.getuid(), host=socket.gethostname(), ssh_client=ssh_client)
