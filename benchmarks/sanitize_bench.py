"""Cost of neutralising untrusted text and counting SMS segments.

    python benchmarks/sanitize_bench.py [--number N]

DESIGN.md budgets about 2 µs to neutralise a clean 120-character text (the usual case:
one regex scan that finds nothing and returns the input).
"""

from __future__ import annotations

import argparse
import sys
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from server.sms.sanitize import neutralise, neutralise_line, truncate  # noqa: E402
from server.sms.segments import count_segments, split_parts  # noqa: E402

CLEAN = ("Hi, your order 4711 has shipped and should arrive on Tuesday. Reply STOP to "
         "opt out of these messages. Thanks! ")[:120]
UNICODE = ("Привет! Ваш заказ отправлен 😀 — доставка во вторник. Ответьте СТОП. " * 2)[:120]
HOSTILE = ("\x1b]52;c;aGVsbG8=\x07 \x1b[2J\x1b[31mred\u202eevil\x9b1m \x00\r" * 4)[:120]
LONG_GSM = "a" * 152 + "€" + "a" * 152 + "[]" * 100


def bench(label: str, func, arg, number: int) -> float:
    per_call = min(timeit.repeat(lambda: func(arg), number=number, repeat=5)) / number * 1e6
    print(f"{label:<40} {per_call:8.2f} µs")
    return per_call


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=100_000)
    number = parser.parse_args(argv).number
    clean = bench("neutralise, clean 120 chars", neutralise, CLEAN, number)
    bench("neutralise, Cyrillic + emoji 120 chars", neutralise, UNICODE, number)
    bench("neutralise, hostile 120 chars", neutralise, HOSTILE, number // 10)
    bench("neutralise_line, clean 120 chars", neutralise_line, CLEAN, number)
    bench("truncate 60, ASCII", lambda t: truncate(t, 60), CLEAN, number)
    bench("truncate 60, Cyrillic + emoji", lambda t: truncate(t, 60), UNICODE, number // 10)
    bench("count_segments, 120 GSM-7", count_segments, CLEAN, number // 10)
    bench("count_segments, 120 UCS-2", count_segments, UNICODE, number // 10)
    bench("split_parts, 505 GSM-7 (4 parts)", split_parts, LONG_GSM, number // 100)
    ok = clean <= 2.0
    print(f"clean-text budget 2 µs: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
