"""Just enough of Dockerfile and .dockerignore syntax for the deployment tests.

Instructions are split after joining ``\\`` continuations and dropping comment
lines; exec-form arguments (``["a", "b"]``) are parsed as JSON, ``ENV`` pairs
with shell quoting rules. Only the forms the repository's Dockerfile may use
are understood — anything else fails loudly rather than being misread.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERIGNORE = ROOT / ".dockerignore"


@dataclass
class Instruction:
    keyword: str
    value: str
    line: int


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction:
        found = self.all(keyword)
        assert found, f"stage {self.name or self.base} has no {keyword}"
        return found[-1]

    def env(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for ins in self.all("ENV"):
            for token in shlex.split(ins.value):
                key, sep, val = token.partition("=")
                assert sep, f"line {ins.line}: only ENV KEY=VALUE is supported"
                values[key] = val
        return values


def instructions(text: str) -> list[Instruction]:
    result: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # comment lines inside a continued instruction are dropped
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending.append(stripped[:-1])
            continue
        pending.append(stripped)
        joined = " ".join(part.strip() for part in pending)
        pending = []
        keyword, _, value = joined.partition(" ")
        result.append(Instruction(keyword.upper(), value.strip(), start))
    assert not pending, "the Dockerfile ends inside a continued line"
    return result


def stages(path: Path = DOCKERFILE) -> list[Stage]:
    found: list[Stage] = []
    for ins in instructions(path.read_text(encoding="utf-8")):
        if ins.keyword == "FROM":
            match = re.fullmatch(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", ins.value, re.I)
            assert match, f"line {ins.line}: cannot read FROM {ins.value!r}"
            found.append(Stage(match.group(1), match.group(2)))
        elif ins.keyword == "ARG" and not found:
            continue  # global build arguments before the first FROM
        else:
            assert found, f"line {ins.line}: {ins.keyword} before FROM"
            found[-1].instructions.append(ins)
    return found


def exec_form(value: str) -> list[str]:
    """``["a", "b"]`` → ``["a", "b"]``; shell form fails the caller's test."""
    parsed = json.loads(value)
    assert isinstance(parsed, list) and all(isinstance(x, str) for x in parsed), value
    return parsed


def healthcheck_command(ins: Instruction) -> tuple[dict[str, str], list[str]]:
    """``(options, exec-form command)`` of ``HEALTHCHECK [--opt=v …] CMD [...]``."""
    options: dict[str, str] = {}
    rest = ins.value
    while rest.startswith("--"):
        option, _, rest = rest.partition(" ")
        key, _, val = option[2:].partition("=")
        options[key] = val
        rest = rest.strip()
    keyword, _, command = rest.partition(" ")
    assert keyword.upper() == "CMD", f"line {ins.line}: HEALTHCHECK without CMD"
    return options, exec_form(command.strip())


def copy_sources(ins: Instruction) -> tuple[dict[str, str], list[str], str]:
    """``(flags, sources, destination)`` of a COPY/ADD."""
    parts = shlex.split(ins.value)
    flags = {}
    while parts and parts[0].startswith("--"):
        key, _, val = parts.pop(0)[2:].partition("=")
        flags[key] = val
    assert len(parts) >= 2, f"line {ins.line}: COPY needs a source and a destination"
    return flags, parts[:-1], parts[-1]


def dockerignore_patterns(path: Path = DOCKERIGNORE) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]


def ignored(relative: str, patterns: list[str]) -> bool:
    """Whether ``relative`` (or a folder above it) is left out of the build context.

    Docker's rules in the subset used here: patterns are relative to the context
    root, ``**`` matches any number of folders, ``!`` re-includes, last match wins.
    """
    parts = Path(relative).parts
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    verdict = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        regex = _pattern_regex(pattern)
        if any(regex.fullmatch(c) for c in candidates):
            verdict = not negate
    return verdict


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and "]" in pattern[i:]:
            end = pattern.index("]", i)
            out.append(pattern[i : end + 1])
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))
