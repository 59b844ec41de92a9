"""Yes/no words, read by one parser wherever they come from: an environment flag such
as ``PHOTOPROC_OFFLINE`` or a form field such as ``crop_face``.

Standard library only, so that ``import photoproc`` stays cheap.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from .errors import InvalidOptionsError

__all__ = ["FALSE_WORDS", "TRUE_WORDS", "env_flag", "parse_bool"]

TRUE_WORDS = frozenset({"1", "true", "yes", "on", "y", "t"})
FALSE_WORDS = frozenset({"0", "false", "no", "off", "n", "f", ""})


def parse_bool(text: str) -> bool | None:
    """``True``/``False`` for a yes/no word (any case, blanks ignored), ``None`` for
    anything else."""
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    return None


def env_flag(name: str, env: Mapping[str, str] | None = None) -> bool:
    """An on/off environment variable (unset: off). A word that is neither raises
    :class:`~photoproc.errors.InvalidOptionsError` naming the variable rather than
    guessing."""
    raw = (os.environ if env is None else env).get(name, "")
    value = parse_bool(raw)
    if value is None:
        raise InvalidOptionsError(name, f"{raw!r} is not a yes/no word (use 1 or 0)")
    return value
