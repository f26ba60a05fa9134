#!/usr/bin/env python3
"""Benchmark vault against restic on the same data, in the same run.

    python bench/compare.py                    # 1 GiB dataset in /tmp/vbench
    python bench/compare.py --size 128M        # quick run
    python bench/compare.py --vault-only       # vault figures only
    python bench/compare.py --skip-restic      # vault now, restic figures of an earlier run
    python bench/compare.py --json out.json    # figures as JSON too ("-" = stdout)
    python bench/compare.py --vault-ref HEAD   # vault as committed, not the working tree
    python bench/compare.py --runs 3           # three full runs, medians reported
    python bench/compare.py --storage s3       # both tools against rclone serve s3 (offsite.py)
    python bench/compare.py --storage sftp     # both tools against OpenSSH's sshd (as root)

Steps, each tool on its own fresh repository, interleaved so both see the same tree:

    init             (informational)
    backup-initial   first backup of the generated tree
    backup-nochange  the same tree again (files cache / parent snapshot)
    --- gen_dataset.py --mutate DATA --round 1, applied once, outside any timing ---
    backup-mutated   the mutated tree (~5 % of bytes changed)
    restore          `restore latest` into a separate empty directory per tool

For every step: wall time, CPU time (user+sys of the child, from wait4), peak RSS of the
child (ru_maxrss from wait4) and the repository size afterwards (sum of file sizes).
Restored trees are compared with the data (names, sizes, sha256 of every file, mtimes)
outside the timed region.

The pristine dataset is generated once into WORKDIR/dataset (reused while its marker
matches --size/--seed) and copied to WORKDIR/data with `cp -a` for every run, so a run
always starts from the unmutated tree. Page caches cannot be dropped reliably here (and
this machine evicts them on its own), so before every step, untimed, the data (before a
backup) or the tool's own repository (before a restore) is read once and `sync` runs:
each tool starts each step with a warm cache and no writeback left over from the step
before. --cold skips the reading. Cold-cache (disk-bound) runs are not measured.
Each tool runs with its defaults (vault: 2 backup threads, 4 restore threads; restic:
GOMAXPROCS = all cores).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATASET_SCRIPT = Path(__file__).resolve().parents[2] / "shared/bench/gen_dataset.py"
DEFAULT_VAULT = REPO_ROOT / ".venv/bin/vault"
PASSWORD = "bench-password"
STEPS = ["init", "backup-initial", "backup-nochange", "backup-mutated", "restore"]
TIMED_TARGET_STEPS = STEPS[1:]  # init is informational
BACKUP_STEPS = ["backup-initial", "backup-nochange", "backup-mutated"]
TOOLS = ["vault", "restic"]

# targets: vault/restic
TIME_RATIO_MAX = 1.0
SIZE_RATIO_MAX = 1.05
RSS_RATIO_MAX = 2.0


@dataclass
class StepResult:
    wall: float
    user: float
    sys: float
    maxrss_kib: int
    repo_bytes: int
    exit_code: int
    summary: dict | None = None
    #: --storage s3|sftp: requests, bytes sent and received over the network in this step
    traffic: dict | None = None

    @property
    def cpu(self) -> float:
        return self.user + self.sys


@dataclass
class ToolRun:
    name: str
    version: str
    steps: dict[str, StepResult] = field(default_factory=dict)
    verify: dict | None = None


# ----------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------

def parse_size(s: str) -> int:
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(float(s[:-1]) * mult[s[-1].upper()]) if s[-1].upper() in mult else int(s)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def tree_bytes(root: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            with contextlib.suppress(FileNotFoundError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


def measure(argv: list[str], env: dict[str, str], log_path: Path) -> StepResult:
    """Run argv to completion; wall clock, rusage of exactly that child (wait4)."""
    with open(log_path, "wb") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        _pid, status, ru = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)  # keep Popen from waiting again
    return StepResult(wall=wall, user=ru.ru_utime, sys=ru.ru_stime, maxrss_kib=ru.ru_maxrss,
                      repo_bytes=0, exit_code=proc.returncode)


def last_json(log_path: Path) -> dict | None:
    last = None
    for line in log_path.read_text(errors="replace").splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                last = json.loads(line)
            except ValueError:
                continue
    return last


def file_digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(1 << 20)
        view = memoryview(buf)
        while n := f.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()


def warm(root: Path) -> None:
    """Read every file under root once, so the step after it finds it in the page cache."""
    buf = bytearray(1 << 20)
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            with contextlib.suppress(OSError), \
                    open(os.path.join(dirpath, name), "rb", buffering=0) as f:
                while f.readinto(buf):
                    pass


def manifest(root: Path) -> dict[str, tuple[int, int, str]]:
    """relative path -> (size, mtime_ns, sha256) for every regular file."""
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            out[os.path.relpath(p, root)] = (st.st_size, st.st_mtime_ns, file_digest(p))
    return out


def verify_restore(data_manifest: dict[str, tuple[int, int, str]], restored: Path) -> dict:
    got = manifest(restored)
    missing = sorted(set(data_manifest) - set(got))
    extra = sorted(set(got) - set(data_manifest))
    content = sorted(p for p in set(got) & set(data_manifest)
                     if got[p][0] != data_manifest[p][0] or got[p][2] != data_manifest[p][2])
    mtimes = sorted(p for p in set(got) & set(data_manifest) if got[p][1] != data_manifest[p][1])
    return {
        "ok": not (missing or extra or content),
        "files": len(got), "bytes": sum(v[0] for v in got.values()),
        "missing": len(missing), "extra": len(extra), "content_mismatch": len(content),
        "mtime_mismatch": len(mtimes),
        "examples": (missing + extra + content)[:5],
    }


# ----------------------------------------------------------------------------------------
# dataset
# ----------------------------------------------------------------------------------------

def prepare_dataset(args: argparse.Namespace, work: Path) -> tuple[Path, dict]:
    pristine = work / "dataset"
    marker_path = work / "dataset.marker.json"
    want = {"size": parse_size(args.size), "seed": args.seed,
            "python": platform.python_version(),
            "script_sha256": hashlib.sha256(args.dataset_script.read_bytes()).hexdigest()}
    marker = json.loads(marker_path.read_text()) if marker_path.exists() else None
    if marker is None or any(marker.get(k) != v for k, v in want.items()) \
            or not pristine.is_dir():
        log(f"generating the {args.size} dataset (seed {args.seed}) into {pristine}")
        marker_path.unlink(missing_ok=True)
        shutil.rmtree(pristine, ignore_errors=True)
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, str(args.dataset_script), str(pristine),
                              "--size", args.size, "--seed", str(args.seed)],
                             check=True, stdout=subprocess.PIPE, text=True).stdout
        stats = json.loads(out)
        marker = dict(want, stats=stats, generated_in=round(time.perf_counter() - t0, 1))
        marker_path.write_text(json.dumps(marker, indent=1))
    else:
        log(f"reusing the dataset in {pristine}")
    return pristine, marker


def fresh_copy(pristine: Path, work: Path) -> Path:
    """WORKDIR/data: an unmutated copy of the dataset (mtimes kept)."""
    data = work / "data"
    shutil.rmtree(data, ignore_errors=True)
    subprocess.run(["cp", "-a", "--reflink=auto", str(pristine), str(data)], check=True)
    return data


def export_vault(ref: str | None, work: Path) -> tuple[Path | None, str]:
    """(PYTHONPATH for vault or None for the working tree, description of the sources)."""
    def git(*argv: str) -> str:
        return subprocess.run(["git", "-C", str(REPO_ROOT), *argv], check=True,
                              capture_output=True, text=True).stdout.strip()
    if ref is None:
        try:
            dirty = git("status", "--porcelain", "--", "src")
            return None, (f"working tree at {git('rev-parse', '--short=12', 'HEAD')}"
                          + (" with uncommitted changes in src/" if dirty else ""))
        except (OSError, subprocess.CalledProcessError):
            return None, "working tree"
    commit = git("rev-parse", "--verify", f"{ref}^{{commit}}")
    dest = work / "vault-src"
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO_ROOT), "archive", commit, "src",
                              "migrations"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest / "src", f"commit {commit[:12]} (git archive, --vault-ref {ref})"


# ----------------------------------------------------------------------------------------
# tools
# ----------------------------------------------------------------------------------------

class Tool:
    name = ""

    def __init__(self, work: Path) -> None:
        self.work = work / self.name
        shutil.rmtree(self.work, ignore_errors=True)
        self.work.mkdir(parents=True)
        self.repo = self.work / "repo"
        self.logs = self.work / "logs"
        self.logs.mkdir()

    def env(self) -> dict[str, str]:
        raise NotImplementedError

    def argv(self, step: str, data: Path, target: Path) -> list[str]:
        raise NotImplementedError

    def version(self) -> str:
        raise NotImplementedError

    def run(self, step: str, data: Path, target: Path, warm_cache: bool = True) -> StepResult:
        log_path = self.logs / f"{step}.log"
        if warm_cache and step.startswith("backup"):
            warm(data)
        elif warm_cache and step == "restore":
            warm(self.repo)
        os.sync()  # start every step with no dirty pages left by the previous one
        res = measure(self.argv(step, data, target), self.env(), log_path)
        res.repo_bytes = tree_bytes(self.repo)
        res.summary = last_json(log_path)
        if res.exit_code != 0:
            tail = log_path.read_text(errors="replace")[-2000:]
            raise SystemExit(f"{self.name} {step} failed (exit {res.exit_code}):\n{tail}")
        return res


class VaultTool(Tool):
    name = "vault"

    def __init__(self, work: Path, exe: Path, src: Path | None = None) -> None:
        super().__init__(work)
        self.cmd = [str(exe)]
        self.src = src
        if src is not None:  # an exported commit: same interpreter, its own sources
            self.cmd = [str(exe.parent / "python"), "-c",
                        "import sys; from vault.cli.main import main; "
                        "sys.argv[0] = 'vault'; sys.exit(main())"]

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("VAULT_")}
        xdg = self.work / "xdg"
        env.update(VAULT_PASSWORD=PASSWORD, VAULT_REPOSITORY=str(self.repo),
                   XDG_CONFIG_HOME=str(xdg / "config"), XDG_STATE_HOME=str(xdg / "state"),
                   XDG_CACHE_HOME=str(xdg / "cache"), XDG_DATA_HOME=str(xdg / "data"))
        if self.src is not None:
            env["PYTHONPATH"] = str(self.src)
        return env

    def argv(self, step: str, data: Path, target: Path) -> list[str]:
        base = [*self.cmd, "--json"]
        if step == "init":
            return [*base, "init"]
        if step.startswith("backup"):
            return [*base, "backup", str(data)]
        return [*base, "restore", "latest", "--target", str(target)]

    def version(self) -> str:
        out = subprocess.run([*self.cmd, "--version"], capture_output=True, text=True,
                             env=self.env()).stdout.strip()
        return out.rsplit(" ", 1)[-1]  # "vault, version 0.1.0"


class ResticTool(Tool):
    name = "restic"

    def __init__(self, work: Path, exe: str) -> None:
        super().__init__(work)
        self.exe = exe

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RESTIC_")}
        env["RESTIC_PASSWORD"] = PASSWORD
        return env

    def argv(self, step: str, data: Path, target: Path) -> list[str]:
        base = [self.exe, "-r", str(self.repo), "--cache-dir", str(self.work / "cache"),
                "--json"]
        if step == "init":
            return [*base, "init"]
        if step.startswith("backup"):
            return [*base, "backup", str(data)]
        return [*base, "restore", "latest", "--target", str(target)]

    def version(self) -> str:
        out = subprocess.run([self.exe, "version"], capture_output=True,
                             text=True).stdout.split()
        # "restic 0.14.0 compiled with go1.19.8 on linux/amd64"
        return f"{out[1]} ({out[4]})" if len(out) > 4 else " ".join(out)


# ----------------------------------------------------------------------------------------
# reporting
# ----------------------------------------------------------------------------------------

def fmt_s(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}s"


def fmt_mib(kib: int | None) -> str:
    return "-" if kib is None else f"{kib / 1024:.0f} MiB"


def fmt_size(n: int | None) -> str:
    return "-" if n is None else f"{n / (1 << 20):.1f} MiB"


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def fmt_ratio(r: float | None) -> str:
    return "-" if r is None else f"{r:.2f}x"


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return " | ".join(c.ljust(w) if i == 0 else c.rjust(w)
                          for i, (c, w) in enumerate(zip(cells, widths, strict=True)))

    sep = "-+-".join("-" * w for w in widths)
    return "\n".join([line(headers), sep] + [line(r) for r in rows])


def report(runs: dict[str, ToolRun], restic_note: str | None) -> tuple[str, list[dict]]:
    v = runs.get("vault")
    r = runs.get("restic")

    def step(run: ToolRun | None, name: str) -> StepResult | None:
        return run.steps.get(name) if run else None

    out: list[str] = []
    rows = []
    for name in STEPS:
        vs, rs = step(v, name), step(r, name)
        rows.append([
            name + (" (info)" if name not in TIMED_TARGET_STEPS else ""),
            fmt_s(vs.wall if vs else None), fmt_s(rs.wall if rs else None),
            fmt_ratio(ratio(vs and vs.wall, rs and rs.wall)),
            fmt_s(vs.cpu if vs else None), fmt_s(rs.cpu if rs else None),
            fmt_ratio(ratio(vs and vs.cpu, rs and rs.cpu)),
            fmt_mib(vs.maxrss_kib if vs else None), fmt_mib(rs.maxrss_kib if rs else None),
            fmt_ratio(ratio(vs and vs.maxrss_kib, rs and rs.maxrss_kib)),
        ])
    out.append(table(["step", "vault wall", "restic wall", "wall v/r", "vault cpu",
                      "restic cpu", "cpu v/r", "vault rss", "restic rss", "rss v/r"], rows))
    out.append("")
    rows = []
    for name in BACKUP_STEPS:
        vs, rs = step(v, name), step(r, name)
        rows.append([f"after {name}", fmt_size(vs.repo_bytes if vs else None),
                     fmt_size(rs.repo_bytes if rs else None),
                     fmt_ratio(ratio(vs and vs.repo_bytes, rs and rs.repo_bytes))])
    out.append(table(["repository size", "vault", "restic", "size v/r"], rows))

    targets: list[dict] = []
    if v and r:
        for name in TIMED_TARGET_STEPS:
            vs, rs = v.steps[name], r.steps[name]
            targets.append({"target": f"{name}: wall time <= {TIME_RATIO_MAX:.2f}x restic",
                            "ratio": ratio(vs.wall, rs.wall), "limit": TIME_RATIO_MAX})
        for name in BACKUP_STEPS:
            vs, rs = v.steps[name], r.steps[name]
            targets.append({"target": f"{name}: repo size <= {SIZE_RATIO_MAX:.2f}x restic",
                            "ratio": ratio(vs.repo_bytes, rs.repo_bytes),
                            "limit": SIZE_RATIO_MAX})
        for name in TIMED_TARGET_STEPS:
            vs, rs = v.steps[name], r.steps[name]
            targets.append({"target": f"{name}: peak RSS <= {RSS_RATIO_MAX:.2f}x restic",
                            "ratio": ratio(vs.maxrss_kib, rs.maxrss_kib),
                            "limit": RSS_RATIO_MAX})
        for t in targets:
            t["pass"] = t["ratio"] is not None and t["ratio"] <= t["limit"]
        out.append("")
        out.append("targets (vault / restic):")
        width = max(len(t["target"]) for t in targets)
        for t in targets:
            out.append(f"  {'PASS' if t['pass'] else 'MISS'}  {t['target'].ljust(width)}  "
                       f"{fmt_ratio(t['ratio'])}")
        passed = sum(t["pass"] for t in targets)
        out.append(f"  {passed}/{len(targets)} targets met")
    out.append("")
    for run in runs.values():
        if run.verify:
            vr = run.verify
            state = "OK" if vr["ok"] else "MISMATCH"
            out.append(f"restore check {run.name}: {state}: {vr['files']} files, "
                       f"{vr['bytes'] / (1 << 20):.1f} MiB, missing {vr['missing']}, "
                       f"extra {vr['extra']}, content {vr['content_mismatch']}, "
                       f"mtime {vr['mtime_mismatch']}"
                       + (f" e.g. {vr['examples']}" if vr["examples"] else ""))
    if restic_note:
        out.append(restic_note)
    return "\n".join(out), targets


# ----------------------------------------------------------------------------------------
# main
# ----------------------------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="1G", help="dataset size, e.g. 1G, 128M (default 1G)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/vbench"))
    ap.add_argument("--keep", action="store_true",
                    help="keep repositories, restores and mutated data afterwards")
    ap.add_argument("--vault-only", action="store_true", help="run vault only")
    ap.add_argument("--skip-restic", action="store_true",
                    help="run vault only; compare with restic figures saved by an earlier "
                         "run on the same dataset (WORKDIR/restic-results.json), if any")
    ap.add_argument("--dataset-script", type=Path, default=DEFAULT_DATASET_SCRIPT)
    ap.add_argument("--vault", type=Path, default=DEFAULT_VAULT, help="vault executable")
    ap.add_argument("--restic", default=shutil.which("restic") or "/usr/bin/restic")
    ap.add_argument("--vault-ref", metavar="GIT_REF",
                    help="benchmark the vault sources of this commit (exported with git "
                         "archive into WORKDIR/vault-src, run with the venv's interpreter) "
                         "instead of the working tree, which others may be editing")
    ap.add_argument("--runs", type=int, default=1,
                    help="repeat the whole sequence N times (fresh repositories and data each "
                         "time, tool order alternating) and report medians")
    ap.add_argument("--cold", action="store_true",
                    help="do not read the data (before backups) or the repository (before "
                         "restores) just before each step; the cache is then whatever the "
                         "machine left in it")
    ap.add_argument("--no-verify", action="store_true", help="skip the restore comparison")
    ap.add_argument("--json", nargs="?", const="-", metavar="FILE",
                    help="also write the figures as JSON to FILE (- or no value: stdout)")
    ap.add_argument("--storage", choices=["local", "s3", "sftp"], default="local",
                    help="where both tools keep their repositories: local directories "
                         "(default), or one server started for the run on loopback "
                         "(s3: rclone serve s3; sftp: OpenSSH sshd), see bench/offsite.py")
    ap.add_argument("--no-copy", action="store_true",
                    help="--storage s3: skip the `vault copy` vs raw PUT measurement")
    args = ap.parse_args()
    if args.storage != "local":
        import offsite

        return offsite.main(args)

    work = args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    pristine, marker = prepare_dataset(args, work)
    run_restic = not (args.vault_only or args.skip_restic)
    vault_src, vault_rev = export_vault(args.vault_ref, work)

    all_runs: list[dict[str, ToolRun]] = []
    mutation: dict = {}
    data_bytes = 0
    for i in range(args.runs):
        if args.runs > 1:
            log(f"run {i + 1} of {args.runs}")
        data = fresh_copy(pristine, work)
        data_bytes = tree_bytes(data)
        tools: list[Tool] = [VaultTool(work, args.vault, vault_src)]
        if run_restic:
            tools.append(ResticTool(work, args.restic))
        if i % 2:  # alternate which tool goes first, so neither always runs second
            tools.reverse()
        runs, mutation = one_run(args, tools, data, work)
        all_runs.append(runs)
        if not args.keep or i + 1 < args.runs:
            for t in tools:
                shutil.rmtree(t.work, ignore_errors=True)
                shutil.rmtree(work / f"restore-{t.name}", ignore_errors=True)
            shutil.rmtree(data, ignore_errors=True)
    runs = {name: median_run([r[name] for r in all_runs]) for name in all_runs[0]}
    runs = {name: runs[name] for name in TOOLS if name in runs}

    restic_note = None
    dataset_key = {k: marker[k] for k in ("size", "seed", "script_sha256")}
    if run_restic:
        (work / "restic-results.json").write_text(json.dumps({
            "dataset": dataset_key, "runs": args.runs,
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "run": asdict(runs["restic"])}, indent=1))
    elif args.skip_restic:
        saved = work / "restic-results.json"
        if saved.exists():
            doc = json.loads(saved.read_text())
            if doc["dataset"] == dataset_key:
                rr = doc["run"]
                runs["restic"] = ToolRun(rr["name"], rr["version"],
                                         {k: StepResult(**s) for k, s in rr["steps"].items()})
                restic_note = (f"restic figures: saved by the run of {doc['when']} "
                               f"(median of {doc.get('runs', 1)}; not re-run)")
        if restic_note is None:
            restic_note = "restic figures: none saved for this dataset (run without --skip-restic)"

    text, targets = report(runs, restic_note)
    header = [
        f"dataset: {args.size} seed {args.seed}: {data_bytes / (1 << 20):.1f} MiB in "
        f"{marker['stats']['total']['files']} files; mutation changed "
        f"{mutation['changed_fraction'] * 100:.1f} % ({mutation['new_files']} new, "
        f"{mutation['edited_files']} edited, {mutation['appended_files']} appended, "
        f"{mutation['deleted_files']} deleted files)",
        f"machine: {os.cpu_count()} cpus, Python {platform.python_version()}, "
        + "; ".join(f"{r.name} {r.version}" for r in runs.values()),
        f"vault sources: {vault_rev}",
        f"figures: median of {args.runs} run(s)" if args.runs > 1 else "figures: one run",
        "",
    ]
    print("\n".join(header) + text)
    if args.runs > 1:
        print("\nwall time of each run (s):")
        for step_name in STEPS:
            cells = []
            for name in runs:
                if name in all_runs[0]:
                    walls = ", ".join(f"{r[name].steps[step_name].wall:.2f}" for r in all_runs)
                    cells.append(f"{name} {walls}")
            print(f"  {step_name:16} " + " | ".join(cells))

    if args.json:
        def tool_doc(r: ToolRun) -> dict:
            return {"version": r.version, "verify": r.verify,
                    "steps": {k: dict(asdict(s), cpu=s.cpu) for k, s in r.steps.items()}}
        doc = {
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "size": args.size, "seed": args.seed, "data_bytes": data_bytes,
            "dataset": marker.get("stats"), "mutation": mutation, "cpus": os.cpu_count(),
            "python": platform.python_version(), "vault_sources": vault_rev,
            "runs": args.runs,
            "median": {n: tool_doc(r) for n, r in runs.items()},
            "each_run": [{n: tool_doc(r) for n, r in one.items()} for one in all_runs],
            "targets": targets,
        }
        if args.json == "-":
            print(json.dumps(doc, indent=1))
        else:
            Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")

    failed = sorted({n for one in all_runs for n, r in one.items()
                     if r.verify and not r.verify["ok"]})
    if failed:
        print(f"restore check failed for: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def one_run(args: argparse.Namespace, tools: list[Tool], data: Path,
            work: Path) -> tuple[dict[str, ToolRun], dict]:
    runs = {t.name: ToolRun(t.name, t.version()) for t in tools}
    targets_dir = {t.name: work / f"restore-{t.name}" for t in tools}
    for d in targets_dir.values():
        shutil.rmtree(d, ignore_errors=True)

    def step(name: str) -> None:
        for t in tools:
            log(f"{t.name}: {name}")
            res = t.run(name, data, targets_dir[t.name], warm_cache=not args.cold)
            runs[t.name].steps[name] = res
            log(f"{t.name}: {name}: {res.wall:.2f}s wall, {res.cpu:.2f}s cpu, "
                f"{res.maxrss_kib / 1024:.0f} MiB rss, repo {res.repo_bytes / (1 << 20):.1f} MiB")

    step("init")
    step("backup-initial")
    step("backup-nochange")
    log("mutating the data (once, for every tool)")
    mut = subprocess.run([sys.executable, str(args.dataset_script), "--mutate", str(data),
                          "--round", "1", "--seed", str(args.seed)],
                         check=True, stdout=subprocess.PIPE, text=True).stdout
    step("backup-mutated")
    step("restore")

    if not args.no_verify:
        log("comparing restored trees with the data")
        want = manifest(data)
        for t in tools:
            # both tools restore the absolute source path below the target
            runs[t.name].verify = verify_restore(want, targets_dir[t.name] / str(data).lstrip("/"))
    return runs, json.loads(mut)


def median_run(runs: list[ToolRun]) -> ToolRun:
    """Each figure of each step: the median over the runs."""
    import statistics

    first = runs[0]
    steps = {}
    for name in first.steps:
        rs = [r.steps[name] for r in runs]
        steps[name] = StepResult(
            wall=statistics.median(r.wall for r in rs),
            user=statistics.median(r.user for r in rs),
            sys=statistics.median(r.sys for r in rs),
            maxrss_kib=int(statistics.median(r.maxrss_kib for r in rs)),
            repo_bytes=int(statistics.median(r.repo_bytes for r in rs)),
            exit_code=max(r.exit_code for r in rs), summary=rs[-1].summary,
            traffic={k: int(statistics.median(r.traffic[k] for r in rs))
                     for k, v in rs[0].traffic.items() if isinstance(v, int)}
            if rs[0].traffic else None)
    bad = [r.verify for r in runs if r.verify and not r.verify["ok"]]
    verify = bad[0] if bad else runs[-1].verify
    return ToolRun(first.name, first.version, steps, verify)


if __name__ == "__main__":
    sys.modules.setdefault("compare", sys.modules[__name__])  # for offsite's import
    sys.exit(main())
