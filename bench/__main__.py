"""`python -m bench`: run every benchmark and print its table."""

from __future__ import annotations

import importlib
import sys

BENCHES = (
    "bench.faq_bench",
    "bench.faq_semantic_bench",
    "bench.email_reply_bench",
    "bench.first_message_bench",
    "bench.fanout_bench",
    "bench.scale_bench",
)


def main() -> int:
    """Run each benchmark module's `main()` in turn; a missing one is reported, not fatal."""
    status = 0
    for name in BENCHES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            print(f"(skipping {name}: {exc})")
            continue
        print(f"\n=== {name} ===", flush=True)
        result = module.main()
        status = status or (result if isinstance(result, int) else 0)
    return status


if __name__ == "__main__":
    sys.exit(main())
