"""`compare.py --storage s3|sftp`: vault and restic against the same off-site server.

One server per run, started here with the tests' own helpers (tests/storage_servers.py):

- s3: `rclone serve s3` on 127.0.0.1 over a temporary directory, seen through the tests'
  counting proxy (tests/counting_s3_proxy.py): every request of either tool goes through
  it, so requests and body bytes are counted per step. The proxy is a Python process
  thread that reads each body whole and opens one upstream connection per request: both
  tools pay that toll, and it is part of their wall times.
- sftp: OpenSSH's sshd with a temporary host key and authorized key (run as root), seen
  through a TCP relay here that counts the bytes crossing the socket in each direction
  (SSH-encrypted bytes, i.e. what a network would carry) and the connections made.

Steps per tool (interleaved, each tool on its own repository on that server):
init (info), backup-initial, backup-nochange, restore (of the initial snapshot). No
mutation step: the pristine dataset is backed up in place.

With --storage s3 (unless --no-copy) also: `vault copy` of the 1 GiB snapshot from a local
repository (made untimed) into an empty repository on the same rclone server, directly
(no proxy), against the server's raw PUT throughput, measured with obstore (vault's own
client library) putting 16 MiB objects of random bytes from 2, 4 and 8 threads at once:
the best of those is "raw".
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import socket
import socketserver
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import compare as base

sys.path.insert(0, str(base.REPO_ROOT / "tests"))
from copy_helpers import Repo, write_config
from counting_s3_proxy import Traffic, counting_proxy
from storage_servers import BUCKET, rclone_s3, sshd, sshd_missing

REMOTE_STEPS = ["init", "backup-initial", "backup-nochange", "restore"]
TIMED_STEPS = REMOTE_STEPS[1:]
NOCHANGE_SENT_MAX = 0.01  # of the data's bytes
COPY_OF_RAW_MIN = 0.80
RAW_OBJECT = 16 << 20  # vault's default pack size
RAW_TOTAL = 512 << 20
RAW_STREAMS = (2, 4, 8)


# ----------------------------------------------------------------------------------------
# counting what crosses the network
# ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Counted:
    requests: int  # S3: HTTP requests; SFTP: TCP connections
    sent: int  # client -> server bytes (S3: request bodies; SFTP: the SSH stream)
    received: int  # server -> client bytes
    #: S3: "METHOD folder" -> [requests, bytes sent, bytes received], over the whole run
    kinds: dict[str, list[int]] | None = None


class CountingRelay:
    """A TCP relay on 127.0.0.1 that forwards to `port` and counts bytes each way."""

    def __init__(self, port: int) -> None:
        self.upstream = port
        self.lock = threading.Lock()
        self.connections = self.sent = self.received = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.upstream))
            for sock in (client, server):  # forward each write at once, as a router would
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                self.connections += 1
            for src, dst, up in ((client, server, True), (server, client, False)):
                threading.Thread(target=self._pump, args=(src, dst, up), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, up: bool) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(1 << 17):
                dst.sendall(data)
                with self.lock:
                    if up:
                        self.sent += len(data)
                    else:
                        self.received += len(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def counted(self) -> Counted:
        with self.lock:
            return Counted(self.connections, self.sent, self.received)

    def close(self) -> None:
        self.listener.close()


def s3_counted(traffic: Traffic) -> Counted:
    requests = traffic.snapshot()
    kinds: dict[str, list[int]] = {}
    for r in requests:
        folder = r.path.split("/")[1] if "/" in r.path else r.path
        entry = kinds.setdefault(f"{r.method}{' LIST' if r.listing else ''} {folder}", [0, 0, 0])
        entry[0] += 1
        entry[1] += r.sent
        entry[2] += r.received
    return Counted(len(requests), sum(r.sent for r in requests),
                   sum(r.received for r in requests), kinds)


def kinds_between(before: Counted, after: Counted) -> str:
    """What a step asked for, per kind: 'GET data: 12 x 3.1 MiB recv, ...'."""
    if after.kinds is None:
        return ""
    old = before.kinds or {}
    parts = []
    for kind, (n, sent, recv) in sorted(after.kinds.items()):
        n0, s0, r0 = old.get(kind, [0, 0, 0])
        if n - n0:
            parts.append(f"{kind}: {n - n0} x (sent {(sent - s0) / 2**20:.1f} MiB, "
                         f"recv {(recv - r0) / 2**20:.1f} MiB)")
    return ", ".join(parts)


# ----------------------------------------------------------------------------------------
# the server, and how each tool reaches it
# ----------------------------------------------------------------------------------------

@dataclass
class Server:
    kind: str  # "s3" | "sftp"
    root: Path  # where repositories live on disk (S3: the bucket's directory)
    counted: Callable[[], Counted]
    # s3
    endpoint: str = ""  # the counting proxy
    direct_endpoint: str = ""  # rclone itself
    access_key: str = ""
    secret_key: str = ""
    # sftp
    port: int = 0  # the relay's
    ssh_dir: Path | None = None  # holds id_ed25519 and known_hosts (for the relay's port)

    def aws_env(self, endpoint: str) -> dict[str, str]:
        return {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": self.access_key,
                "AWS_SECRET_ACCESS_KEY": self.secret_key, "AWS_REGION": "us-east-1"}


@contextlib.contextmanager
def start_server(kind: str, work: Path) -> Iterator[Server]:
    state = work / f"server-{kind}"
    shutil.rmtree(state, ignore_errors=True)
    state.mkdir(parents=True)
    try:
        with _serve(kind, state) as server:
            yield server
    finally:  # rclone's write cache keeps a copy of everything uploaded
        shutil.rmtree(state, ignore_errors=True)


@contextlib.contextmanager
def _serve(kind: str, state: Path) -> Iterator[Server]:
    if kind == "s3":
        # The proxy writes a reply's headers and body separately: with Nagle's algorithm
        # on, a small body then waits for the client's delayed ACK (up to 40 ms per
        # request), a toll that grows with the number of requests, not the bytes.
        socketserver.StreamRequestHandler.disable_nagle_algorithm = True
        with rclone_s3(state / "served", state) as s3, \
                counting_proxy(s3.endpoint) as (endpoint, traffic):
            yield Server("s3", state / "served" / BUCKET, lambda: s3_counted(traffic),
                         endpoint=endpoint, direct_endpoint=s3.endpoint,
                         access_key=s3.access_key, secret_key=s3.secret_key)
        return
    missing = sshd_missing()
    if missing:
        raise SystemExit(missing)
    with sshd(state / "sshd") as ssh:
        relay = CountingRelay(ssh.port)
        try:
            ssh_dir = ssh.home / ".ssh"
            key = ssh.host_key_line.split(" ", 1)[1]
            (ssh_dir / "known_hosts").write_text(f"[127.0.0.1]:{relay.port} {key}\n")
            (state / "repos").mkdir()
            yield Server("sftp", state / "repos", relay.counted, port=relay.port,
                         ssh_dir=ssh_dir)
        finally:
            relay.close()


class RemoteVault(base.VaultTool):
    def __init__(self, work: Path, exe: Path, src: Path | None, server: Server,
                 tag: str) -> None:
        super().__init__(work, exe, src)
        self.server = server
        self.repo = server.root / f"vault-{tag}"
        if server.kind == "s3":
            url, table = f"s3://{BUCKET}/vault-{tag}", ""
        else:
            assert server.ssh_dir is not None
            url = f"sftp://root@127.0.0.1:{server.port}{self.repo}"
            table = (f'[repository.sftp]\nknown_hosts = "{server.ssh_dir / "known_hosts"}"\n'
                     f'identity_file = "{server.ssh_dir / "id_ed25519"}"\n')
        config = self.work / "xdg" / "config" / "vault" / "vault.toml"
        config.parent.mkdir(parents=True)
        config.write_text(f'[repository]\nurl = "{url}"\n{table}')

    def env(self) -> dict[str, str]:
        env = super().env()
        del env["VAULT_REPOSITORY"]  # the repository is the config's
        env.pop("SSH_AUTH_SOCK", None)
        if self.server.kind == "s3":
            env.update(self.server.aws_env(self.server.endpoint))
        return env


class RemoteRestic(base.ResticTool):
    def __init__(self, work: Path, exe: str, server: Server, tag: str) -> None:
        super().__init__(work, exe)
        self.server = server
        self.repo = server.root / f"restic-{tag}"

    def env(self) -> dict[str, str]:
        env = super().env()
        env.pop("SSH_AUTH_SOCK", None)
        if self.server.kind == "s3":
            env.update(self.server.aws_env(self.server.endpoint))
        return env

    def argv(self, step: str, data: Path, target: Path) -> list[str]:
        argv = super().argv(step, data, target)
        at = argv.index("-r") + 1
        if self.server.kind == "s3":
            argv[at] = f"s3:{self.server.endpoint}/{BUCKET}/{self.repo.name}"
        else:
            assert self.server.ssh_dir is not None
            argv[at] = f"sftp:root@127.0.0.1:{self.repo}"
            ssh = (f"ssh -p {self.server.port} -i {self.server.ssh_dir / 'id_ed25519'} "
                   f"-o UserKnownHostsFile={self.server.ssh_dir / 'known_hosts'} "
                   "-o StrictHostKeyChecking=yes -o BatchMode=yes root@127.0.0.1 -s sftp")
            argv[at + 1:at + 1] = ["-o", f"sftp.command={ssh}"]
        return argv


def run_counted(tool: base.Tool, server: Server, step: str, data: Path,
                target: Path, warm_cache: bool) -> base.StepResult:
    before = server.counted()
    res = tool.run(step, data, target, warm_cache=warm_cache)
    after = server.counted()
    res.traffic = {"requests": after.requests - before.requests,
                   "sent": after.sent - before.sent,
                   "received": after.received - before.received,
                   "kinds": kinds_between(before, after)}
    return res


# ----------------------------------------------------------------------------------------
# vault copy against raw PUT throughput
# ----------------------------------------------------------------------------------------

def raw_put_throughput(server: Server, streams: int) -> float:
    """Bytes/s putting RAW_TOTAL bytes as RAW_OBJECT-sized objects of random bytes with
    obstore from `streams` threads at once, straight to the server (no proxy)."""
    from obstore.store import S3Store

    from vault.storage.cloud import client_options

    prefix = f"raw-{streams}-{secrets.token_hex(3)}"
    store = S3Store(BUCKET, prefix=prefix, endpoint=server.direct_endpoint,
                    access_key_id=server.access_key, secret_access_key=server.secret_key,
                    region="us-east-1", virtual_hosted_style_request=False,
                    client_options=client_options(server.direct_endpoint))
    payloads = [os.urandom(RAW_OBJECT) for _ in range(streams)]
    count = RAW_TOTAL // RAW_OBJECT
    t0 = time.perf_counter()
    with ThreadPoolExecutor(streams) as pool:
        list(pool.map(lambda i: store.put(f"obj-{i}", payloads[i % streams]), range(count)))
    elapsed = time.perf_counter() - t0
    shutil.rmtree(server.root / prefix, ignore_errors=True)
    return count * RAW_OBJECT / elapsed


def vault_copy(args: argparse.Namespace, server: Server, work: Path, data: Path,
               vault_src: Path | None, wrap: tuple[str, ...] = ()) -> dict:
    """An untimed local backup of `data`, then a timed `vault copy` of it into an empty
    repository on the rclone server (direct). Returns its figures. `wrap` goes before
    the copy's command line (a profiler: `py-spy record -o FILE --`)."""
    tool = base.VaultTool(work / "copy", args.vault, vault_src)
    tag = secrets.token_hex(3)
    config = write_config(tool.work, [
        Repo("local", str(tool.repo), base.PASSWORD),
        Repo("bucket", f"s3://{BUCKET}/copy-{tag}", "bench-copy-password")])
    env = {k: v for k, v in tool.env().items()
           if k not in ("VAULT_PASSWORD", "VAULT_REPOSITORY")}
    env.update(server.aws_env(server.direct_endpoint))
    cmd = [*tool.cmd, "--json", "--config", str(config)]
    for argv, name in (([*cmd, "-r", "local", "init"], "init-local"),
                       ([*cmd, "-r", "local", "backup", str(data)], "backup-local"),
                       ([*cmd, "-r", "bucket", "init", "--copy-chunker-params-from", "local"],
                        "init-bucket")):
        res = base.measure(argv, env, tool.logs / f"{name}.log")
        if res.exit_code:
            raise SystemExit(f"copy setup {name} failed: "
                             f"{(tool.logs / f'{name}.log').read_text()[-2000:]}")
    base.warm(tool.repo)
    os.sync()
    log_path = tool.logs / "copy.log"
    res = base.measure([*wrap, *cmd, "-r", "local", "copy", "latest", "--to", "bucket"], env,
                       log_path)
    if res.exit_code:
        raise SystemExit(f"vault copy failed: {log_path.read_text()[-2000:]}")
    stored = base.tree_bytes(server.root / f"copy-{tag}")
    summary = base.last_json(log_path) or {}
    shutil.rmtree(server.root / f"copy-{tag}", ignore_errors=True)
    shutil.rmtree(work / "copy", ignore_errors=True)
    return {"wall": res.wall, "cpu": res.cpu, "maxrss_kib": res.maxrss_kib,
            "stored_bytes": stored, "throughput": stored / res.wall,
            "summary": {k: summary.get(k) for k in ("bytes_read", "bytes_stored")}}


# ----------------------------------------------------------------------------------------
# the run
# ----------------------------------------------------------------------------------------

def one_run(args: argparse.Namespace, server: Server, data: Path, work: Path,
            vault_src: Path | None, index: int) -> dict[str, base.ToolRun]:
    tag = f"{index}-{secrets.token_hex(3)}"
    tools: list[base.Tool] = [RemoteVault(work, args.vault, vault_src, server, tag),
                              RemoteRestic(work, args.restic, server, tag)]
    if index % 2:
        tools.reverse()
    runs = {t.name: base.ToolRun(t.name, t.version()) for t in tools}
    targets = {t.name: work / f"restore-{t.name}" for t in tools}
    for d in targets.values():
        shutil.rmtree(d, ignore_errors=True)
    for step in REMOTE_STEPS:
        for t in tools:
            base.log(f"{t.name}: {step} ({server.kind}) load {os.getloadavg()[0]:.2f}")
            res = run_counted(t, server, step, data, targets[t.name], not args.cold)
            runs[t.name].steps[step] = res
            tr = res.traffic or {}
            base.log(f"{t.name}: {step}: {res.wall:.2f}s wall, {res.cpu:.2f}s cpu, "
                     f"{tr.get('requests')} requests, sent {tr.get('sent', 0) / 2**20:.1f} "
                     f"MiB, received {tr.get('received', 0) / 2**20:.1f} MiB"
                     + (f"; {tr['kinds']}" if tr.get("kinds") else ""))
    if not args.no_verify:
        want = base.manifest(data)
        for t in tools:
            runs[t.name].verify = base.verify_restore(
                want, targets[t.name] / str(data).lstrip("/"))
    for t in tools:
        shutil.rmtree(t.repo, ignore_errors=True)
        shutil.rmtree(targets[t.name], ignore_errors=True)
        if not args.keep:
            shutil.rmtree(t.work, ignore_errors=True)
    return {name: runs[name] for name in base.TOOLS}


def targets_of(v: base.ToolRun, r: base.ToolRun, data_bytes: int,
               copy: dict | None) -> list[dict]:
    """The issue's targets, each with its figure, its limit and whether it passed."""
    targets = [{"target": f"{n}: wall time <= {base.TIME_RATIO_MAX:.2f}x restic",
                "ratio": base.ratio(v.steps[n].wall, r.steps[n].wall),
                "limit": base.TIME_RATIO_MAX} for n in TIMED_STEPS]
    sent = (v.steps["backup-nochange"].traffic or {}).get("sent", 0)
    targets.append({"target": f"backup-nochange: vault sends <= {NOCHANGE_SENT_MAX:.0%} "
                              "of the data", "ratio": sent / data_bytes,
                    "limit": NOCHANGE_SENT_MAX})
    if copy:
        targets.append({"target": f"vault copy: >= {COPY_OF_RAW_MIN:.0%} of raw PUT "
                                  "throughput (best of the stream counts)",
                        "ratio": copy["throughput"] / max(copy["raw"].values()),
                        "limit": COPY_OF_RAW_MIN, "at_least": True})
    for t in targets:
        t["pass"] = t["ratio"] is not None and (
            t["ratio"] >= t["limit"] if t.get("at_least") else t["ratio"] <= t["limit"])
    return targets


def report(runs: dict[str, base.ToolRun], data_bytes: int, copy: dict | None) -> \
        tuple[str, list[dict]]:
    v, r = runs["vault"], runs["restic"]
    rows = []
    for name in REMOTE_STEPS:
        vs, rs = v.steps[name], r.steps[name]
        vt, rt = vs.traffic or {}, rs.traffic or {}
        rows.append([name + ("" if name in TIMED_STEPS else " (info)"),
                     base.fmt_s(vs.wall), base.fmt_s(rs.wall),
                     base.fmt_ratio(base.ratio(vs.wall, rs.wall)),
                     base.fmt_s(vs.cpu), base.fmt_s(rs.cpu),
                     str(vt.get("requests")), str(rt.get("requests")),
                     base.fmt_size(vt.get("sent")), base.fmt_size(rt.get("sent")),
                     base.fmt_size(vt.get("received")), base.fmt_size(rt.get("received"))])
    out = [base.table(["step", "vault wall", "restic wall", "wall v/r", "vault cpu",
                       "restic cpu", "vault req", "restic req", "vault sent", "restic sent",
                       "vault recv", "restic recv"], rows), ""]
    targets = targets_of(v, r, data_bytes, copy)
    if copy:
        out.append(f"vault copy local -> S3 (direct): {copy['wall']:.2f}s wall, "
                   f"{copy['cpu']:.2f}s cpu, {copy['stored_bytes'] / 2**20:.1f} MiB stored, "
                   f"{copy['throughput'] / 2**20:.1f} MiB/s; raw PUT "
                   + ", ".join(f"{k} streams {b / 2**20:.1f} MiB/s"
                               for k, b in copy["raw"].items()))
    out.append("targets:")
    width = max(len(t["target"]) for t in targets)
    for t in targets:
        shown = f"{t['ratio']:.3%}" if "%" in t["target"] else base.fmt_ratio(t["ratio"])
        out.append(f"  {'PASS' if t['pass'] else 'MISS'}  {t['target'].ljust(width)}  {shown}")
    for run in runs.values():
        if run.verify:
            vr = run.verify
            out.append(f"restore check {run.name}: {'OK' if vr['ok'] else 'MISMATCH'}: "
                       f"{vr['files']} files, {vr['bytes'] / 2**20:.1f} MiB, content "
                       f"{vr['content_mismatch']}, missing {vr['missing']}")
    return "\n".join(out), targets


@dataclass
class Measured:
    all_runs: list[dict[str, base.ToolRun]]
    copies: list[dict]
    loads: list[tuple[float, float, float]]


def measure_runs(args: argparse.Namespace, work: Path, data: Path,
                 vault_src: Path | None) -> Measured:
    """--runs comparisons (and, for S3, raw PUT + copy after each) against one server."""
    got = Measured([], [], [os.getloadavg()])
    with start_server(args.storage, work) as server:
        for i in range(args.runs):
            base.log(f"run {i + 1} of {args.runs} ({args.storage})")
            got.all_runs.append(one_run(args, server, data, work, vault_src, i))
            got.loads.append(os.getloadavg())
            if args.storage == "s3" and not args.no_copy:
                raw = {n: raw_put_throughput(server, n) for n in RAW_STREAMS}
                base.log("raw PUT " + ", ".join(f"{n}: {b / 2**20:.1f} MiB/s"
                                                for n, b in raw.items()))
                got.copies.append(dict(vault_copy(args, server, work, data, vault_src),
                                       raw=raw))
                base.log(f"vault copy: {got.copies[-1]['wall']:.2f}s, "
                         f"{got.copies[-1]['throughput'] / 2**20:.1f} MiB/s")
                got.loads.append(os.getloadavg())
    return got


def median_copy(copies: list[dict]) -> dict | None:
    """The copy run of median wall time, with the median raw PUT figures of all runs."""
    if not copies:
        return None
    middle = statistics.median(c["wall"] for c in copies)
    copy = dict(min(copies, key=lambda c: abs(c["wall"] - middle)))
    copy["raw"] = {n: statistics.median(c["raw"][n] for c in copies) for n in RAW_STREAMS}
    return copy


def print_figures(got: Measured, text: str, header: list[str]) -> None:
    print("\n".join(header) + text)
    print("\nwall time of each run (s):")
    for step in REMOTE_STEPS:
        print(f"  {step:16} " + " | ".join(
            f"{n} " + ", ".join(f"{r[n].steps[step].wall:.2f}" for r in got.all_runs)
            for n in base.TOOLS))
    if got.copies:
        print("  copy             vault " + ", ".join(f"{c['wall']:.2f}" for c in got.copies))


def json_doc(args: argparse.Namespace, got: Measured, runs: dict[str, base.ToolRun],
             extra: dict) -> str:
    def steps(run: base.ToolRun) -> dict:  # without the tools' summaries (megabytes)
        return {k: {f: v for f, v in vars(s).items() if f != "summary"}
                for k, s in run.steps.items()}
    doc = {"storage": args.storage, "runs": args.runs, "loadavg": got.loads,
           "copy": got.copies, **extra,
           "median": {n: steps(r) for n, r in runs.items()},
           "each_run": [{n: steps(r) for n, r in one.items()} for one in got.all_runs]}
    return json.dumps(doc, indent=1, default=str)


def main(args: argparse.Namespace) -> int:
    work = args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    data, marker = base.prepare_dataset(args, work)  # backed up in place: never mutated
    data_bytes = base.tree_bytes(data)
    vault_src, vault_rev = base.export_vault(args.vault_ref, work)
    got = measure_runs(args, work, data, vault_src)
    runs = {n: base.median_run([r[n] for r in got.all_runs]) for n in base.TOOLS}
    text, targets = report(runs, data_bytes, median_copy(got.copies))
    header = [
        f"storage: {args.storage} ("
        + ("rclone serve s3 via the counting proxy)" if args.storage == "s3"
           else "OpenSSH sshd via a counting TCP relay)"),
        f"dataset: {args.size} seed {args.seed}: {data_bytes / 2**20:.1f} MiB in "
        f"{marker['stats']['total']['files']} files",
        f"machine: {os.cpu_count()} cpus; load average (1/5/15 min) at start "
        f"{'/'.join(f'{x:.2f}' for x in got.loads[0])}, at end "
        f"{'/'.join(f'{x:.2f}' for x in got.loads[-1])}",
        "; ".join(f"{r.name} {r.version}" for r in runs.values()),
        f"vault sources: {vault_rev}",
        f"figures: median of {args.runs} run(s)", ""]
    print_figures(got, text, header)
    if args.json:
        doc = json_doc(args, got, runs, {"data_bytes": data_bytes, "targets": targets,
                                         "vault_sources": vault_rev})
        print(doc) if args.json == "-" else Path(args.json).write_text(doc + "\n")
    bad = [n for one in got.all_runs for n, r in one.items() if r.verify and not r.verify["ok"]]
    return 1 if bad else 0
