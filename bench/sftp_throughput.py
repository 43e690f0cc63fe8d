#!/usr/bin/env python3
"""SFTP download throughput (issue 5): cpis-hub's transport against OpenSSH's own
`sftp` client, the same files from the same loopback sshd, interleaved in one run.

    cargo build --release --examples && python3 bench/sftp_throughput.py [--runs 3]

Needs /usr/sbin/sshd (openssh-server) and the sftp client. Scenario A: 100 files of
1 MiB; scenario B: one file of 200 MiB. cpis-hub's time includes what `process`
does per file (record in the index, size check, fsync, atomic rename, remove the
remote file); sftp's is a plain `get`.
"""

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, **kw)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="cpis-sftp-bench-")
    sshd = None
    try:
        for key in ("host_key", "client_key"):
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", os.path.join(work, key)])
        shutil.copy(os.path.join(work, "client_key.pub"), os.path.join(work, "authorized_keys"))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        with open(os.path.join(work, "sshd_config"), "w") as f:
            f.write(f"Port {port}\nListenAddress 127.0.0.1\nHostKey {work}/host_key\nPidFile {work}/sshd.pid\n"
                    f"AuthorizedKeysFile {work}/authorized_keys\nStrictModes no\nPasswordAuthentication no\n"
                    "UsePAM no\nPermitRootLogin prohibit-password\nSubsystem sftp internal-sftp\nLogLevel ERROR\n")
        os.makedirs("/run/sshd", exist_ok=True)
        sshd = subprocess.Popen(["/usr/sbin/sshd", "-D", "-f", os.path.join(work, "sshd_config")], stderr=subprocess.DEVNULL)
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), 0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        host = open(os.path.join(work, "host_key.pub")).read().split()
        with open(os.path.join(work, "known_hosts"), "w") as f:
            f.write(f"[127.0.0.1]:{port} {host[0]} {host[1]}\n")
        user = run(["id", "-un"]).stdout.decode().strip()
        source = {"A": os.path.join(work, "src-a"), "B": os.path.join(work, "src-b")}
        os.makedirs(source["A"])
        os.makedirs(source["B"])
        block = os.urandom(1 << 20)
        for i in range(100):
            open(os.path.join(source["A"], f"f{i:03d}.bin"), "wb").write(block)
        with open(os.path.join(source["B"], "big.bin"), "wb") as f:
            for _ in range(200):
                f.write(block)
        remote_in = os.path.join(work, "remote-in")
        with open(os.path.join(work, "cpis-hub.toml"), "w") as f:
            f.write(f'[hub]\nmailbox = "X26HUB01"\nroot = "mb"\ndatabase = "db.sqlite3"\nsettle = "0s"\n\n'
                    f'[[authority]]\ncode = "LA1"\nname = "Bench"\nmailbox = "X26LA001"\n\n'
                    f'[[sftp]]\nmailbox = "X26LA001"\nhost = "127.0.0.1"\nport = {port}\nuser = "{user}"\n'
                    f'private_key = "{work}/client_key"\nknown_hosts = "{work}/known_hosts"\n'
                    f'remote_in = "{remote_in}"\nremote_out = "{work}/remote-out"\n')
        fetch = os.path.join(ROOT, "target", "release", "examples", "sftp_fetch")
        results = {}
        for scenario in ("A", "B"):
            ours, theirs = [], []
            for _ in range(args.runs):
                # cpis-hub
                shutil.rmtree(remote_in, ignore_errors=True)
                shutil.copytree(source[scenario], remote_in)
                shutil.rmtree(os.path.join(work, "mb"), ignore_errors=True)
                t0 = time.monotonic()
                run([fetch, "cpis-hub.toml", "X26LA001"], cwd=work)
                ours.append(time.monotonic() - t0)
                # OpenSSH sftp, same files
                shutil.rmtree(remote_in, ignore_errors=True)
                shutil.copytree(source[scenario], remote_in)
                dest = os.path.join(work, "sftp-dest")
                shutil.rmtree(dest, ignore_errors=True)
                os.makedirs(dest)
                t0 = time.monotonic()
                run(["sftp", "-q", "-b", "-", "-i", os.path.join(work, "client_key"), "-P", str(port),
                     "-o", f"UserKnownHostsFile={work}/known_hosts", f"{user}@127.0.0.1"],
                    input=f"get {remote_in}/* {dest}/\n".encode())
                theirs.append(time.monotonic() - t0)
            results[scenario] = (ours, theirs)
        mib = {"A": 100, "B": 200}
        labels = {"A": "100 files x 1 MiB", "B": "1 file x 200 MiB"}
        print(f"{'scenario':<20} {'tool':<10} {'median s':>9} {'min s':>7} {'max s':>7} {'MiB/s':>8}")
        for scenario, (ours, theirs) in results.items():
            for tool, times in (("cpis-hub", ours), ("sftp", theirs)):
                med = statistics.median(times)
                print(f"{labels[scenario]:<20} {tool:<10} {med:>9.3f} {min(times):>7.3f} {max(times):>7.3f} {mib[scenario] / med:>8.1f}")
            print(f"{'':<20} {'ratio':<10} {statistics.median(ours) / statistics.median(theirs):>9.2f}x (cpis-hub / sftp)")
    finally:
        if sshd:
            sshd.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
