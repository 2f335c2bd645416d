"""A Docker engine for the compose test: the one this machine already runs, or a dockerd of our own started on
its own data root and socket (and stopped afterwards), with the host's network settings checked and put back.

Our dockerd runs with `--bridge=none --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false`:
no docker0, no firewall rules, no forwarding switched on. Compose's own network (a bridge between the stack's
containers) is removed by `down`; published ports go through docker-proxy on the loopback address. Builds use
the host's network (docker-compose.local.yml), so they need no bridge either. The data root persists between
runs (MEDVIEW_TEST_DOCKER_ROOT, default /var/cache/medview-test-docker): base images and the build cache are
made once per machine.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(os.environ.get("MEDVIEW_TEST_DOCKER_ROOT", "/var/cache/medview-test-docker"))
SOCKET = "/run/medview-test-docker.sock"
EXEC_ROOT = "/run/medview-test-docker"
PIDFILE = "/run/medview-test-docker.pid"


TIMINGS: dict[str, float] = {}  # step → seconds, printed at the end of the run (tests/conftest.py)


class EngineUnavailable(Exception):
    """Why no engine can be had here (the test is skipped with this reason)."""


def run(cmd: list[str], env: dict[str, str] | None = None, timeout: float = 60, check: bool = True,
        input: str | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, env=env, timeout=timeout, capture_output=True, text=True, input=input,
                            stdin=None if input is not None else subprocess.DEVNULL)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {result.returncode}:\n{result.stdout[-3000:]}\n"
                             f"{result.stderr[-3000:]}")
    return result


def _answers(env: dict[str, str]) -> bool:
    try:
        return run(["docker", "info", "--format", "{{.ServerVersion}}"], env=env, timeout=15,
                   check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def network_state() -> dict[str, str]:
    """What dockerd could change on the host: interfaces, firewall tables, forwarding switches."""
    state = {"links": " ".join(sorted(_links()))}
    for tool in ("iptables-save", "ip6tables-save"):
        if shutil.which(tool):
            out = run([tool], check=False, timeout=30).stdout
            state[tool] = "\n".join(line for line in out.splitlines() if not line.startswith("#"))
    for switch in ("/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv6/conf/all/forwarding"):
        if Path(switch).exists():
            state[switch] = Path(switch).read_text().strip()
    return state


def _links() -> set[str]:
    out = run(["ip", "-o", "link", "show"], timeout=10).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if line.strip()}


def restore_network(before: dict[str, str]) -> list[str]:
    """Put back what differs from `before` (new interfaces, firewall tables, forwarding); what was done."""
    done = []
    for link in sorted(_links() - set(before["links"].split())):
        run(["ip", "link", "delete", link], check=False, timeout=10)
        done.append(f"deleted interface {link}")
    now = network_state()
    for tool in ("iptables-save", "ip6tables-save"):
        if tool in before and now.get(tool) != before[tool]:
            restore = tool.replace("-save", "-restore")
            run([restore], input=before[tool] + "\n", check=False, timeout=30)
            done.append(f"restored {restore.split('-')[0]} rules")
    for switch, value in before.items():
        if switch.startswith("/proc/") and now.get(switch) != value:
            Path(switch).write_text(value + "\n")
            done.append(f"{switch} back to {value}")
    return done


@dataclass
class Engine:
    env: dict[str, str]
    started: bool = False
    process: subprocess.Popen[bytes] | None = None
    network_before: dict[str, str] = field(default_factory=dict)
    log: Path = ROOT / "dockerd.log"
    seconds_to_start: float = 0.0

    @classmethod
    def get(cls) -> Engine:
        """Our engine for this run; EngineUnavailable says why there is none. Hold `lock()` around its use."""
        for tool, package in (("docker", "docker.io"), ("dockerd", "docker.io")):
            if not shutil.which(tool):
                raise EngineUnavailable(f"`{tool}` not installed (apt-get install {package} docker-compose "
                                        "debootstrap)")
        if not compose_command():
            raise EngineUnavailable("neither `docker compose` nor `docker-compose` is installed")
        env = dict(os.environ)
        if _answers(env):
            return cls(env=env)
        env["DOCKER_HOST"] = f"unix://{SOCKET}"
        if _answers(env):  # ours, left by an interrupted run: used and stopped like one we start
            return cls(env=env, started=True, network_before=network_state())
        if os.geteuid() != 0:
            raise EngineUnavailable("no Docker engine answers and starting dockerd needs root")
        engine = cls(env=env, started=True, network_before=network_state())
        engine._start()
        return engine

    def _start(self) -> None:
        ROOT.mkdir(parents=True, exist_ok=True)
        start = time.monotonic()
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                ["dockerd", "--data-root", str(ROOT / "data"), "--exec-root", EXEC_ROOT, "--pidfile", PIDFILE,
                 "-H", f"unix://{SOCKET}", "--bridge=none", "--iptables=false", "--ip6tables=false",
                 "--ip-forward=false", "--ip-masq=false"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 60
        while not _answers(self.env):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = self.log.read_text(errors="replace").splitlines()[-5:]
                raise EngineUnavailable("dockerd did not start: " + " | ".join(tail))
            time.sleep(0.2)
        self.seconds_to_start = time.monotonic() - start

    def stop(self) -> list[str]:
        """Stop our dockerd (not one this machine already ran) and put the host's network back as it was."""
        if not self.started:
            return []
        pid = self.process.pid if self.process else _pid_from_file()
        if pid:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pid = None
        if self.process is not None:
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        elif pid:
            deadline = time.monotonic() + 60
            while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                time.sleep(0.2)
        for mount in reversed(_mounts_under(EXEC_ROOT)):  # dockerd leaves its netns/default bind mount
            run(["umount", mount], check=False, timeout=10)
        shutil.rmtree(EXEC_ROOT, ignore_errors=True)
        return restore_network(self.network_before) if self.network_before else []


def _mounts_under(prefix: str) -> list[str]:
    with open("/proc/mounts") as mounts:
        points = [line.split()[1] for line in mounts]
    return [p for p in points if p == prefix or p.startswith(prefix + "/")]


def lock() -> int:
    """An exclusive hold on the engine and the compose project for this process (another test run on this
    machine using them at the same time → EngineUnavailable). Released by os.close() of the returned fd."""
    ROOT.mkdir(parents=True, exist_ok=True)
    fd = os.open(ROOT / "lock", os.O_CREAT | os.O_WRONLY, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise EngineUnavailable(f"another test run is using the compose test's engine ({ROOT / 'lock'})") from None
    return fd


def _pid_from_file() -> int | None:
    try:
        return int(Path(PIDFILE).read_text().strip())
    except (OSError, ValueError):
        return None


def compose_command() -> list[str]:
    """`docker compose` (v2 plugin) when present, else Debian's `docker-compose` (v1); [] when neither."""
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True,
                                                 timeout=30).returncode == 0:
        return ["docker", "compose"]
    return ["docker-compose"] if shutil.which("docker-compose") else []
