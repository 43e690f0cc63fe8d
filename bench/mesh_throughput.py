#!/usr/bin/env python3
"""MESH API throughput (issue 15): cpis-hub's MESH API client beside NHS England's
reference Python client (`mesh_client`), the same 100 MB messages through the same
mesh-sandbox on loopback, interleaved in one run. Wall time and peak RSS of each
process.

    cargo build --release && python3 bench/mesh_throughput.py [--runs 3] [--mb 100]

Needs the mesh-sandbox venv ($MESH_SANDBOX_VENV, default <tmp>/msb-venv, as .ci/run
makes it) and a venv with `mesh-client` ($MESH_CLIENT_VENV, default <tmp>/mc-venv;
made here with pip when missing).

- send: one alert extract of MB bytes (synthetic rows, 999-range NHS numbers) to a
  site. cpis-hub: `process` sends the file waiting in the site's out/ (chunks of
  chunk_bytes = 20 MB, each a gzip member, streamed from a staged file), records
  the message id and moves the file to out/sent/; the pass itself has nothing else
  to do. mesh_client: `send_message(data, max_chunk_size=20 MB, compress=True)`.
- receive: one message of MB bytes in 20 MB chunks. cpis-hub: `process` downloads
  it, writes and fsyncs it, records it and acknowledges it (sent by a mailbox that
  is no mesh_api partner, so it is kept under .mesh-unknown/: the transfer alone,
  not the apply, which bench/run.sh measures). mesh_client: `retrieve_message`,
  copied to a file, fsynced, `acknowledge`.
- mesh_client runs twice each way: "gzip" as it is used by default (send with
  compress=True; receive with its Accept-Encoding: gzip, so the server compresses
  every chunk on the fly), and "plain" (send uncompressed; Accept-Encoding:
  identity). cpis-hub sends gzip chunks (deflate's fastest level) and receives
  without asking for transport compression.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MESHCTL = os.path.join(ROOT, "tests", "mesh", "meshctl.py")
BIN = os.path.join(ROOT, "target", "release", "cpis-hub")
MC_VENV = os.environ.get("MESH_CLIENT_VENV", os.path.join(tempfile.gettempdir(), "mc-venv"))
CHUNK = 20_000_000

REFERENCE = r'''
import os, shutil, sys, time
from mesh_client import MeshClient
mode, url, mailbox, password, key, arg, other, gzip = sys.argv[1:9]
with MeshClient(url, mailbox, password, shared_key=key.encode(), verify=False,
                max_chunk_size=20_000_000, application_name="bench") as client:
    if gzip == "no":
        client._session.headers["Accept-Encoding"] = "identity"
    client.handshake()
    if mode == "send":
        with open(arg, "rb") as f:
            client.send_message(other, f, workflow_id="CPISHUB_ALERTS", filename="alerts.csv",
                                local_id="ALERTS_000001", compress=(gzip == "yes"))
    else:
        for message_id in client.list_messages():
            message = client.retrieve_message(message_id)
            with open(arg, "wb") as out:
                shutil.copyfileobj(message, out, 1 << 20)
                out.flush()
                os.fsync(out.fileno())
            message.acknowledge()
'''


def measured(cmd, env=None, cwd=None):
    """(seconds, peak RSS MiB) of one child process."""
    script = ("import resource, subprocess, sys, time\n"
              "t = time.perf_counter()\n"
              "r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)\n"
              "w = time.perf_counter() - t\n"
              "if r.returncode != 0: sys.stderr.write(r.stderr.decode()[-2000:]); sys.exit(r.returncode)\n"
              "print(w, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")
    out = subprocess.run([sys.executable, "-c", script, *cmd], capture_output=True, text=True, env=env, cwd=cwd)
    if out.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed: {out.stderr}")
    wall, rss = out.stdout.split()
    return float(wall), int(rss) / 1024


def ctl(*args):
    return subprocess.run([sys.executable, MESHCTL, *args], check=True, capture_output=True, text=True).stdout


def make_file(path, size):
    """A CSV alert extract of about `size` bytes: synthetic rows."""
    with open(path, "w") as f:
        f.write("#cpis-alerts v1 site=R0B type=FULL created_at=2026-11-22T10:00:00Z\n")
        f.write("alert_id,nhs_number,plan_type,plan_status,plan_start_date,plan_end_date,authority\n")
        i = 0
        while f.tell() < size:
            f.write(f"A{i:012d},999{i % 10_000_000:07d},CPP,ACTIVE,2026-01-{1 + i % 28:02d},,LA204\n")
            i += 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--mb", type=int, default=100)
    args = ap.parse_args()
    if not os.path.exists(os.path.join(MC_VENV, "bin", "python")):
        subprocess.run([sys.executable, "-m", "venv", MC_VENV], check=True)
        subprocess.run([os.path.join(MC_VENV, "bin", "pip"), "install", "-q", "mesh-client"], check=True)
    work = tempfile.mkdtemp(prefix="cpis-mesh-bench-")
    box = os.path.join(work, "sandbox")
    ctl("start", box, "--mailbox", "X26HUB01:hub", "--mailbox", "X26LA204:authority",
        "--mailbox", "X26R0B01:site", "--mailbox", "X26ZZZ01:stranger", "--mailbox", "X26ZZZ02:stranger")
    state = json.load(open(os.path.join(box, "sandbox.json")))
    try:
        data = os.path.join(work, "alerts.csv")
        make_file(data, args.mb * 1_000_000)
        size = os.path.getsize(data)
        for name, text in (("pw", state["passwords"]["X26HUB01"]), ("key", state["shared_key"])):
            p = os.path.join(work, name)
            with open(p, "w") as f:
                f.write(text)
            os.chmod(p, 0o600)
        with open(os.path.join(work, "cpis-hub.toml"), "w") as f:
            f.write(f'''[hub]
mailbox = "X26HUB01"
root = "mailboxes"
database = "cpis-hub.sqlite3"
settle = "0s"
max_file_bytes = {4 * size}

[[authority]]
code = "LA204"
name = "Example Borough Council"
mailbox = "X26LA204"

[[site]]
code = "R0B"
name = "Example Ambulance Service NHS Trust"
mailbox = "X26R0B01"
site_codes = ["R0B01"]
mesh_api = true

[mesh]
url = "{state['url']}"
password_file = "pw"
shared_key_file = "key"
chunk_bytes = {CHUNK}
timeout = "300s"
''')
        hub = [BIN, "--config", os.path.join(work, "cpis-hub.toml"), "--now", "2026-11-22T10:00:00Z", "process"]
        env = dict(os.environ, RUST_LOG="warn")
        subprocess.run(hub, check=True, capture_output=True, env=env, cwd=work)  # folders, handshake
        out_dir = os.path.join(work, "mailboxes", "X26R0B01", "out")
        reference = os.path.join(work, "reference.py")
        with open(reference, "w") as f:
            f.write(REFERENCE)
        py = os.path.join(MC_VENV, "bin", "python")
        results = {k: [] for k in ("hub send", "mesh_client send gzip", "mesh_client send plain",
                                   "hub receive", "mesh_client receive gzip", "mesh_client receive plain")}
        for run in range(args.runs):
            # send
            name = f"ALERTS_X26R0B01_20261122T100000Z_{run + 1:06d}.csv"
            staged = os.path.join(out_dir, name)
            subprocess.run(["cp", data, staged], check=True)
            os.chmod(staged, 0o600)
            results["hub send"].append(measured(hub, env=env, cwd=work))
            assert os.path.exists(os.path.join(out_dir, "sent", name)), "the hub did not send the file"
            for gz in ("yes", "no"):
                results["mesh_client send " + ("gzip" if gz == "yes" else "plain")].append(measured(
                    [py, reference, "send", state["url"], "X26LA204", state["passwords"]["X26LA204"],
                     state["shared_key"], data, "X26R0B01", gz]))
            # receive (one message to each, from the same stranger)
            ctl("send", box, "X26ZZZ01", "X26HUB01", "CPISHUB_EXTRACT", data, "--chunk-bytes", str(CHUNK))
            results["hub receive"].append(measured(hub, env=env, cwd=work))
            for gz in ("yes", "no"):
                ctl("send", box, "X26ZZZ01", "X26ZZZ02", "CPISHUB_EXTRACT", data, "--chunk-bytes", str(CHUNK))
                results["mesh_client receive " + ("gzip" if gz == "yes" else "plain")].append(measured(
                    [py, reference, "receive", state["url"], "X26ZZZ02", state["passwords"]["X26ZZZ02"],
                     state["shared_key"], os.path.join(work, "received.dat"), "-", gz]))
                assert os.path.getsize(os.path.join(work, "received.dat")) == size
            kept = os.path.join(work, "mailboxes", ".mesh-unknown")
            got = [n for n in os.listdir(kept) if n.endswith(".dat")]
            assert len(got) == 1 and all(os.path.getsize(os.path.join(kept, n)) == size for n in got)
            for n in got:
                os.remove(os.path.join(kept, n))
            # sandbox's stored chunks: keep the disk small between runs
            subprocess.run(["rm", "-rf", os.path.join(box, "store", "messages")], check=False)
        print(f"MESH API throughput, {size / 1e6:.0f} MB message, chunks of {CHUNK / 1e6:.0f} MB, "
              f"mesh-sandbox on loopback, {args.runs} interleaved runs (median; min-max)")
        print(f"{'':26} {'wall s':>18} {'peak RSS MiB':>18}")
        for k, v in results.items():
            walls, rsss = [w for w, _ in v], [r for _, r in v]
            print(f"{k:26} {statistics.median(walls):8.2f} ({min(walls):.2f}-{max(walls):.2f})"
                  f" {statistics.median(rsss):8.1f} ({min(rsss):.0f}-{max(rsss):.0f})")
        for what in ("send", "receive"):
            a = statistics.median(w for w, _ in results[f"hub {what}"])
            for gz in ("gzip", "plain"):
                b = statistics.median(w for w, _ in results[f"mesh_client {what} {gz}"])
                print(f"{what}: cpis-hub / mesh_client ({gz}) wall = {a / b:.2f}")
    finally:
        ctl("stop", box)
        if "--keep" not in sys.argv:
            subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
