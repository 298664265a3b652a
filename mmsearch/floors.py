"""Dependency floors, checked at start-up: an old environment must not serve a network.

The floors are the ones in pyproject.toml (each is the first release that fixes a published
advisory relevant to mmsearch; README, "Security"), read back from the installed package's
metadata so there is one list. A checkout run without installing has no metadata: nothing
to compare, nothing reported.
"""

from __future__ import annotations

from importlib import metadata

# extras whose packages run inside the app (dev tools do not)
RUNTIME_EXTRAS = ("heic",)


def requirements() -> list:
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        lines = metadata.requires("mmsearch") or []
    except metadata.PackageNotFoundError:
        return []
    out = []
    for line in lines:
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue
        if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in RUNTIME_EXTRAS):
            out.append(req)
    return out


def below_floor(reqs: list | None = None) -> list[str]:
    """'NAME VERSION is below mmsearch's floor SPEC' for each installed runtime dependency
    that does not meet its floor (a missing optional one is not reported). `reqs`: these
    requirements instead of mmsearch's own."""
    from packaging.version import InvalidVersion, Version

    problems = []
    for req in requirements() if reqs is None else reqs:
        try:
            installed = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            continue
        try:
            ok = req.specifier.contains(Version(installed), prereleases=True)
        except InvalidVersion:
            ok = False
        if not ok and not any(spec.operator in (">=", ">") and not spec.contains(
                installed, prereleases=True) for spec in req.specifier):
            problems.append(f"{req.name} {installed} is not a version mmsearch runs with "
                            f"({req.name}{req.specifier}): its engine needs that range")
        elif not ok:
            problems.append(f"{req.name} {installed} is below mmsearch's safe floor "
                            f"({req.name}{req.specifier}): it has published security holes")
    return problems
