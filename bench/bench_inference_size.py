"""Size of the joint-inference tests under simulated nulls, at full size.

Prints, for each test, the rejection rate at the 5% level over the simulated null samples with its exact
(Clopper-Pearson) binomial 95% interval; the target is 3.5%-6.5%. The Hein-Westfall bootstrap is shown
next to the parametric forms (exact-under-normality F, asymptotic chi2) on the same samples, and the CAAR
bootstrap-t next to the sign-flip test. The reduced-size checks are tests/analysis/test_inference_size.py.

    python bench/bench_inference_size.py                       # 2,000 null samples per test
    python bench/bench_inference_size.py --sims 5000 --boot 999
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis import size_simulation as S  # noqa: E402


def line(label: str, p: np.ndarray) -> str:
    r = S.rejection_summary(p)
    flag = "ok" if 0.035 <= r.rate <= 0.065 else "OUTSIDE 3.5-6.5%"
    return (f"  {label:<44} {100 * r.rate:6.2f}%  95% CI [{100 * r.low:5.2f}%, {100 * r.high:5.2f}%]"
            f"  n={r.n}  {flag}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sims", type=int, default=2000, help="null samples per test")
    ap.add_argument("--boot", type=int, default=499, help="bootstrap draws per sample")
    ap.add_argument("--seed", type=int, default=20250122)
    ap.add_argument("--hw-est", type=int, nargs="+", default=[100, 240],
                    help="estimation days of the simulated MVRM clusters (240 = carousel's default)")
    a = ap.parse_args()
    ss = np.random.SeedSequence(a.seed).spawn(4)
    print(f"size at the 5% level, {a.sims} null samples per test, {a.boot} bootstrap draws, seed {a.seed}")

    t = time.perf_counter()
    p = S.calendar_time_null_pvalues(a.sims, np.random.default_rng(ss[0]))
    print(f"calendar-time portfolio (750 days, 40 firms x 3 events, window [0,+5], NW lags, t(T-k)) "
          f"[{time.perf_counter() - t:.1f}s]")
    print(line("alpha = 0", p))

    for k, n_est in enumerate(a.hw_est):
        t = time.perf_counter()
        hw = S.hein_westfall_null_pvalues(a.sims, np.random.default_rng(ss[1].spawn(len(a.hw_est))[k]),
                                          n_est=n_est, n_boot=a.boot)
        print(f"MVRM, 5 firms, {n_est} estimation days, 3-day window, t(4) noise, common factor 0.4 "
              f"[{time.perf_counter() - t:.1f}s]")
        for j, h in enumerate(("all_zero", "sum_zero", "equal")):
            for form, label in (("boot", "Hein-Westfall bootstrap"), ("F", "F (Hotelling)"),
                                ("chi2", "chi2 (asymptotic)")):
                print(line(f"{h:<9} {label}", hw[form][:, j]))

    t = time.perf_counter()
    cb = S.caar_bootstrap_null_pvalues(a.sims, np.random.default_rng(ss[2]), n_boot=a.boot)
    cf = S.caar_bootstrap_null_pvalues(a.sims, np.random.default_rng(ss[3]), n_boot=a.boot,
                                       method="sign_flip")
    print(f"CAAR over 30 CARs with t(4) tails [{time.perf_counter() - t:.1f}s]")
    print(line("bootstrap-t", cb))
    print(line("sign-flip", cf))


if __name__ == "__main__":
    main()
