"""Helpers shared by the side-by-side benchmarks in this folder: processes started and
stopped by PID, free ports, Debian packages installed when missing, the load generator
(bench/loadgen) built and run, and a 3-member etcd on loopback."""
import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
SECRET = "bench-cluster-secret-0123456789abcdef"
started = []


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc=None, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listening on {port} after {timeout}s")


def stop(procs):
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def cleanup():
    for item in reversed(started):
        try:
            item()
        except Exception as e:  # keep stopping the others
            log(f"cleanup: {e}")


atexit.register(cleanup)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))


def apt_install(*pkgs):
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(sudo + ["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(sudo + ["apt-get", "install", "-y", "-qq", *pkgs], check=True, env=env)


PG_BIN = "/usr/lib/postgresql/15/bin"


def ensure_postgres():
    if not os.path.exists(f"{PG_BIN}/postgres") or not shutil.which("pgbench") and not os.path.exists(f"{PG_BIN}/pgbench"):
        log("installing postgresql-15 from Debian")
        apt_install("postgresql-15", "postgresql-client-15")


def start_postgres(tmp, superuser, settings=()):
    """A throw-away PostgreSQL 15 in `tmp`/pg on a free loopback port, trusting local
    clients, `superuser` its bootstrap role; stopped at exit. Returns the port once it
    accepts connections."""
    ensure_postgres()
    data = os.path.join(tmp, "pg")
    os.makedirs(data)
    as_user = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        shutil.chown(tmp, "postgres")
        shutil.chown(data, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    subprocess.run(as_user + [f"{PG_BIN}/initdb", "-D", data, "-A", "trust", "-U", superuser],
                   check=True, stdout=subprocess.DEVNULL)
    port = free_port()
    args = [f"{PG_BIN}/postgres", "-D", data, "-p", str(port), "-k", tmp, "-c", "listen_addresses=127.0.0.1"]
    for s in settings:
        args += ["-c", s]
    proc = subprocess.Popen(as_user + args, stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(tmp, "pg.log"), "w"))
    started.append(lambda: (proc.terminate(), proc.wait(timeout=30)))
    wait_port(port, proc)
    for _ in range(100):  # accepting connections may lag the socket
        if subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(port), "-U", superuser, "-d", "postgres",
                           "-Atc", "select 1"], capture_output=True).returncode == 0:
            return port
        time.sleep(0.1)
    raise SystemExit(f"PostgreSQL on port {port} does not accept connections; see {tmp}/pg.log")


def ensure_etcd():
    if not shutil.which("etcd"):
        log("installing etcd-server from Debian")
        apt_install("etcd-server")


def build_loadgen():
    """Builds bench/loadgen (outside the workspace); returns its path."""
    if not shutil.which("protoc"):  # etcd's gRPC client is generated at build time
        log("installing protobuf-compiler from Debian")
        apt_install("protobuf-compiler")
    log("building the load generator (release)")
    subprocess.run(["cargo", "build", "-q", "--release", "--manifest-path",
                    os.path.join(ROOT, "bench", "loadgen", "Cargo.toml"),
                    "--target-dir", os.path.join(TARGET, "loadgen")], cwd=ROOT, check=True)
    return os.path.join(TARGET, "loadgen", "release", "loadgen")


def build_bin(package, binary):
    """Builds one of the workspace's binaries (release); returns its path."""
    log(f"building {binary} (release)")
    subprocess.run(["cargo", "build", "-q", "--release", "-p", package, "--bin", binary],
                   cwd=ROOT, check=True)
    return os.path.join(TARGET, "release", binary)


def start_etcd(tmp, data_root, tag):
    names = ["e1", "e2", "e3"]
    peer = {n: free_port() for n in names}
    client = {n: free_port() for n in names}
    initial = ",".join(f"{n}=http://127.0.0.1:{peer[n]}" for n in names)
    procs = []
    for n in names:
        data = os.path.join(data_root, f"etcd-{tag}-{n}")
        procs.append(subprocess.Popen(
            ["etcd", "--name", n, "--data-dir", data,
             "--listen-peer-urls", f"http://127.0.0.1:{peer[n]}",
             "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer[n]}",
             "--listen-client-urls", f"http://127.0.0.1:{client[n]}",
             "--advertise-client-urls", f"http://127.0.0.1:{client[n]}",
             "--initial-cluster", initial, "--initial-cluster-state", "new",
             "--initial-cluster-token", f"bench-{tag}", "--log-level", "error"],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, f"etcd-{tag}-{n}.log"), "a")))
    started.append(lambda: stop(procs))
    started.append(lambda: shutil.rmtree(os.path.join(data_root, f"etcd-{tag}-e1"), ignore_errors=True))
    for n, p in zip(names, procs):
        wait_port(client[n], p)
    return procs, ",".join(f"127.0.0.1:{client[n]}" for n in names)


def load(loadgen, target_args, clients, seconds):
    cmd = [loadgen, *target_args, "--clients", str(clients), "--seconds", str(seconds)]
    out = subprocess.run(cmd, capture_output=True, text=True,
                         env={**os.environ, "MDBC_CLUSTER_SECRET": SECRET}, timeout=seconds * 10 + 60)
    if out.returncode != 0:
        raise SystemExit(f"loadgen {' '.join(target_args)} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


