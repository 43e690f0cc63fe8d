#!/usr/bin/env python3
"""A mesh-sandbox for cpis-hub's MESH API tests, and a small MESH API v2 client acting
as the hub's partners. Standard library only (the sandbox runs from its own venv).

    meshctl.py start DIR --mailbox ID:ROLE ... [--tls]   start a sandbox; DIR/sandbox.json
    meshctl.py stop DIR
    meshctl.py send DIR FROM TO WORKFLOW FILE [--name N] [--local-id L] [--gzip] [--chunk-bytes B]
    meshctl.py inbox DIR MAILBOX                          message ids, one per line
    meshctl.py get DIR MAILBOX ID OUT                     payload to OUT (all chunks, gzip removed);
                                                          headers (JSON) on stdout
    meshctl.py ack DIR MAILBOX ID
    meshctl.py report DIR MAILBOX LINKED_ID WORKFLOW CODE DESCRIPTION   inject a REPORT
    meshctl.py status DIR ID                              the message's status (admin API)
    meshctl.py reset DIR MAILBOX                          forget a mailbox's inbox and outbox (admin API)
    meshctl.py requests DIR                               the sandbox's request log (JSON lines)

Roles: hub, authority, site, demographics, stranger. The venv is $MESH_SANDBOX_VENV
(default <tmp>/msb-venv), with mesh-sandbox 1.0.137 installed by .ci/run.
"""

import argparse
import gzip
import hashlib
import hmac
import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone

VENV = os.environ.get("MESH_SANDBOX_VENV", os.path.join(tempfile.gettempdir(), "msb-venv"))
WORKFLOWS = [
    ("CPISHUB_EXTRACT", "authority", "hub"), ("CPISHUB_EXTRACT_ACK", "hub", "authority"),
    ("CPISHUB_ACCESS", "hub", "authority"), ("CPISHUB_INACTIVE", "hub", "authority"),
    ("CPISHUB_HOLDINGS", "hub", "authority"), ("CPISHUB_ATTEND", "site", "hub"),
    ("CPISHUB_ATTEND_ACK", "hub", "site"), ("CPISHUB_ALERTS", "hub", "site"),
    ("CPISHUB_NHS_STATUS", "demographics", "hub"), ("CPISHUB_NHS_STATUS_ACK", "hub", "demographics"),
]
WRAPPER = '''
import json, os, time
from mesh_sandbox.api import app as _app
_LOG = os.environ["MSB_REQUEST_LOG"]
async def app(scope, receive, send):
    if scope["type"] != "http":
        return await _app(scope, receive, send)
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
    rec = {"t": time.time(), "method": scope["method"], "path": scope["path"], "status": None, "bytes": 0,
           "headers": {k: v for k, v in headers.items()
                       if k.startswith("mex-") or k in ("authorization", "content-encoding", "content-length", "accept")}}
    async def rcv():
        m = await receive()
        if m.get("type") == "http.request":
            rec["bytes"] += len(m.get("body", b""))
        return m
    async def snd(m):
        if m.get("type") == "http.response.start":
            rec["status"] = m["status"]
        await send(m)
    try:
        await _app(scope, rcv, snd)
    finally:
        with open(_LOG, "a") as f:
            f.write(json.dumps(rec) + "\\n")
'''


def fail(text):
    print(f"meshctl: {text}", file=sys.stderr)
    sys.exit(1)


def openssl(*args, cwd):
    done = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        fail(f"openssl {' '.join(args[:2])}: {done.stderr[-400:]}")


def make_tls(folder):
    """A test CA, a v3 server certificate for 127.0.0.1, v3 client certificates for
    the hub and the partners, and an unrelated CA of the same name."""
    os.makedirs(folder, exist_ok=True)

    def ca(stem, where):
        os.makedirs(where, exist_ok=True)
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", f"{stem}.key", "-out", f"{stem}.pem", "-days", "3650",
                "-subj", "/CN=cpis-hub MESH test CA", "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=where)

    def leaf(stem, cn, ext):
        with open(os.path.join(folder, stem + ".ext"), "w") as f:
            f.write("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
                    "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n" + ext)
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", stem + ".key", "-out", stem + ".csr", "-subj", f"/CN={cn}", cwd=folder)
        openssl("x509", "-req", "-in", stem + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", stem + ".pem", "-days", "3650", "-extfile", stem + ".ext", cwd=folder)
        os.chmod(os.path.join(folder, stem + ".key"), 0o600)

    ca("ca", folder)
    leaf("server", "localhost", "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n")
    leaf("hub", "X26HUB01", "extendedKeyUsage=clientAuth\n")
    leaf("partner", "partners", "extendedKeyUsage=clientAuth\n")
    ca("ca", os.path.join(folder, "other"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load(folder):
    with open(os.path.join(folder, "sandbox.json")) as f:
        return json.load(f)


def connection(state, timeout=120):
    if state["tls"]:
        tls = state["tls_dir"]
        context = ssl.create_default_context(cafile=os.path.join(tls, "ca.pem"))
        context.check_hostname = False
        context.load_cert_chain(os.path.join(tls, "partner.pem"), os.path.join(tls, "partner.key"))
        return http.client.HTTPSConnection("127.0.0.1", state["port"], timeout=timeout, context=context)
    return http.client.HTTPConnection("127.0.0.1", state["port"], timeout=timeout)


def call(state, method, path, body=None, headers=None, mailbox=None):
    headers = dict(headers or {})
    if mailbox:
        nonce = str(uuid.uuid4())
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d%H%M")
        text = f"{mailbox}:{nonce}:1:{state['passwords'][mailbox]}:{stamp}"
        mac = hmac.new(state["shared_key"].encode(), text.encode(), hashlib.sha256).hexdigest()
        headers["Authorization"] = f"NHSMESH {mailbox}:{nonce}:1:{stamp}:{mac}"
        headers.setdefault("Accept", "application/vnd.mesh.v2+json")
    conn = connection(state)
    try:
        conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def start(args):
    folder = os.path.abspath(args.dir)
    os.makedirs(folder, exist_ok=True)
    probe = subprocess.run([os.path.join(VENV, "bin", "python"), "-c",
                            "import os, uvicorn, mesh_sandbox; print(os.path.dirname(mesh_sandbox.__file__))"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        fail(f"no mesh-sandbox in the venv {VENV} (python3 -m venv {VENV} && "
             f"{VENV}/bin/pip install mesh-sandbox==1.0.137): {probe.stderr[-300:]}")
    roles = dict(m.split(":", 1) for m in args.mailbox)
    state = {"dir": folder, "port": free_port(), "tls": args.tls, "tls_dir": os.path.join(folder, "tls"),
             "shared_key": "SK-" + secrets.token_hex(12),
             "passwords": {m: "PW-" + secrets.token_hex(8) for m in roles}}
    if args.tls:
        make_tls(state["tls_dir"])
    pkg = os.path.join(folder, "pkg")
    target = os.path.join(pkg, "mesh_sandbox")
    shutil.rmtree(pkg, ignore_errors=True)
    shutil.copytree(probe.stdout.strip().splitlines()[-1], target, ignore=shutil.ignore_patterns("__pycache__"))
    data = os.path.join(target, "store", "data")
    with open(os.path.join(data, "mailboxes.jsonl"), "w") as f:
        for m, pw in state["passwords"].items():
            f.write(json.dumps({"mailbox_id": m, "mailbox_name": f"test {m}", "billing_entity": "England",
                                "ods_code": "X26", "org_code": "X26", "password": pw}) + "\n")
    by_role = {}
    for m, role in roles.items():
        by_role.setdefault(role, []).append(m)
    with open(os.path.join(data, "workflows.jsonl"), "w") as f:
        for wf, sender, receiver in WORKFLOWS:
            f.write(json.dumps({"workflow_id": wf, "senders": by_role.get(sender, []),
                                "receivers": by_role.get(receiver, [])}) + "\n")
    shutil.rmtree(os.path.join(data, "mailboxes"), ignore_errors=True)
    with open(os.path.join(pkg, "msb_wrap.py"), "w") as f:
        f.write(WRAPPER)
    store = os.path.join(folder, "store")
    os.makedirs(store, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=pkg, PYTHONDONTWRITEBYTECODE="1", STORE_MODE="file",
               MAILBOXES_DATA_DIR=store, SHARED_KEY=state["shared_key"],
               MSB_REQUEST_LOG=os.path.join(folder, "requests.jsonl"), ENV="cpis-hub-test")
    cmd = [os.path.join(VENV, "bin", "python"), "-m", "uvicorn", "msb_wrap:app", "--host", "127.0.0.1",
           "--port", str(state["port"]), "--workers", "1", "--log-level", "warning"]
    if args.tls:
        t = state["tls_dir"]
        cmd += ["--ssl-certfile", f"{t}/server.pem", "--ssl-keyfile", f"{t}/server.key",
                "--ssl-ca-certs", f"{t}/ca.pem", "--ssl-cert-reqs", "2"]
    with open(os.path.join(folder, "sandbox.log"), "wb") as log:
        proc = subprocess.Popen(cmd, cwd=pkg, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    state["pid"] = proc.pid
    state["url"] = f"{'https' if args.tls else 'http'}://127.0.0.1:{state['port']}"
    with open(os.path.join(folder, "sandbox.json"), "w") as f:
        json.dump(state, f)
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            fail("the sandbox exited: " + open(os.path.join(folder, "sandbox.log")).read()[-800:])
        try:
            if call(state, "GET", "/health")[0] == 200:
                break
        except (OSError, http.client.HTTPException):
            time.sleep(0.2)
    else:
        stop_pid(proc.pid)
        fail("the sandbox did not answer /health within 60 s")
    status = call(state, "DELETE", "/admin/reset")[0]
    if status != 200:
        fail(f"sandbox reset answered {status}")
    print(json.dumps(state))


def stop_pid(pid):
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for _ in range(50):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def send(args):
    state = load(args.dir)
    with open(args.file, "rb") as f:
        payload = f.read()
    headers = {"Mex-From": args.sender, "Mex-To": args.to, "Mex-WorkflowID": args.workflow,
               "Mex-FileName": args.name or os.path.basename(args.file),
               "Mex-LocalID": args.local_id or "", "Content-Type": "application/octet-stream"}
    if args.gzip:
        payload = gzip.compress(payload)
        headers["Mex-Content-Compressed"] = "Y"
    size = args.chunk_bytes or max(1, len(payload))
    chunks = [payload[i:i + size] for i in range(0, len(payload), size)] or [b""]
    if len(chunks) > 1:
        headers["Mex-Chunk-Range"] = f"1:{len(chunks)}"
    status, _, body = call(state, "POST", f"/messageexchange/{args.sender}/outbox", chunks[0], headers, args.sender)
    if status not in (200, 202):
        fail(f"send answered {status}: {body[:300]!r}")
    message_id = json.loads(body)["message_id"]
    for n, chunk in enumerate(chunks[1:], start=2):
        status, _, body = call(state, "POST", f"/messageexchange/{args.sender}/outbox/{message_id}/{n}", chunk,
                               {"Mex-Chunk-Range": f"{n}:{len(chunks)}", "Content-Type": "application/octet-stream"},
                               args.sender)
        if status not in (200, 202):
            fail(f"chunk {n} answered {status}: {body[:300]!r}")
    print(message_id)


def inbox(args):
    state = load(args.dir)
    path = f"/messageexchange/{args.mailbox}/inbox"
    while path:
        status, _, body = call(state, "GET", path, mailbox=args.mailbox)
        if status != 200:
            fail(f"inbox answered {status}")
        page = json.loads(body)
        for m in page["messages"]:
            print(m)
        path = page.get("links", {}).get("next")


def get(args):
    state = load(args.dir)
    base = f"/messageexchange/{args.mailbox}/inbox/{args.id}"
    status, headers, body = call(state, "GET", base, mailbox=args.mailbox)
    if status not in (200, 206):
        fail(f"download answered {status}")
    parts, total = [body], 1
    if status == 206:
        total = int(headers.get("mex-chunk-range", "1:1").split(":")[1])
        for n in range(2, total + 1):
            s, _, chunk = call(state, "GET", f"{base}/{n}", mailbox=args.mailbox)
            if s not in (200, 206):
                fail(f"chunk {n} answered {s}")
            parts.append(chunk)
    data = b"".join(parts)
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    with open(args.out, "wb") as f:
        f.write(data)
    headers["chunks"] = str(total)
    print(json.dumps(headers))


def ack(args):
    state = load(args.dir)
    status = call(state, "PUT", f"/messageexchange/{args.mailbox}/inbox/{args.id}/status/acknowledged",
                  mailbox=args.mailbox)[0]
    if status != 200:
        fail(f"ack answered {status}")


def report(args):
    state = load(args.dir)
    request = {"mailbox_id": args.mailbox, "code": args.code, "description": args.description,
               "workflow_id": args.workflow, "status": "error", "linked_message_id": args.linked}
    status, _, body = call(state, "POST", "/messageexchange/admin/report", json.dumps(request).encode(),
                           {"Content-Type": "application/json"})
    if status != 200:
        fail(f"report answered {status}: {body[:300]!r}")
    print(json.loads(body)["message_id"])


def reset(args):
    """Forget a mailbox's inbox and outbox on the server (as if its records were lost)."""
    state = load(args.dir)
    code = call(state, "DELETE", f"/admin/reset/{args.mailbox}")[0]
    if code != 200:
        fail(f"admin reset answered {code}")


def status(args):
    state = load(args.dir)
    code, _, body = call(state, "GET", f"/admin/message/{args.id}")
    if code != 200:
        fail(f"admin message answered {code}")
    print((json.loads(body).get("status") or "").lower())


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("start"); s.add_argument("dir"); s.add_argument("--mailbox", action="append", default=[])
    s.add_argument("--tls", action="store_true"); s.set_defaults(run=start)
    s = sub.add_parser("stop"); s.add_argument("dir")
    s.set_defaults(run=lambda a: stop_pid(load(a.dir)["pid"]))
    s = sub.add_parser("send")
    for name in ("dir", "sender", "to", "workflow", "file"):
        s.add_argument(name)
    s.add_argument("--name"); s.add_argument("--local-id"); s.add_argument("--gzip", action="store_true")
    s.add_argument("--chunk-bytes", type=int); s.set_defaults(run=send)
    s = sub.add_parser("inbox"); s.add_argument("dir"); s.add_argument("mailbox"); s.set_defaults(run=inbox)
    s = sub.add_parser("get")
    for name in ("dir", "mailbox", "id", "out"):
        s.add_argument(name)
    s.set_defaults(run=get)
    s = sub.add_parser("ack")
    for name in ("dir", "mailbox", "id"):
        s.add_argument(name)
    s.set_defaults(run=ack)
    s = sub.add_parser("report")
    for name in ("dir", "mailbox", "linked", "workflow", "code", "description"):
        s.add_argument(name)
    s.set_defaults(run=report)
    s = sub.add_parser("status"); s.add_argument("dir"); s.add_argument("id"); s.set_defaults(run=status)
    s = sub.add_parser("reset"); s.add_argument("dir"); s.add_argument("mailbox"); s.set_defaults(run=reset)
    s = sub.add_parser("requests"); s.add_argument("dir")
    s.set_defaults(run=lambda a: print(open(os.path.join(a.dir, "requests.jsonl")).read(), end=""))
    args = p.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
