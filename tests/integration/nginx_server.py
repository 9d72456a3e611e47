"""A real nginx on 127.0.0.1 for the stub's integration tests and benchmark.

- `make_tls(dir)`: a throw-away CA and a server certificate for 127.0.0.1,
  localhost and 10.0.2.2 (the host seen from a QEMU guest), made with openssl;
  returns (ca_pem, cert_pem, key_pem).
- `Nginx(root, workdir, tls)`: nginx-light as a non-daemon with its own prefix
  and configuration in workdir, serving `root` over HTTPS on a free port (Range
  requests are nginx's default for static files) and over plain HTTP on a
  second port (the backend of DropProxy); `slow={path: bytes_per_s}` makes
  its HTTPS port trickle those files (nginx's limit_rate). Access log lines are
  "<uri> <status> <body bytes sent> <Range header>".
- `DropProxy(nginx, tls)`: a tiny TLS-terminating proxy in front of the plain
  port that cuts the connection after `drop_after` body bytes of the first
  `drop_count` responses for a path; every response it relays is logged as
  (path, range header, status, body bytes relayed, dropped). Deterministic:
  the cut happens at an exact byte count. With `stall` it goes silent there
  instead (slow retrieval) before closing.
"""
import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_tls(d):
    d = str(d)
    ca_key, ca = os.path.join(d, "ca.key"), os.path.join(d, "ca.pem")
    key, csr, cert = (os.path.join(d, n) for n in ("server.key", "server.csr", "server.pem"))
    ext = os.path.join(d, "san.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,IP:10.0.2.2,DNS:localhost\n"
                "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\n")
    q = dict(check=True, capture_output=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", ca_key, "-out", ca,
                    "-days", "2", "-subj", "/CN=sysimage test CA"], **q)
    subprocess.run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1"], **q)
    subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key,
                    "-CAcreateserial", "-out", cert, "-days", "2", "-extfile", ext], **q)
    return ca, cert, key


CONF = """\
daemon off;
master_process on;
worker_processes 1;
user root;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 64; }}
http {{
    default_type application/octet-stream;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    log_format si '$uri $status $body_bytes_sent "$http_range"';
    access_log {prefix}/access.log si;
    sendfile on;
    gzip off;
    server {{
        listen 127.0.0.1:{port} ssl;
        server_name localhost;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        root {root};
        location / {{ }}
{slow}    }}
    server {{
        listen 127.0.0.1:{plain_port};
        root {root};
        location / {{ }}
    }}
}}
"""


class Nginx:
    def __init__(self, root, workdir, tls, slow=None):
        self.root = str(root)
        self.prefix = str(workdir)
        self.ca, self.cert, self.key = tls
        os.makedirs(os.path.join(self.prefix, "tmp"), exist_ok=True)
        self.proc = None
        slow_conf = "".join(f"        location = {p} {{ limit_rate {r}; }}\n"
                            for p, r in (slow or {}).items())
        for _ in range(5):
            self.port, self.plain_port = free_port(), free_port()
            conf = os.path.join(self.prefix, "nginx.conf")
            with open(conf, "w") as f:
                f.write(CONF.format(prefix=self.prefix, port=self.port,
                                    plain_port=self.plain_port, cert=self.cert, key=self.key,
                                    root=self.root, slow=slow_conf))
            self.proc = subprocess.Popen([NGINX, "-p", self.prefix, "-c", conf],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            if self._wait_ready():
                return
            self.stop()
        raise RuntimeError("nginx did not start: " + self.error_log())

    def _wait_ready(self):
        for _ in range(200):
            if self.proc.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2), \
                        socket.create_connection(("127.0.0.1", self.plain_port), timeout=0.2):
                    return True
            except OSError:
                time.sleep(0.02)
        return False

    @property
    def url(self):
        return f"https://127.0.0.1:{self.port}"

    def error_log(self):
        try:
            with open(os.path.join(self.prefix, "error.log")) as f:
                return f.read()
        except OSError:
            return ""

    def access_log(self):
        """[(uri, status, body_bytes_sent, range_header_or_empty)]"""
        out = []
        path = os.path.join(self.prefix, "access.log")
        # nginx writes the log line when the request ends; give it a moment.
        time.sleep(0.05)
        if not os.path.exists(path):
            return out
        with open(path) as f:
            for line in f:
                uri, status, sent, rng = line.rstrip("\n").split(" ", 3)
                rng = rng.strip('"')
                out.append((uri, int(status), int(sent), "" if rng == "-" else rng))
        return out

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc and self.proc.stderr:
            self.proc.stderr.close()


class DropProxy:
    def __init__(self, nginx, tls, drop_path=None, drop_after=0, drop_count=1, stall=0.0):
        """stall > 0: instead of cutting at drop_after, go silent for `stall`
        seconds (a slow-retrieval attack), then close."""
        self.nginx = nginx
        self.stall = stall
        self.drop_path, self.drop_after, self.drop_count = drop_path, drop_after, drop_count
        self.log = []
        self.lock = threading.Lock()
        ca, cert, key = tls
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f"https://127.0.0.1:{self.port}"

    def _serve(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, raw):
        try:
            conn = self.ctx.wrap_socket(raw, server_side=True)
        except (OSError, ssl.SSLError):
            raw.close()
            return
        try:
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 65536:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                head += chunk
            lines = head.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            rng = ""
            for h in lines[1:]:
                k, _, v = h.partition(":")
                if k.strip().lower() == "range":
                    rng = v.strip()
            with self.lock:
                drop = path == self.drop_path and self.drop_count > 0
                if drop:
                    self.drop_count -= 1
            up = socket.create_connection(("127.0.0.1", self.nginx.plain_port))
            req = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            if rng:
                req += f"Range: {rng}\r\n"
            up.sendall((req + "\r\n").encode())
            buf = b""
            while b"\r\n\r\n" not in buf:
                chunk = up.recv(65536)
                if not chunk:
                    break
                buf += chunk
            rhead, _, body = buf.partition(b"\r\n\r\n")
            status = int(rhead.split(b" ", 2)[1])
            conn.sendall(rhead + b"\r\n\r\n")
            sent = 0
            dropped = False
            while True:
                if drop and sent + len(body) >= self.drop_after:
                    conn.sendall(body[: self.drop_after - sent])
                    sent = self.drop_after
                    dropped = True
                    if self.stall:
                        time.sleep(self.stall)
                    break
                if body:
                    conn.sendall(body)
                    sent += len(body)
                body = up.recv(65536)
                if not body:
                    break
            up.close()
            with self.lock:
                self.log.append((path, rng, status, sent, dropped))
            if dropped:
                # An abrupt end: no TLS close_notify, just a reset.
                raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                raw.close()
                return
            try:
                conn.unwrap()
            except (OSError, ssl.SSLError):
                pass
        except (OSError, ssl.SSLError, ValueError, IndexError):
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def stop(self):
        self.stopping = True
        self.sock.close()
