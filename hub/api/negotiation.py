"""Content negotiation by the ``Accept`` header (RFC 9110, section 12.5.1)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class _Range:
    type: str
    subtype: str
    quality: float

    def specificity(self, media_type: str) -> int | None:
        """How closely this range matches ``media_type`` (2 exact, 1 ``type/*``, 0 ``*/*``), or
        ``None`` when it does not."""
        kind, _, sub = media_type.partition("/")
        if self.type == "*" and self.subtype == "*":
            return 0
        if self.type != kind:
            return None
        if self.subtype == "*":
            return 1
        return 2 if self.subtype == sub else None


def _ranges(accept: str) -> list[_Range]:
    ranges = []
    for part in accept.split(","):
        media_range, *params = (piece.strip() for piece in part.split(";"))
        kind, slash, sub = media_range.lower().partition("/")
        if not (slash and kind and sub):
            continue  # not a media range; RFC 9110 lets a server ignore it
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value.strip())
                except ValueError:
                    quality = 0.0
        ranges.append(_Range(kind, sub, min(max(quality, 0.0), 1.0)))
    return ranges


def negotiate(accept: str | None, offered: Sequence[str]) -> str | None:
    """The offered media type ``accept`` prefers, ties going to the earlier offer; the first
    offer when there is no (or an empty) header; ``None`` when nothing offered is acceptable."""
    if accept is None or not accept.strip():
        return offered[0] if offered else None
    ranges = _ranges(accept)
    best: tuple[float, str] | None = None
    for media_type in offered:
        matches = [(r.specificity(media_type), r.quality) for r in ranges]
        scored = [(specificity, quality) for specificity, quality in matches if specificity is not None]
        if not scored:
            continue
        # the most specific range that matches decides the quality (text/html;q=0 beats */*)
        quality = max(scored)[1]
        if quality > 0 and (best is None or quality > best[0]):
            best = (quality, media_type)
    return best[1] if best else None
