"""Command-line overrides checked before Hydra composes them, for the mistakes whose
Hydra error would not say what to do: a key that has been renamed (Hydra's "To append
use +key"), an option of a config group that does not exist (Hydra exits 1 where every
other invalid config exits 2), the same regulariser listed twice (Hydra keeps one)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

# old key -> what to write instead
RENAMED_KEYS = {
    "train.eval_every": "eval.every",
    "penalty.weight": "penalty.<name>.weight (e.g. penalty.r1.weight=10)",
    "penalty.name": "penalty=<name> (or 'penalty=[r1,lecam]')",
}
# keys a config group's option sets (recorded there); setting them alone would change nothing else
SET_BY_GROUP = {"eval.protocol": "eval/protocol"}
# groups whose options may be listed: group=[a,b]
LIST_GROUPS = ("penalty",)


# A value that is a name followed by a bracket, as TFDS's split slicing: train[:10%], test[50%:]
_SLICED = re.compile(r"^(?P<key>[\w.]+)=(?P<value>\w+\[[^\]'\"]*\])$")


# A value that is a home-relative path the shell left alone (it expands ~ only at a word's start)
_HOME_PATH = re.compile(r"^(?P<key>[\w.]+)=(?P<value>~[^'\"]*)$")


def quote_slices(overrides: Sequence[str]) -> list[str]:
    """dataset.split=train[:10%] and dataset.path=~/shoes as Hydra's grammar takes them (quoted):
    unquoted brackets would read as a list, a leading ~ as a deletion, and fail to parse."""
    return [
        f"{m['key']}='{m['value']}'" if (m := _SLICED.match(override) or _HOME_PATH.match(override)) else override
        for override in overrides
    ]


def _key_and_value(override: str) -> tuple[str, str] | None:
    if "=" not in override or override.startswith("-"):
        return None
    key, _, value = override.partition("=")
    return key.lstrip("+~"), value.strip().strip("'\"")


def _search_dirs(overrides: Sequence[str], config_dir: str) -> list[Path] | None:
    """conf/ and any file:// entries of hydra.searchpath; None when another provider
    (pkg://) adds options this function cannot list."""
    dirs = [Path(config_dir)]
    for override in overrides:
        pair = _key_and_value(override)
        if pair is None or pair[0] != "hydra.searchpath":
            continue
        for entry in pair[1].strip("[]").split(","):
            entry = entry.strip().strip("'\"")
            if not entry.startswith("file://"):
                return None
            dirs.append(Path(entry.removeprefix("file://")))
    return dirs


def _options(group: str, dirs: list[Path]) -> set[str]:
    return {p.stem for d in dirs if (d / group).is_dir() for p in (d / group).glob("*.yaml")}


def errors(overrides: Sequence[str], config_dir: str) -> list[str]:
    """One message per override that Hydra would reject unhelpfully (or accept wrongly)."""
    messages = []
    dirs = _search_dirs(overrides, config_dir)
    for override in overrides:
        pair = _key_and_value(override)
        if pair is None:
            continue
        key, value = pair
        if key in RENAMED_KEYS:
            messages.append(f"{key}: renamed; spell it {RENAMED_KEYS[key]}")
            continue
        if key in SET_BY_GROUP:
            group = SET_BY_GROUP[key]
            options = ", ".join(sorted(_options(group, dirs or [Path(config_dir)])))
            messages.append(f"{key}: set by choosing {group}=<name> ({options}), which sets the keys it names")
            continue
        if dirs is None or "." in key or "(" in value:
            continue
        valid = _options(key, dirs)
        if not valid:
            continue  # not a config group
        listed = value.startswith("[")
        chosen = [v.strip() for v in value.strip("[]").split(",") if v.strip()]
        unknown = [v for v in chosen if v not in valid]
        if unknown:
            messages.append(f"{key}={', '.join(unknown)}: valid values are {', '.join(sorted(valid))}")
        elif listed and key in LIST_GROUPS and len(set(chosen)) != len(chosen):
            twice = sorted({v for v in chosen if chosen.count(v) > 1})
            messages.append(f"{key}={value}: {', '.join(twice)} listed twice; give each once")
        elif listed and key not in LIST_GROUPS:
            messages.append(f"{key}={value}: one option only (a list is for {', '.join(LIST_GROUPS)})")
    return messages
