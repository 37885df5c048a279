"""cs336-data: from raw web crawl to clean, deduplicated, tokenized pretraining data."""

import importlib

# Exported lazily (PEP 562) so that `cs336-data --help` imports neither fastText nor numpy.
_LAZY = {
    "extract_text_from_html_bytes": "cs336_data.extract",
    "identify_language": "cs336_data.langid",
    "mask_emails": "cs336_data.pii",
    "mask_phone_numbers": "cs336_data.pii",
    "mask_ips": "cs336_data.pii",
    "classify_nsfw": "cs336_data.harmful",
    "classify_toxic_speech": "cs336_data.harmful",
    "gopher_quality_filter": "cs336_data.gopher",
    "classify_quality": "cs336_data.quality",
    "exact_line_deduplication": "cs336_data.exact_dedup",
    "minhash_deduplication": "cs336_data.minhash",
}

__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cs336_data' has no attribute {name!r}")
