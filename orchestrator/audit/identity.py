"""Who is acting, for the audit record. One small function, to be replaced when roles and
the web console's accounts arrive (issue 16's access part)."""

from __future__ import annotations

import os
import pwd


def current_identity() -> dict[str, str]:
    """The Unix user running the command, and the person behind sudo when there is one.

    `who` is the person (SUDO_USER when run through sudo, else the user); `unix_user` is
    the account the process runs as."""
    uid = os.geteuid()
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:  # a uid without a passwd entry (containers)
        user = f"uid:{uid}"
    sudo = os.environ.get("SUDO_USER")
    if sudo and sudo != user:
        return {"who": sudo, "unix_user": user}
    return {"who": user, "unix_user": user}
