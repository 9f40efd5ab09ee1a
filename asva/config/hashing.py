"""Short, stable content hashes that key caches and identify configurations."""

from __future__ import annotations

import hashlib
import json


def stable_hash(*parts: object, length: int = 12) -> str:
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]
