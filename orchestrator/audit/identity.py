"""Who is acting, for the audit record: the same person the role check sees
(`security.identity`: the real uid's user, and SUDO_USER only when root ran the command
for them; a non-root process's SUDO_USER is anyone's to set, so it is ignored)."""

from __future__ import annotations

import os
import pwd

from orchestrator.security.identity import current_identity as _person


def current_identity() -> dict[str, str]:
    """`who` is the person; `unix_user` the account the process runs as."""
    uid = os.getuid()
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:  # a uid without a passwd entry (containers)
        user = f"uid:{uid}"
    return {"who": _person().user, "unix_user": user}
