"""The paper's main results table and its per-event appendix.

Main table: per event window, N, the CAAR with its cross-sectional standard error and 95% interval,
the share of positive CARs, and every test of the battery (:mod:`analysis.significance`) with its
statistic and p-value. Windows are columns and quantities rows, so four windows fit one page; the CSV
companion is the long frame (one row per window, every number unrounded) for machines and checking.

Appendix: one row per firm-event and window, windows in numeric order, as a LaTeX ``longtable``;
a blank CAR carries a footnote with its reason instead of being dropped.

CAAR inference (the row "SE" and "95% interval"): the mean of N CARs, SE = sd(CAR)/sqrt(N) with ddof 1,
interval CAAR +- t_{0.975, N-1} SE; this is the cross-sectional t test's statistic, so "SE" and the
cross-sectional p agree. Rendering goes through :class:`analysis.summary.Summary`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
from scipy import special

from analysis.results import EventStudyResult, car_columns
from analysis.significance import TESTS, battery
from analysis.summary import (
    STAR_NOTE,
    Column,
    Summary,
    Table,
    fixed,
    integer,
    percent,
    pvalue,
    stars,
)
from analysis.window import EventWindow

#: Human names of the battery's tests, in the table's order, with the reference each one follows.
TEST_NAMES: dict[str, str] = {
    "cross_sectional_t": "Cross-sectional t",
    "patell_z": "Patell Z",
    "bmp_t": "BMP t",
    "kolari_pynnonen_t": "Kolari-Pynnönen t",
    "corrado_rank": "Corrado rank",
    "generalized_sign": "Generalized sign Z",
    "skewness_adjusted_t": "Skewness-adjusted t",
    "brown_warner_1985": "Brown-Warner (1985)",
    "lamb": "Lamb",
}
TEST_NOTE = (
    "Tests of H0: CAAR = 0, two-sided p-values in parentheses. Cross-sectional t: mean CAR over its "
    "cross-sectional standard error, t(N-1). Patell (1976) Z: sum of CARs standardized by their "
    "estimation-window prediction error. BMP: Boehmer, Musumeci and Poulsen (1991), cross-sectional t of "
    "standardized CARs, robust to event-induced variance. Kolari-Pynnönen (2010): BMP adjusted for "
    "cross-correlation of the abnormal returns. Corrado (1989) rank test and Cowan (1992) generalized sign "
    "test: nonparametric. Skewness-adjusted t: Hall (1992). Brown-Warner (1985) and Lamb: time-series "
    "standard deviation of the average abnormal return (estudy2 forms)."
)


#: Short forms of :data:`analysis.engine.REASONS` that fit a table column.
REASONS = {
    "no_t0": "no announcement date",
    "ticker_not_found": "no returns for the ticker",
    "no_event_returns": "no return in the event window",
    "factors_missing": "factor file ends before the window",
    "insufficient_estimation_obs": "too few estimation returns (min obs)",
    "singular_design": "collinear regressors",
}


def main_results(res: EventStudyResult, windows: tuple[EventWindow, ...] | None = None) -> pl.DataFrame:
    """One row per window (numeric order): window, n, caar, se, ci_low, ci_high, pct_positive, and per
    test ``<test>`` (statistic) and ``<test>_p``. Pure; every number at full precision."""
    wins = sorted((EventWindow.of(w) for w in (windows or res.windows)), key=EventWindow.sort_key)
    rows = []
    for w in wins:
        car = res.car.filter(pl.col("window") == w.label)["car"].drop_nulls().to_numpy()
        n = car.shape[0]
        caar = float(car.mean()) if n else float("nan")
        se = float(car.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
        half = float(special.stdtrit(n - 1, 0.975)) * se if n > 1 else float("nan")
        row: dict[str, object] = {
            "window": w.label, "n": n, "caar": caar, "se": se, "ci_low": caar - half, "ci_high": caar + half,
            "pct_positive": float((car > 0).mean() * 100) if n else float("nan"),
        }
        tests = battery(res.panel, w, daily=False, conventions=res.conventions).frame
        tests = tests.filter(pl.col("window") == w.label)
        stat = dict(zip(tests["test"].to_list(), tests["statistic"].to_list(), strict=True))
        pv = dict(zip(tests["test"].to_list(), tests["p_value"].to_list(), strict=True))
        for name in TESTS:
            row[name] = stat.get(name)
            row[f"{name}_p"] = pv.get(name)
        rows.append(row)
    schema = {"window": pl.String, "n": pl.Int64, **{k: pl.Float64 for k in (
        "caar", "se", "ci_low", "ci_high", "pct_positive", *(c for t in TESTS for c in (t, f"{t}_p")))}}
    return pl.DataFrame(rows, schema=schema, orient="row").with_columns(pl.selectors.float().fill_nan(None))


def main_summary(frame: pl.DataFrame, *, title: str | None = None, header: tuple[str, ...] = ()) -> Summary:
    """The main table for reading: quantities as rows, windows as columns (cells already text)."""
    pct, num, p4, n_fmt = percent(2), fixed(2), pvalue(3), integer()
    rows: list[tuple[str, str, list[str]]] = [
        ("N", "$N$", [n_fmt(v) for v in frame["n"]]),
        ("CAAR %", r"CAAR (\%)", [pct(v) + stars(p) if pct(v) else "" for v, p in
                                  zip(frame["caar"], frame["cross_sectional_t_p"], strict=True)]),
        ("SE %", r"SE (\%)", [pct(v) for v in frame["se"]]),
        ("95% interval %", r"95\% interval (\%)",
         [f"[{pct(a)}, {pct(b)}]" if pct(a) else "" for a, b in zip(frame["ci_low"], frame["ci_high"], strict=True)]),
        ("CAR > 0 %", r"CAR $>$ 0 (\%)", [fixed(1)(v) for v in frame["pct_positive"]]),
    ]
    for name, label in TEST_NAMES.items():
        cells = [f"{num(s)} ({p4(p)})" if num(s) else "" for s, p in zip(frame[name], frame[f"{name}_p"], strict=True)]
        rows.append((label, label, cells))
    windows = frame["window"].to_list()
    display = pl.DataFrame(
        {"quantity": [r[0] for r in rows], **{w: [r[2][j] for r in rows] for j, w in enumerate(windows)}},
        schema={"quantity": pl.String, **dict.fromkeys(windows, pl.String)},
    )
    cols = (Column("quantity", ""), *(Column(w, w, align="right") for w in windows))
    return Summary.of(Table(display, cols), title=title, header=header,
                      notes=(STAR_NOTE.replace("t with M-k degrees of freedom", "cross-sectional t, t(N-1)"),
                             TEST_NOTE))


def appendix_table(res: EventStudyResult) -> pl.DataFrame:
    """Every estimated firm-event and window (numeric window order), with a footnote for blank CARs."""
    order = {w.label: i for i, w in enumerate(sorted((EventWindow.of(w) for w in res.windows),
                                                       key=EventWindow.sort_key))}
    length = {w.label: w.length for w in (EventWindow.of(w) for w in res.windows)}
    from analysis.clustered import adjusted_car_pvalues

    # Holm and Benjamini-Hochberg p-values, one family per window: with ~50 firm-events per window a
    # reader hunting the smallest raw p needs the multiplicity-adjusted one beside it.
    car = adjusted_car_pvalues(res.car).with_columns(
        pl.col("window").replace_strict(order, return_dtype=pl.Int64).alias("_w"),
        pl.col("window").replace_strict(length, return_dtype=pl.Int64).alias("_len"),
    )
    keys = res.panel.keys
    source = keys.select("event_id", "time_source") if "time_source" in keys.columns else None
    if source is not None:
        car = car.join(source, on="event_id", how="left")
    return (
        car.select(
            "deal_id", "ticker", pl.col("t0").cast(pl.String), *(("time_source",) if source is not None else ()),
            "window", "_w",
            (pl.col("car") * 100).alias("car_pct"), (pl.col("se") * 100).alias("se_pct"), "t", "p", "p_holm", "p_bh",
            pl.when(pl.col("car").is_null())
            .then(pl.format("blank: a return on {} of the window's {} trading days (no price or a masked "
                            "day on the others)", pl.col("n_days"), pl.col("_len")))
            .alias("note"),
        )
        .sort("t0", "deal_id", "ticker", "_w")
        .drop("_w")
    )


#: Where t0's time of day came from (analysis.date_basis), beside t0 in the appendix's Markdown and CSV.
TIME_SOURCE = Column("time_source", "t0 time from")
TIME_SOURCE_NOTE = (
    "t0 time from: where the announcement's time of day came from. official: the deal row; evidence: the "
    "ledger's timing evidence for the announcement date, where the row gives no time (evidence of any "
    "confidence; --date-basis evidence also where the row's session differs); first_report: an earlier "
    "first report (--date-basis first_report); none: no time known, the unknown-time policy decides. t0 is "
    "the first session of the ticker's exchange that closes after that time.")

#: The multiplicity-adjusted p-values of the appendix (one family per window).
ADJUSTED_P = (Column("p_holm", "Holm p", pvalue(4)), Column("p_bh", "BH p", pvalue(4)))
ADJUSTED_NOTE = ("Holm p and BH p: the CAR t-test's p-value adjusted for the number of firm-events in the "
                 "window (Holm's step-down family-wise and Benjamini-Hochberg false-discovery rate).")


def appendix_summary(t: pl.DataFrame, excluded: pl.DataFrame, *, wide: bool = False) -> Summary:
    """The per-event appendix. The page (LaTeX) leaves out p and the adjusted p-values (stars and t carry
    them; eight columns do not fit); ``wide=True`` (Markdown) shows p, Holm p and BH p too."""
    names = ("deal_id", "ticker", "t0", "window", "car", "se", "t") + (("p",) if wide else ())
    cols = tuple(
        Column(c.name, c.label, c.fmt, c.align, c.stars, "note" if c.name == "car_pct" else None, c.tex_label)
        for c in car_columns(*names, scaled=True)
    ) + (ADJUSTED_P if wide else ())
    # The page has no room for another column; the Markdown and CSV show the time's source.
    sourced = wide and "time_source" in t.columns
    if sourced:
        cols = (*cols[:3], TIME_SOURCE, *cols[3:])
    tables = [Table(t, cols)]
    if excluded.height:
        why = excluded.select(
            "event_id", pl.col("reason").replace_strict(REASONS, default=pl.col("reason"), return_dtype=pl.String),
            *(("time_source",) if wide and "time_source" in excluded.columns else ()),
        ).sort("event_id")
        tables.append(Table(why,
                            (Column("event_id", "Firm-event not estimated"), Column("reason", "Reason"),
                             *((TIME_SOURCE,) if "time_source" in why.columns else ())),
                            title="Firm-events not estimated"))
    notes: tuple[str, ...] = (STAR_NOTE, ADJUSTED_NOTE) if wide else (
        STAR_NOTE, "p and the Holm and Benjamini-Hochberg adjusted p-values: event_study_car.csv and .md.")
    if "time_source" in t.columns:
        notes = (*notes, TIME_SOURCE_NOTE if sourced else
                 "Where each t0's time of day came from (deal row or timing evidence): event_study_car.csv and .md.")
    return Summary(tuple(tables), notes=notes)


def write_main(res: EventStudyResult, folder: Path, caption: str, header: tuple[str, ...] = ()) -> list[Path]:
    """``main_results.{tex,md,csv}`` and the appendix ``event_study_car.{tex,md,csv}``."""
    folder.mkdir(parents=True, exist_ok=True)
    frame = main_results(res)
    main = main_summary(frame, header=header)
    appendix = appendix_table(res)
    app = appendix_summary(appendix, res.excluded)
    files = {
        "main_results.tex": main.to_latex(caption, "tab:main_results", size="footnotesize"),
        "main_results.md": (f"**{caption}**\n\n" + main.to_markdown()),
        "main_results.csv": frame.write_csv(),
        # Narrower column gaps so the long deal ids fit the text width of a standard article page.
        "event_study_car.tex": app.to_latex(f"{caption}: every firm-event", "tab:event_study_car",
                                            longtable=True, size="footnotesize").replace(
            "\\begingroup\\footnotesize", "\\begingroup\\footnotesize\\setlength{\\tabcolsep}{3pt}", 1),
        "event_study_car.md": appendix_summary(appendix, res.excluded, wide=True).to_markdown(),
        "event_study_car.csv": appendix.write_csv(),
    }
    out = []
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
        out.append(folder / name)
    return out
