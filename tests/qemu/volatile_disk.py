"""volatile_disk - a disk with a volatile write cache, for power cuts that
lose what was not flushed (issue 8 item 6, docs/board.md).

A SIGKILL of QEMU with cache=writeback is a guest crash, not a power loss:
every write QEMU already issued is in the host's page cache and survives.
Here the guest's disk is an NBD export served by this module (QEMU's nbd
client, `-drive driver=nbd,server.type=unix,...`). Writes go to an in-memory
cache of 512-byte sectors; reads see that cache first; a FLUSH (or a write
with FUA) makes the cached sectors durable (written to the image file and
fsync'd). A power cut: QEMU is killed and close(keep_cache=False) drops the
cache, either entirely (`keep=0.0`) or after a random subset of its sectors
reached the image (`keep` = the share kept, chosen by a seeded RNG: a disk
that wrote some of its cache back in any order, tearing multi-sector
writes). The guest's kernel keeps dirty data in its own page cache and
flushes right after writing it back, so a cut at a random moment rarely
finds much in the disk's cache: arm_cut() makes the next flush request the
moment the power fails, when the cache holds everything written since the
previous flush.

Only what the NBD protocol needs for QEMU: fixed newstyle handshake,
NBD_OPT_GO / NBD_OPT_EXPORT_NAME, simple replies; READ, WRITE (FUA), FLUSH,
DISC. TRIM and WRITE_ZEROES are not advertised, so QEMU never sends them.
"""
import os
import random
import socket
import struct
import tempfile
import threading

SECTOR = 512
NBDMAGIC = b"NBDMAGIC"
IHAVEOPT = 0x49484156454F5054
REPLY_MAGIC = 0x3E889045565A9
REQ_MAGIC = 0x25609513
SIMPLE_REPLY = 0x67446698
OPT_EXPORT_NAME, OPT_ABORT, OPT_GO, OPT_INFO = 1, 2, 7, 6
REP_ACK, REP_INFO, REP_ERR_UNSUP = 1, 3, 0x80000001
FLAG_HAS_FLAGS, FLAG_SEND_FLUSH, FLAG_SEND_FUA = 1, 4, 8
CMD_READ, CMD_WRITE, CMD_DISC, CMD_FLUSH = 0, 1, 2, 3
CMD_FLAG_FUA = 1
EIO, EINVAL = 5, 22


class VolatileDisk:
    def __init__(self, image):
        self.image = image
        self.size = os.path.getsize(image)
        self.fd = os.open(image, os.O_RDWR)
        self.cache = {}  # sector number -> 512 bytes not yet durable
        self.lock = threading.Lock()
        self.dir = tempfile.mkdtemp(prefix="volatile-disk-")
        self.path = os.path.join(self.dir, "nbd.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(4)
        self.conns = []
        self.threads = []
        self.flushes = 0
        self.armed = None          # (keep, seed): the next flush is a power cut
        self.armed_min = 0         # ... if it has at least this many unflushed sectors
        self.dead = threading.Event()
        self.cut_result = None     # (kept, lost) of an armed cut
        self.stopped = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def qemu_drive(self):
        """The -drive value for sihw.Machine(drive=...)."""
        return f"driver=nbd,server.type=unix,server.path={self.path},if=virtio,cache=writeback"

    # ------------------------------------------------------------ cache
    def _read(self, off, length):
        out = bytearray(os.pread(self.fd, length, off))
        out += b"\0" * (length - len(out))
        first, last = off // SECTOR, (off + length - 1) // SECTOR
        with self.lock:
            for s in range(first, last + 1):
                data = self.cache.get(s)
                if data is None:
                    continue
                a = max(off, s * SECTOR)
                b = min(off + length, (s + 1) * SECTOR)
                out[a - off:b - off] = data[a - s * SECTOR:b - s * SECTOR]
        return bytes(out)

    def _write(self, off, data, fua):
        first, last = off // SECTOR, (off + len(data) - 1) // SECTOR
        with self.lock:
            for s in range(first, last + 1):
                a = max(off, s * SECTOR)
                b = min(off + len(data), (s + 1) * SECTOR)
                if a == s * SECTOR and b == (s + 1) * SECTOR:
                    sec = bytes(data[a - off:b - off])
                else:
                    cur = self.cache.get(s)
                    if cur is None:
                        cur = os.pread(self.fd, SECTOR, s * SECTOR).ljust(SECTOR, b"\0")
                    cur = bytearray(cur)
                    cur[a - s * SECTOR:b - s * SECTOR] = data[a - off:b - off]
                    sec = bytes(cur)
                if fua:
                    os.pwrite(self.fd, sec, s * SECTOR)
                    self.cache.pop(s, None)
                else:
                    self.cache[s] = sec
            if fua:
                os.fsync(self.fd)

    def flush(self):
        with self.lock:
            for s in sorted(self.cache):
                os.pwrite(self.fd, self.cache[s], s * SECTOR)
            self.cache.clear()
            os.fsync(self.fd)
            self.flushes += 1

    def arm_cut(self, keep=0.0, seed=0, min_pending=0):
        """The power fails when the guest next asks for a flush, before the
        flush is done: the most writes a cut can lose. dead is set then; the
        disk answers nothing more (kill QEMU and close()). min_pending: only
        a flush with at least that many unflushed sectors is cut (earlier
        ones are served), so a cut armed late still loses something."""
        self.armed_min = min_pending
        self.armed = (keep, seed)

    def pending(self):
        with self.lock:
            return len(self.cache)

    def power_loss(self, keep=0.0, seed=0):
        """Drop the volatile cache: a share `keep` of its sectors (picked by a
        seeded RNG) reaches the image, the rest is lost. Returns (kept, lost)."""
        rng = random.Random(seed)
        with self.lock:
            sectors = sorted(self.cache)
            kept = [s for s in sectors if rng.random() < keep]
            for s in kept:
                os.pwrite(self.fd, self.cache[s], s * SECTOR)
            os.fsync(self.fd)
            lost = len(sectors) - len(kept)
            self.cache.clear()
        return len(kept), lost

    # ------------------------------------------------------------ protocol
    def _accept(self):
        while not self.stopped:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            t = threading.Thread(target=self._serve, args=(c,), daemon=True)
            self.threads.append(t)
            t.start()

    @staticmethod
    def _recv(c, n):
        buf = bytearray()
        while len(buf) < n:
            b = c.recv(n - len(buf))
            if not b:
                raise ConnectionError("closed")
            buf += b
        return bytes(buf)

    def _opt_reply(self, c, opt, rtype, data=b""):
        c.sendall(struct.pack(">QIII", REPLY_MAGIC, opt, rtype, len(data)) + data)

    def _serve(self, c):
        try:
            c.sendall(NBDMAGIC + struct.pack(">QH", IHAVEOPT, 1 | 2))  # FIXED_NEWSTYLE | NO_ZEROES
            cflags = struct.unpack(">I", self._recv(c, 4))[0]
            tflags = FLAG_HAS_FLAGS | FLAG_SEND_FLUSH | FLAG_SEND_FUA
            while True:
                magic, opt, length = struct.unpack(">QII", self._recv(c, 16))
                if magic != IHAVEOPT:
                    return
                data = self._recv(c, length) if length else b""
                if opt == OPT_EXPORT_NAME:
                    c.sendall(struct.pack(">QH", self.size, tflags) + (b"" if cflags & 2 else b"\0" * 124))
                    break
                if opt in (OPT_GO, OPT_INFO):
                    self._opt_reply(c, opt, REP_INFO, struct.pack(">HQH", 0, self.size, tflags))
                    self._opt_reply(c, opt, REP_ACK)
                    if opt == OPT_GO:
                        break
                    continue
                if opt == OPT_ABORT:
                    self._opt_reply(c, opt, REP_ACK)
                    return
                self._opt_reply(c, opt, REP_ERR_UNSUP)
            while True:
                magic, flags, cmd, handle, off, length = struct.unpack(">IHHQQI", self._recv(c, 28))
                if magic != REQ_MAGIC:
                    return
                if self.dead.is_set():
                    return
                if cmd == CMD_WRITE:
                    data = self._recv(c, length)
                    err = EINVAL if off + length > self.size else 0
                    if not err:
                        self._write(off, data, flags & CMD_FLAG_FUA)
                    c.sendall(struct.pack(">IIQ", SIMPLE_REPLY, err, handle))
                elif cmd == CMD_READ:
                    if off + length > self.size:
                        c.sendall(struct.pack(">IIQ", SIMPLE_REPLY, EINVAL, handle))
                    else:
                        c.sendall(struct.pack(">IIQ", SIMPLE_REPLY, 0, handle) + self._read(off, length))
                elif cmd == CMD_FLUSH:
                    if self.armed is not None and self.pending() >= self.armed_min:
                        self.cut_result = self.power_loss(*self.armed)
                        self.armed = None
                        self.dead.set()
                    if self.dead.is_set():
                        return  # no power: no reply, ever
                    self.flush()
                    c.sendall(struct.pack(">IIQ", SIMPLE_REPLY, 0, handle))
                elif cmd == CMD_DISC:
                    return
                else:
                    c.sendall(struct.pack(">IIQ", SIMPLE_REPLY, EINVAL, handle))
        except (ConnectionError, OSError):
            return
        finally:
            try:
                c.close()
            except OSError:
                pass

    def close(self, keep_cache=True, keep=0.0, seed=0):
        """Stop serving (after QEMU is gone); with keep_cache the cache is
        flushed (a clean shutdown), else power_loss(keep, seed). Returns
        (sectors kept, sectors lost)."""
        self.stopped = True
        try:
            self.sock.close()
        except OSError:
            pass
        for c in self.conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in self.threads:  # nothing reaches the cache after this
            t.join(10)
        if keep_cache:
            n = self.pending()
            self.flush()
            res = (n, 0)
        else:
            res = self.power_loss(keep, seed)
        os.close(self.fd)
        try:
            os.unlink(self.path)
            os.rmdir(self.dir)
        except OSError:
            pass
        return res
