#!/usr/bin/env python3
"""Daemon latency and idle CPU (issue 4), whole-process, on this machine.

Starts `cpis-hub run` on a scratch config (one MESH authority), drops N small
MESH messages one at a time (`.dat`, then `.ctl` renamed into place) and times
each from the `.ctl` landing in in/ to its receipt `.dat` appearing in out/.
Then leaves the daemon idle and reads its CPU time from /proc.

    cargo build --release && python3 bench/daemon_latency.py [--files 50] [--records 100] [--idle 10]

Prints median / min / max latency and idle CPU. Timings are never test assertions.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "shared", "conformance"))


def nhs_numbers(count):
    out = []
    body = 999_300_000
    while len(out) < count:
        digits = [int(d) for d in f"{body:09d}"]
        check = 11 - sum(d * w for d, w in zip(digits, range(10, 1, -1))) % 11
        if check != 10:
            out.append(f"{body}{0 if check == 11 else check}")
        body += 1
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=50)
    ap.add_argument("--records", type=int, default=100)
    ap.add_argument("--idle", type=float, default=10.0)
    ap.add_argument("--bin", default=os.path.join(HERE, "..", "target", "release", "cpis-hub"))
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="cpis-bench-")
    try:
        with open(os.path.join(work, "cfg.toml"), "w") as f:
            f.write('[hub]\nmailbox = "X26HUB01"\nroot = "mb"\ndatabase = "db.sqlite3"\nsettle = "1s"\n'
                    'allow_test_nhs_numbers = true\n\n[[authority]]\ncode = "LA1"\nname = "Bench"\n'
                    'mailbox = "X26LA001"\nframing = "mesh"\n')
        log = open(os.path.join(work, "daemon.log"), "w")
        env = dict(os.environ, RUST_LOG="warn")
        daemon = subprocess.Popen([args.bin, "--config", "cfg.toml", "run"], cwd=work, stderr=log, env=env)
        inbox = os.path.join(work, "mb", "X26LA001", "in")
        outbox = os.path.join(work, "mb", "X26LA001", "out")
        deadline = time.time() + 10
        while not os.path.isdir(inbox) and time.time() < deadline:
            time.sleep(0.01)
        time.sleep(0.5)
        numbers = nhs_numbers(args.records)
        latencies = []
        for i in range(args.files):
            lines = [f"#cpis-extract v1 authority=LA1 type=DELTA extracted_at=2026-01-01T00:{i // 60:02d}:{i % 60:02d}Z records={args.records}",
                     "action,local_id,nhs_number,plan_type,date_of_birth,start_date"]
            lines += [f"UPSERT,F{i}-{r},{numbers[r]},CPP,2016-01-01,2025-06-01" for r in range(args.records)]
            stem = f"MSG{i:04d}"
            with open(os.path.join(inbox, stem + ".dat"), "w") as f:
                f.write("\n".join(lines) + "\n")
            ctl = ("<DTSControl><MessageType>Data</MessageType><WorkflowId>CPISHUB_EXTRACT</WorkflowId>"
                   "<From_DTS>X26LA001</From_DTS><Compress>N</Compress><Encrypted>N</Encrypted></DTSControl>")
            with open(os.path.join(inbox, stem + ".ctl.part"), "w") as f:
                f.write(ctl)
            want = f"_{i + 1:06d}.dat"
            t0 = time.monotonic()
            os.rename(os.path.join(inbox, stem + ".ctl.part"), os.path.join(inbox, stem + ".ctl"))
            while not any(n.startswith("RECEIPT_") and n.endswith(want) for n in os.listdir(outbox)):
                if time.monotonic() - t0 > 30:
                    raise SystemExit(f"no receipt for {stem} in 30 s")
                time.sleep(0.0005)
            latencies.append((time.monotonic() - t0) * 1000)
        stat = lambda: sum(int(x) for x in open(f"/proc/{daemon.pid}/stat").read().split()[13:15])
        ticks = os.sysconf("SC_CLK_TCK")
        before, t0 = stat(), time.monotonic()
        time.sleep(args.idle)
        cpu = (stat() - before) / ticks / (time.monotonic() - t0) * 100
        daemon.terminate()
        code = daemon.wait(20)
        print(f"files: {args.files} MESH messages of {args.records} records, one at a time")
        print(f".ctl in in/ -> receipt in out/: median {statistics.median(latencies):.1f} ms, "
              f"min {min(latencies):.1f} ms, max {max(latencies):.1f} ms")
        print(f"idle CPU over {args.idle:.0f} s: {cpu:.2f}%")
        print(f"daemon exit code on SIGTERM: {code}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
