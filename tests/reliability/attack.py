"""The attack corpus of issue 17 outside the ledger's own input rules, driven through the real CLI.

Each case prepares its attack in a fresh folder holding a copy of a seeded database (the shipped deals and
the price snapshot), runs one carousel command, and is judged on three counts: it ends in a clean error
with the expected exit code (one ``error:`` line, no traceback), and the database's content is unchanged
unless the case is a tamper (then the attacker changed it, and the command must change nothing more).

Used by ``tests/reliability/test_attack_corpus.py`` (a fast subset, and the whole corpus slow-marked) and
``bench/bench_attack.py`` (the whole corpus, printing the table of issue 17).
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).parent))
from dbstate import content_hash  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
DEALS = REPO / "data" / "events" / "deals.csv"
PRICES = REPO / "data" / "prices"
AMD_LINE = "2025-06-11,124.440002,124.470001,119.879997,121.139999,121.139999,32261900"


@dataclass(frozen=True)
class Case:
    name: str
    group: str
    #: prepares the attack in ``tmp`` (the database is ``tmp/c.duckdb``); returns the command's arguments
    setup: Callable[[Path], list[str]]
    codes: tuple[int, ...]
    #: what stderr (or stdout for verify) must contain
    message: str = ""
    #: the attacker edits the database itself (tampering): the command may not change it further
    tamper: bool = False
    #: a file-size limit for the command (a full disk)
    fsize: int | None = None
    #: the case checks a file outside the database that must stay untouched
    victim: bool = False


@dataclass(frozen=True)
class Outcome:
    case: Case
    code: int
    clean: bool
    traceback: bool
    changed_wrongly: bool
    detail: str


def seed(folder: Path) -> Path:
    """The seeded database every case starts from (built once per campaign)."""
    db = folder / "seed.duckdb"
    env = {k: v for k, v in os.environ.items() if k != "CAROUSEL_DB"}
    # build matplotlib's font cache once (its one-time notice on stderr is not part of any case)
    subprocess.run([sys.executable, "-c", "import matplotlib.pyplot"], capture_output=True, timeout=600,
                   env={**env, "MPLCONFIGDIR": str(folder / "mplconfig")})
    for args in (["ledger", "import", str(DEALS)], ["market", "load-snapshot"]):
        res = subprocess.run([sys.executable, "-m", "carousel", *args, "--db", str(db)], capture_output=True,
                             text=True, timeout=600, env=env)
        if res.returncode != 0:
            raise RuntimeError(res.stderr)
    return db


# ---- building blocks -------------------------------------------------------------------------------------

def _db(t: Path) -> str:
    return str(t / "c.duckdb")


def _foreign(kind: str) -> Callable[[Path], Path]:
    def make(t: Path) -> Path:
        path = t / "theirs.db"
        if kind == "sqlite":
            con = sqlite3.connect(path)
            con.execute("CREATE TABLE notes (x TEXT)")
            con.commit()
            con.close()
        elif kind == "text":
            path.write_text("not a database\n" * 100)
        elif kind == "empty":
            path.write_bytes(b"")
        else:
            with duckdb.connect(str(path)) as con:
                con.execute("CREATE TABLE ledger_log (position INT, note VARCHAR)" if kind == "ledger_log"
                            else "CREATE TABLE t (x INT)")
        return path
    return make


def _prices_with(edit: Callable[[Path], None]) -> Callable[[Path], Path]:
    def make(t: Path) -> Path:
        folder = t / "prices"
        folder.mkdir()
        for name in ("AMD.csv", "SPY.csv"):
            shutil.copy(PRICES / name, folder / name)
        edit(folder)
        return folder
    return make


def _amd_line(new: str) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        p = folder / "AMD.csv"
        p.write_text(p.read_text().replace(AMD_LINE, new))
    return edit


def _entry(kind: str) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        p = folder / "ZZZ.csv"
        if kind == "directory":
            p.mkdir()
        elif kind == "dangling symlink":
            p.symlink_to(folder / "nowhere.csv")
        elif kind == "symlink loop":
            p.symlink_to(p)
        else:
            os.mkfifo(p)
    return edit


def _sql(stmt: str) -> Callable[[Path], None]:
    def apply(t: Path) -> None:
        with duckdb.connect(_db(t)) as con:
            con.execute(stmt)
    return apply


def _tamper(stmt: str) -> Callable[[Path], list[str]]:
    def setup(t: Path) -> list[str]:
        _sql(stmt)(t)
        return ["verify", "--db", _db(t)]
    return setup


def _replace_view(view: str) -> Callable[[Path], list[str]]:
    """``view`` redefined by hand: its own query, wrapped (the rows a reader sees may stay the same)."""
    def setup(t: Path) -> list[str]:
        with duckdb.connect(_db(t)) as con:
            sql = con.execute("SELECT sql FROM duckdb_views() WHERE view_name = ?", [view]).fetchall()[0][0]
            body = sql.split(" AS ", 1)[1].rstrip().rstrip(";")
            con.execute(f'CREATE OR REPLACE VIEW "{view}" AS SELECT * FROM ({body}) LIMIT 1000000000')
        return ["verify", "--db", _db(t)]
    return setup


def _out_attack(kind: str) -> Callable[[Path], list[str]]:
    def setup(t: Path) -> list[str]:
        out = t / "out"
        victim = t / "victim.txt"
        victim.write_text("precious")
        if kind == "out is a file":
            out.write_text("precious")
            shutil.copy(out, victim)
        else:
            out.mkdir()
            if kind == "report.html is a directory":
                (out / "report.html").mkdir()
            elif kind == "report.html is a symlink":
                (out / "report.html").symlink_to(victim)
            elif kind == "figures is a symlink":
                (t / "elsewhere").mkdir()
                (out / "figures").symlink_to(t / "elsewhere", target_is_directory=True)
        return ["report", "--out", str(out), "--db", _db(t)]
    return setup


# ---- the corpus -----------------------------------------------------------------------------------------

def corpus() -> list[Case]:
    cases: list[Case] = []
    foreign_msgs = {"sqlite": "is an SQLite file", "duckdb": "is not a carousel database",
                    "ledger_log": "table ledger_log has column note", "empty": "is empty",
                    "text": "is corrupt or not a DuckDB file"}
    commands: dict[str, Callable[[str], list[str]]] = {
        "import": lambda db: ["ledger", "import", str(DEALS), "--db", db],
        "load-snapshot": lambda db: ["market", "load-snapshot", "--db", db],
        "refresh": lambda db: ["refresh", "--source", "snapshot", "--tickers", "AMD", "--db", db],
        "sql": lambda db: ["sql", "SELECT 1", "--db", db],
        "verify": lambda db: ["verify", "--db", db],
        "report": lambda db: ["report", "--out", str(Path(db).parent / "out"), "--db", db],
    }
    for kind, msg in foreign_msgs.items():
        for cname, cmd in commands.items():
            cases.append(Case(f"foreign {kind} file as --db: {cname}", "foreign files",
                              lambda t, k=kind, c=cmd: c(str(_foreign(k)(t))), (4,), msg, victim=True))
    cases.append(Case("--db below a regular file", "paths",
                      lambda t: [(t / "plain").write_text("x"), "ledger", "import", str(DEALS), "--db",
                                 str(t / "plain" / "c.duckdb")][1:],
                      (2,), "is not a folder"))
    for kind in ("out is a file", "report.html is a directory", "report.html is a symlink", "figures is a symlink"):
        cases.append(Case(f"--out attack: {kind}", "paths", _out_attack(kind), (2,), "--out", victim=True))
    for kind in ("directory", "dangling symlink", "symlink loop", "fifo"):
        for cname in ("load-snapshot", "validate", "refresh"):
            def setup(t: Path, k: str = kind, c: str = cname) -> list[str]:
                folder = _prices_with(_entry(k))(t)
                if c == "validate":
                    return ["market", "validate", "--prices-dir", str(folder)]
                if c == "refresh":
                    return ["refresh", "--source", "snapshot", "--tickers", "AMD", "--prices-dir", str(folder),
                            "--db", _db(t)]
                return ["market", "load-snapshot", "--prices-dir", str(folder), "--db", _db(t)]
            cases.append(Case(f"snapshot entry is a {kind}: {cname}", "snapshot folders", setup, (2,), "ZZZ.csv"))
    bad_rows = {
        "high below low": "2025-06-11,124.44,119.0,119.88,121.14,121.14,32261900",
        "close above high": "2025-06-11,124.44,124.47,119.88,125.0,125.0,32261900",
        "close below low": "2025-06-11,124.44,124.47,119.88,119.0,119.0,32261900",
        "open above high": "2025-06-11,130.0,124.47,119.88,121.14,121.14,32261900",
        "a 1900 date": AMD_LINE.replace("2025-06-11", "1900-01-01"),
        "a future date": AMD_LINE.replace("2025-06-11", "2099-06-11"),
        "negative close": "2025-06-11,124.44,124.47,119.88,-121.14,121.14,32261900",
        "NaN close": "2025-06-11,124.44,124.47,119.88,nan,121.14,32261900",
        "inf high": "2025-06-11,124.44,inf,119.88,121.14,121.14,32261900",
        "missing close": "2025-06-11,124.44,124.47,119.88,,121.14,32261900",
        "a weekend date": AMD_LINE.replace("2025-06-11", "2025-06-14"),
        "fractional volume": AMD_LINE.replace("32261900", "3226.5"),
        "a field short": AMD_LINE.rsplit(",", 1)[0],
    }
    for name, line in bad_rows.items():
        cases.append(Case(f"price file with {name}", "market input",
                          lambda t, ln=line: ["market", "load-snapshot", "--prices-dir",
                                              str(_prices_with(_amd_line(ln))(t)), "--db", _db(t)],
                          (2,), "AMD.csv:187"))

    def bidi_name(t: Path) -> list[str]:
        folder = _prices_with(lambda f: shutil.copy(f / "AMD.csv", f / "AM\u202eD.csv"))(t)
        return ["market", "load-snapshot", "--prices-dir", str(folder), "--db", _db(t)]
    cases.append(Case("price file named with U+202E", "market input", bidi_name, (2,), "is not <TICKER>.csv"))
    cases.append(Case("--tickers with U+202E", "market input",
                      lambda t: ["refresh", "--source", "snapshot", "--tickers", "AM\u202eD", "--db", _db(t)],
                      (2,), "is not a Yahoo symbol"))
    sql_attacks = {
        "INSERT": "INSERT INTO price_rows SELECT * FROM price_rows", "UPDATE": "UPDATE price_rows SET close = 0",
        "DELETE": "DELETE FROM ledger_log", "DROP": "DROP TABLE price_rows",
        "ATTACH": "ATTACH '/tmp/x.duckdb'", "COPY TO": "COPY (SELECT 1) TO 'leak.csv'",
        "read_csv": "SELECT * FROM read_csv('/etc/passwd')", "INSTALL": "INSTALL sqlite",
        "LOAD": "LOAD sqlite", "SET": "SET enable_external_access = true", "PRAGMA": "PRAGMA version",
        "two statements": "SELECT 1; DROP TABLE price_rows",
        "PIVOT then DROP": "PIVOT prices ON ticker USING count(*); DROP TABLE ledger_log",
        "markup value": "SELECT '[/x]' AS \"[bold]\"",
        "too many rows": "SELECT * FROM range(1000000000)",
        "runaway": "SELECT count(*) FROM range(1000000000000)",
        "memory hog": "SELECT list(range) FROM range(300000000)",
        "comment first": "-- a note\nSELECT 1 AS a",
    }
    for name, stmt in sql_attacks.items():
        extra = (["--timeout", "2"] if name == "runaway" else ["--memory-limit", "100MB"] if name == "memory hog"
                 else [])
        ok = name in ("markup value", "comment first")
        cases.append(Case(f"sql: {name}", "sql", lambda t, s=stmt, e=extra: ["sql", s, *e, "--db", _db(t)],
                          (0,) if ok else (2,)))
    tampers = {
        "edited close": "UPDATE price_rows SET close = close * 1.01 WHERE ticker = 'NVDA' AND date = DATE '2025-09-22'",
        "deleted price row": "DELETE FROM price_rows WHERE ticker = 'SPY' AND date = DATE '2024-03-01'",
        "edited batch": "UPDATE price_batches SET message = 'x'",
        "erased price chain": "UPDATE price_batches SET chain_hash = NULL",
        "edited share count": "UPDATE share_rows SET shares = shares + 1 WHERE ticker = 'AMD'",
        "deleted share row": "DELETE FROM share_rows WHERE ticker = 'NVDA' AND as_of_date = DATE '2024-01-28'",
        "edited share batch": "UPDATE share_batches SET message = 'x'",
        "erased share chain": "UPDATE share_batches SET chain_hash = NULL",
        "edited ledger payload": "UPDATE ledger_log SET payload = replace(payload, 'verified', 'verifiee') "
                                 "WHERE position = 40",
        "dropped ledger_log": "DROP TABLE ledger_log",
        "edited projection": "UPDATE ledger_deals SET amount_usd = 999 WHERE deal_id = (SELECT min(deal_id) "
                             "FROM ledger_deals WHERE amount_usd IS NOT NULL)",
        "nested payload": "UPDATE ledger_log SET payload = repeat('[', 200000) WHERE position = 3",
    }
    # A ledger table dropped by hand (review finding 1): the marker records that carousel's schema ran, so
    # it is tampering, named, and the projections are still compared with the log.
    edit = "UPDATE ledger_deals SET amount_usd = amount_usd * 10 WHERE deal_id = 'msft-openai-2019-07-22'"
    for table in ("ledger_head", "ledger_projection_digest", "ledger_log_keys", "ledger_companies", "ledger_deals",
                  "ledger_flows"):
        stmt = f"DROP TABLE {table}" if table == "ledger_deals" else f"{edit}; DROP TABLE {table}"
        tampers[f"dropped {table}"] = stmt
    for name, stmt in tampers.items():
        cases.append(Case(f"tamper: {name}", "verify", _tamper(stmt), (5,), "verify FAILED", tamper=True))
    cases.append(Case("tamper: dropped ledger_head, then a write command", "verify",
                      lambda t: [_sql("DROP TABLE ledger_head")(t), "ledger", "correct", "msft-openai-2019-07-22",
                                 "--set", "confidence=partial", "--db", _db(t)][1:],
                      (5,), "carousel ledger repair", tamper=True))
    # A view replaced by hand (review finding 3): every view of the composed schema, named by the catalog part.
    for view in ("flows", "deals", "companies", "ledger_events", "prices", "returns", "shares_outstanding", "car",
                 "abnormal_returns"):
        cases.append(Case(f"tamper: replaced view {view}", "verify", _replace_view(view), (5,),
                          f"catalog: view {view} differs", tamper=True))

    def flipped(t: Path) -> list[str]:
        data = bytearray((t / "c.duckdb").read_bytes())
        for off in range(12288 + 262144 + 5000, len(data), 262144):
            data[off] ^= 0xFF
        (t / "c.duckdb").write_bytes(bytes(data))
        return ["verify", "--db", _db(t)]
    cases.append(Case("tamper: byte flips in every data block", "verify", flipped, (4, 5), "", tamper=True))
    def empty_store(t: Path) -> list[str]:
        with duckdb.connect(_db(t)) as con:  # a ledger without prices, so the load writes a large batch
            con.execute("DELETE FROM price_rows")
            con.execute("DELETE FROM price_batches")
            con.execute("CHECKPOINT")
        return ["market", "load-snapshot", "--db", _db(t)]
    cases.append(Case("full disk: load-snapshot", "disk", empty_store, (4,), "the disk is full", fsize=300_000))
    cases.append(Case("full disk: creating a database", "disk",
                      lambda t: ["ledger", "import", str(DEALS), "--db", str(t / "new.duckdb")], (4,),
                      "cannot create database", fsize=50_000))
    cases.append(Case("arguments: study window ends before it starts", "arguments",
                      lambda t: ["study", "--window", "5,1", "--db", _db(t)], (2,), "ends before it starts"))
    cases.append(Case("arguments: sql unknown format", "arguments",
                      lambda t: ["sql", "SELECT 1", "--format", "xml", "--db", _db(t)], (2,), "unknown format"))
    cases.append(Case("arguments: CAROUSEL_DB empty and --db a folder", "arguments",
                      lambda t: ["sql", "SELECT 1", "--db", str(t)], (2,), ""))
    return cases


# ---- running --------------------------------------------------------------------------------------------

def _limit(nbytes: int) -> Callable[[], None]:
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))
    return apply


def _files(folder: Path) -> dict[str, bytes]:
    """Bytes of every regular file under ``folder`` except the database (symlinks not followed)."""
    out: dict[str, bytes] = {}
    for p in sorted(folder.rglob("*")):
        if p.is_symlink() or not p.is_file() or p.name == "c.duckdb" or p.suffix == ".wal":
            continue
        try:
            out[str(p.relative_to(folder))] = p.read_bytes()
        except OSError:
            continue
    return out


def _state(db: Path) -> str:
    """The database's content hash, or (for a file too damaged to read) a hash of its bytes."""
    try:
        return content_hash(db)
    except duckdb.Error:
        import hashlib

        return "bytes:" + hashlib.sha256(db.read_bytes()).hexdigest()


def run_case(case: Case, seed_db: Path, tmp: Path) -> Outcome:
    tmp.mkdir(parents=True, exist_ok=True)
    db = tmp / "c.duckdb"
    shutil.copy(seed_db, db)
    args = case.setup(tmp)
    before = _state(db)
    victims = _files(tmp) if case.victim else {}
    env = {k: v for k, v in os.environ.items() if k != "CAROUSEL_DB"}
    env["HOME"] = str(tmp)  # an extension download would show up as tmp/.duckdb
    # matplotlib's font cache is not an output of the attack: keep it out of the watched folder, and use the
    # one seed() built (a fresh cache is built on first use and, on a loaded machine, announced on stderr)
    env["MPLCONFIGDIR"] = str(seed_db.parent / "mplconfig")
    res = subprocess.run([sys.executable, "-m", "carousel", *args], capture_output=True, text=True, timeout=600,
                         env=env, cwd=tmp, preexec_fn=_limit(case.fsize) if case.fsize else None)
    traceback = "Traceback" in res.stderr or "Traceback" in res.stdout
    text = res.stderr + res.stdout
    clean = (res.returncode in case.codes and not traceback and (case.message in text)
             and (res.returncode == 0 or res.stderr.startswith(("error:", "Usage:", "waiting"))))
    changed = _state(db) != before
    if case.victim and _files(tmp) != victims:
        changed = True
    if (tmp / ".duckdb").exists() or (tmp / "leak.csv").exists():
        changed = True
    detail = f"exit {res.returncode}: {res.stderr.strip().splitlines()[-1][:160] if res.stderr.strip() else ''}"
    return Outcome(case, res.returncode, clean, traceback, changed, detail)


def interleaved(cases: list[Case]) -> list[Case]:
    """Round-robin over the groups, so that a campaign cut short has still met every kind of attack."""
    groups: dict[str, list[Case]] = {}
    for c in cases:
        groups.setdefault(c.group, []).append(c)
    out: list[Case] = []
    while any(groups.values()):
        for g in list(groups):
            if groups[g]:
                out.append(groups[g].pop(0))
    return out


def campaign(folder: Path, cases: list[Case] | None = None,
             report: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """Run ``cases`` (default: the whole corpus); ``report`` is called after each case (progress)."""
    seed_db = seed(folder)
    out = []
    for i, c in enumerate(cases or interleaved(corpus())):
        o = run_case(c, seed_db, folder / f"case{i}")
        out.append(o)
        if report is not None:
            report(o)
        shutil.rmtree(folder / f"case{i}", ignore_errors=True)
    return out
