#!/usr/bin/env python3
"""Load and checks for the fault scripts (bench/faults/*.sh), standard library only.

  driver.py signup BASE OUT --threads N --seconds S [--prefix P]
      sign-ups with fresh addresses; every one answered with success is appended to OUT
      (address, then the session id) the moment the answer arrives, so a kill of the API
      loses no record of a success.
  driver.py signin BASE IN
      every address in IN signs in (exit 1 and the failures listed otherwise).
  driver.py probe BASE OUT --seconds S --threads N --token ACCESS [--sign-in EMAIL]
      `me` (and a sign-in every tenth request when --sign-in is given) in a loop; one CSV line
      per request: start ms, latency ms, outcome (ok, a GraphQL code, http-NNN, or the
      exception).
  driver.py reset BASE EMAILS... : requestPasswordReset for each address.
  driver.py smtp PORT OUT
      a tiny SMTP sink: accepts every message and appends one line per message and
      recipient to OUT (time, recipient, subject, sha256 of the body).
"""

import asyncio
import hashlib
import http.client
import json
import os
import sys
import threading
import time
import urllib.parse

PASSWORD = "correct horse battery staple"


class Api:
    def __init__(self, base, timeout=30):
        u = urllib.parse.urlparse(base)
        self.host, self.port = u.hostname, u.port or 80
        self.timeout = timeout
        self.conn = None

    def gql(self, query, variables=None, token=None):
        body = json.dumps({"query": query, "variables": variables or {}})
        headers = {"content-type": "application/json"}
        if token:
            headers["authorization"] = "Bearer " + token
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self.conn.request("POST", "/graphql", body, headers)
                resp = self.conn.getresponse()
                data = resp.read()
                if resp.getheader("connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = None
                if resp.status != 200:
                    return "http-%d" % resp.status, None
                doc = json.loads(data)
                if doc.get("errors"):
                    code = (doc["errors"][0].get("extensions") or {}).get("code", "ERROR")
                    return code, doc
                return "ok", doc
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as e:
                # A kept-alive connection the server closed: once more on a new one.
                self.conn.close()
                self.conn = None
                if attempt == 1:
                    return type(e).__name__, None
            except Exception as e:  # noqa: BLE001 - every failure is an outcome here
                if self.conn:
                    self.conn.close()
                self.conn = None
                return type(e).__name__, None
        return "unreachable", None


SIGN_UP = "mutation($e: String!, $p: String!) { signUp(input: {email: $e, password: $p}) { accessToken refreshToken session { id } } }"
SIGN_IN = "mutation($e: String!, $p: String!) { signIn(input: {email: $e, password: $p}) { accessToken session { id } } }"
ME = "{ me { id } }"
RESET = "mutation($e: String!) { requestPasswordReset(email: $e) }"


def signup(base, out, threads, seconds, prefix):
    stop = time.time() + seconds
    lock = threading.Lock()
    counts = {}
    f = open(out, "a", buffering=1)

    def worker(n):
        api = Api(base, timeout=10)
        i = 0
        while time.time() < stop:
            i += 1
            email = "%s-%d-%d@example.com" % (prefix, n, i)
            outcome, doc = api.gql(SIGN_UP, {"e": email, "p": PASSWORD})
            with lock:
                counts[outcome] = counts.get(outcome, 0) + 1
                if outcome == "ok":
                    f.write("%s %s\n" % (email, doc["data"]["signUp"]["session"]["id"]))
            if outcome != "ok":
                time.sleep(0.05)

    ts = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    f.close()
    print(json.dumps(counts, sort_keys=True))


def signin(base, path):
    api = Api(base)
    bad = []
    n = 0
    for line in open(path):
        email = line.split()[0]
        n += 1
        outcome, _ = api.gql(SIGN_IN, {"e": email, "p": PASSWORD})
        if outcome != "ok":
            bad.append((email, outcome))
    print(json.dumps({"accounts": n, "failed": len(bad), "first_failures": bad[:5]}))
    sys.exit(1 if bad else 0)


def probe(base, out, seconds, threads, token, sign_in):
    stop = time.time() + seconds
    lock = threading.Lock()
    f = open(out, "w", buffering=1)

    def worker():
        api = Api(base, timeout=30)
        i = 0
        while time.time() < stop:
            i += 1
            t0 = time.time()
            if sign_in and i % 10 == 0:
                outcome, _ = api.gql(SIGN_IN, {"e": sign_in, "p": PASSWORD})
            else:
                outcome, _ = api.gql(ME, token=token)
            t1 = time.time()
            with lock:
                f.write("%d,%.1f,%s\n" % (t0 * 1000, (t1 - t0) * 1000, outcome))
            if outcome != "ok":
                time.sleep(0.02)

    ts = [threading.Thread(target=worker) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


def reset(base, emails):
    api = Api(base)
    bad = 0
    for email in emails:
        outcome, _ = api.gql(RESET, {"e": email})
        if outcome != "ok":
            bad += 1
            print("reset %s: %s" % (email, outcome), file=sys.stderr)
    sys.exit(1 if bad else 0)


async def smtp(port, out):
    f = open(out, "a", buffering=1)

    async def session(reader, writer):
        def say(line):
            writer.write((line + "\r\n").encode())

        say("220 faults-sink ESMTP")
        rcpts = []
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                cmd = line.decode(errors="replace").strip()
                verb = cmd[:4].upper()
                if verb in ("EHLO", "HELO"):
                    say("250-faults-sink" if verb == "EHLO" else "250 faults-sink")
                    if verb == "EHLO":
                        say("250 8BITMIME")
                elif verb == "MAIL":
                    rcpts = []
                    say("250 ok")
                elif verb == "RCPT":
                    rcpts.append(cmd.split(":", 1)[1].strip().strip("<>"))
                    say("250 ok")
                elif verb == "DATA":
                    say("354 go on")
                    await writer.drain()
                    body = b""
                    while True:
                        chunk = await reader.readline()
                        if not chunk or chunk in (b".\r\n", b".\n"):
                            break
                        body += chunk
                    subject = ""
                    for h in body.split(b"\r\n"):
                        if h.lower().startswith(b"subject:"):
                            subject = h[8:].decode(errors="replace").strip()
                            break
                        if not h:
                            break
                    digest = hashlib.sha256(body).hexdigest()[:16]
                    for r in rcpts:
                        f.write("%d %s %s %s\n" % (time.time() * 1000, r, digest, subject.replace(" ", "_")))
                    say("250 queued")
                elif verb == "QUIT":
                    say("221 bye")
                    await writer.drain()
                    break
                elif verb in ("RSET", "NOOP"):
                    say("250 ok")
                else:
                    say("502 not implemented")
                await writer.drain()
        except ConnectionError:
            pass
        writer.close()

    server = await asyncio.start_server(session, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def main(argv):
    cmd = argv[1]
    args = argv[2:]

    def opt(name, default=None):
        if name in args:
            i = args.index(name)
            v = args[i + 1]
            del args[i : i + 2]
            return v
        return default

    if cmd == "signup":
        threads = int(opt("--threads", 4))
        seconds = float(opt("--seconds", 10))
        prefix = opt("--prefix", "load%d" % os.getpid())
        signup(args[0], args[1], threads, seconds, prefix)
    elif cmd == "signin":
        signin(args[0], args[1])
    elif cmd == "probe":
        seconds = float(opt("--seconds", 10))
        threads = int(opt("--threads", 4))
        token = opt("--token")
        sign_in = opt("--sign-in")
        probe(args[0], args[1], seconds, threads, token, sign_in)
    elif cmd == "reset":
        reset(args[0], args[1:])
    elif cmd == "smtp":
        asyncio.run(smtp(int(args[0]), args[1]))
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main(sys.argv)
