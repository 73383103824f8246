"""What every service agrees on about labeling platforms: their names, as requests carry them.

The sampler and analysis hand frames to the labeling bridge as labeling-request events; a request
naming a platform the bridge does not serve is refused where it is made, not dropped later.
"""

from __future__ import annotations

from shoal.common.errors import InvalidArgument, shown

#: the platforms the labeling bridge serves; the first is the default
PLATFORMS = ("label_studio",)


def platform_of(name: str, field: str = "platform") -> str:
    """``name`` or the default platform; raises InvalidArgument for a platform no bridge serves."""
    if not name:
        return PLATFORMS[0]
    if name not in PLATFORMS:
        raise InvalidArgument(f"is {shown(name)}; the labeling bridge serves {', '.join(PLATFORMS)}", field=field)
    return name
