"""Changelog entries of pushed versions: counts per config and split, and the ids added, removed and changed.

`CHANGELOG.md` in the repository holds one entry per version, newest first (ids listed up to a limit);
`changelog/vX.Y.Z.json` holds the complete diff of that version.
"""

from __future__ import annotations

from typing import Any

from retinal_reason_data.release.diff import ReleaseDiff

TITLE = "# Changelog\n"
LISTED_IDS = 20


def _ids(label: str, ids: list[str], tag: str) -> list[str]:
    if not ids:
        return []
    shown = ", ".join(f"`{sample_id}`" for sample_id in ids[:LISTED_IDS])
    more = f" and {len(ids) - LISTED_IDS} more (all in `changelog/{tag}.json`)" if len(ids) > LISTED_IDS else ""
    return [f"  - {label} ({len(ids)}): {shown}{more}"]


def render_entry(tag: str, previous: str | None, diff: ReleaseDiff, manifest: dict[str, Any], date: str) -> str:
    """One version's entry in Markdown."""
    since = f"since {previous}" if previous else "first release"
    lines = [
        f"## {tag} ({date})",
        "",
        f"Recipe `{manifest.get('recipe')}` {manifest.get('recipe_version')}, recipe hash "
        f"`{manifest.get('recipe_hash')}`, content key `{manifest.get('content_key')}`, "
        f"retinal-reason-data {manifest.get('tool_version')}; {since}.",
        "",
        "| config | split | before | after |",
        "|---|---|---|---|",
    ]
    for config, change in diff.configs.items():
        for split in sorted(set(change.old_rows) | set(change.new_rows)):
            lines.append(f"| {config} | {split} | {change.old_rows.get(split, 0)} | {change.new_rows.get(split, 0)} |")
    lines.append("")
    for config, change in diff.configs.items():
        counts = (
            f"{len(change.added)} added, {len(change.removed)} removed, {len(change.changed)} changed, "
            f"{len(change.moved)} moved to another split"
        )
        lines.append(f"- `{config}`: {counts}")
        lines += _ids("added", change.added, tag)
        lines += _ids("removed", change.removed, tag)
        lines += _ids("changed", change.changed, tag)
        lines += _ids("moved", change.moved, tag)
    return "\n".join(lines) + "\n"


def prepend(existing: str | None, entry: str) -> str:
    """The changelog with `entry` first (a previous entry for the same version is replaced)."""
    body = (existing or "").removeprefix(TITLE).strip("\n")
    tag_line = entry.splitlines()[0].split(" (")[0]
    kept = [block for block in _blocks(body) if block.splitlines()[0].split(" (")[0] != tag_line]
    return TITLE + "\n" + "\n".join([entry, *kept]).rstrip("\n") + "\n"


def _blocks(body: str) -> list[str]:
    blocks: list[str] = []
    for line in body.splitlines(keepends=True):
        if line.startswith("## ") or not blocks:
            blocks.append(line)
        else:
            blocks[-1] += line
    return [block for block in blocks if block.strip()]
