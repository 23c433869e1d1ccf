"""`inbox serve` freezes its startup heap and collects young objects less often: cyclic
garbage made while serving must still be freed without anyone calling gc.collect."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_cyclic_garbage_made_after_startup_is_still_collected() -> None:
    # In a process of its own: freezing would leave this test process's heap frozen.
    script = textwrap.dedent("""
        import weakref
        from web.app import freeze_startup_heap

        freeze_startup_heap()

        class Node:
            pass

        def cycle():
            a, b = Node(), Node()
            a.other, b.other = b, a
            return weakref.ref(a)

        refs = [cycle() for _ in range(50_000)]  # garbage only a collection can free
        alive = sum(r() is not None for r in refs)
        assert alive < len(refs) // 2, f"{alive} of {len(refs)} cycles still alive"
        print("ok", alive)
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("ok")
