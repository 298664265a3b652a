"""What several commands share: the index the flags name, asking the app that already
has it open, and refusing to serve with dependencies below their safe floors."""

from __future__ import annotations

import sys


def index_location(args):
    from mmsearch.config import IndexLocation

    return IndexLocation.resolve(args.db, args.uri, args.token)


def ask_resident(location, method: str, path: str, payload: dict | None = None):
    """The answer of the resident process for this index, or None when none is up (then the
    command does the work itself). Its refusals are this command's errors."""
    from mmsearch.resident import ResidentError, ResidentUnavailable, find

    resident = find(location)
    if resident is None:
        return None
    try:
        return resident.call(method, path, payload)
    except ResidentUnavailable:
        return None
    except ResidentError as exc:
        raise ValueError(str(exc)) from None


def refuse_old_dependencies(host: str) -> None:
    """One line per installed dependency below mmsearch's floor; such an environment may
    serve only this computer (its holes are known and published)."""
    from mmsearch.floors import below_floor
    from ui.security import is_loopback

    old = below_floor()
    for line in old:
        print(f"warning: {line}", file=sys.stderr)
    if old and (not is_loopback(host)):
        raise ValueError(f"refusing to serve on {host} with dependencies below their safe "
                         "floors (see above); upgrade them (pip install -U -e .) or serve on "
                         "127.0.0.1")
