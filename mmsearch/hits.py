"""A found item, as every search returns it and the CLI and the API print it."""

from __future__ import annotations

from dataclasses import dataclass, field

from mmsearch.filters import is_scene

# What a search returns of each hit.
OUTPUT = ["key", "path", "title", "fields", "hash", "taken"]


@dataclass(frozen=True)
class Hit:
    """One found item: a photo (its key is its path) or a product (its key is its id)."""

    path: str
    score: float
    key: str = ""
    title: str = ""
    fields: dict = field(default_factory=dict, compare=False)
    hash: str = ""
    matched: tuple[str, ...] = ()  # which signals carried it (mmsearch.search.MATCHED)
    snippet: str = ""              # the matched words' text, shortened
    taken: float = field(default=0.0, compare=False)  # EXIF date, else file time (epoch s)
    time: float | None = None  # a video's scene: where it starts, and ends (seconds)
    end: float | None = None
    moments: tuple[tuple[float, float], ...] = ()  # the video's further strong scenes:
    # (time, score), best first (mmsearch.moments.group)

    def __post_init__(self):
        if not self.key:
            object.__setattr__(self, "key", self.path)

    def to_json(self, kind: str = "folder") -> dict:
        """The JSON the CLI and the API give: a photo is its path, score and when it was taken;
        a product its id, title, path, score and fields."""
        if kind == "catalog":
            out = {"id": self.key, "title": self.title, "path": self.path,
                   "score": round(float(self.score), 6), "fields": self.fields}
        else:
            out = {"path": self.path, "score": round(float(self.score), 6), "taken": self.taken}
            if self.time is not None:  # a video, at its best moment (its scene's key: to
                # start a find-similar from)
                out |= {"key": self.key, "time": self.time, "end": self.end, "moments": [
                    {"time": t, "score": round(float(s), 6)} for t, s in self.moments]}
        out["matched"] = list(self.matched)
        if self.snippet:
            out["text"] = self.snippet
        return out

    @classmethod
    def of(cls, entity: dict, score: float) -> "Hit":
        fields = entity.get("fields") or {}
        scene = is_scene(entity)  # a video's scene (indexer.videos)
        return cls(entity.get("path", ""), float(score), entity.get("key", ""),
                   entity.get("title", ""), fields, entity.get("hash", ""),
                   taken=float(entity.get("taken") or 0.0),
                   time=float(fields.get("time", 0.0)) if scene else None,
                   end=float(fields.get("end", 0.0)) if scene else None)
