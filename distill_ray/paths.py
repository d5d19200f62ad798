"""Where distill-ray keeps what it downloads or builds once per machine (datasets, tiny students, ground truths).

`cache_root()` is $DISTILL_RAY_CACHE when set, else ~/.cache/distill_ray. Every cache under it is keyed by content
(a sha256 or a recipe hash), so sharing it between experiments is safe; deleting it only costs a rebuild.
"""

from __future__ import annotations

import os


def cache_root() -> str:
    return os.environ.get("DISTILL_RAY_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "distill_ray")
