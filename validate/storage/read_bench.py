#!/usr/bin/env python3
"""Random-read throughput of a host's local storage as a function of request size and of
parallel reads: the measured table a flash or SSD tier of an einsim architecture needs
(`read_table`, docs/FORMATS.md). Python and the standard library only.

    python3 validate/storage/read_bench.py OUTDIR [DIR]

creates an 8 GiB file in DIR (default: the current directory), reads it with O_DIRECT (the
page cache bypassed) at request sizes 4 KiB-16 MiB with 1-32 threads, each for about 1.5 s,
and writes OUTDIR/read_bench.csv (request_bytes, threads, bytes, seconds, bandwidth_bytes_per_s,
iops) and OUTDIR/storage_meta.txt (device, filesystem, date, command). The file is removed.
"""
import datetime
import mmap
import os
import random
import subprocess
import sys
import threading
import time

SIZE = 8 << 30


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=30).stdout.strip()
    except Exception as e:  # noqa: BLE001 - metadata is best effort
        return f"unavailable ({e})"


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: read_bench.py OUTDIR [DIR]")
    out, where = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else ".")
    os.makedirs(out, exist_ok=True)
    path = os.path.join(where, "einsim-read-bench.bin")
    with open(os.path.join(out, "storage_meta.txt"), "w") as f:
        f.write(f"date: {datetime.datetime.now(datetime.timezone.utc).isoformat()}\n")
        f.write(f"command: python3 validate/storage/read_bench.py OUTDIR {where}\n")
        f.write(f"file: {os.path.abspath(path)}\n")
        f.write(f"df: {sh(f'df -hT {where} | tail -1')}\n")
        f.write(f"lsblk:\n{sh('lsblk -o NAME,MODEL,SIZE,ROTA,TYPE,MOUNTPOINT')}\n")
        f.write(f"cpus: {os.cpu_count()}\n")
    # Write the file once, in 64 MiB blocks of random bytes (reused: compression-proof enough).
    block = os.urandom(64 << 20)
    t0 = time.time()
    with open(path, "wb") as f:
        for _ in range(SIZE // len(block)):
            f.write(block)
        f.flush()
        os.fsync(f.fileno())
    print(f"wrote {SIZE >> 30} GiB in {time.time() - t0:.1f} s", flush=True)
    direct = True
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
        buf = mmap.mmap(-1, 1 << 20)
        os.preadv(fd, [buf], 0)
        os.close(fd)
    except OSError as e:
        direct = False
        print(f"O_DIRECT unavailable ({e}); buffered reads after POSIX_FADV_DONTNEED", flush=True)
    with open(os.path.join(out, "storage_meta.txt"), "a") as f:
        f.write(f"o_direct: {direct}\n")

    rows = []
    for size in (4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20, 16 << 20):
        for threads in (1, 4, 16, 32):
            done = [0] * threads
            stop = time.time() + 1.5

            def worker(i):
                flags = os.O_RDONLY | (os.O_DIRECT if direct else 0)
                fd = os.open(path, flags)
                if not direct:
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                buf = mmap.mmap(-1, size)
                rng = random.Random(i * 7919 + size)
                slots = SIZE // size
                while time.time() < stop:
                    off = rng.randrange(slots) * size
                    done[i] += os.preadv(fd, [buf], off)
                os.close(fd)

            ts = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
            t0 = time.time()
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            dt = time.time() - t0
            total = sum(done)
            rows.append((size, threads, total, dt, total / dt, total / size / dt))
            print(f"{size:>9} B x {threads:>2} threads: {total / dt / 1e9:7.3f} GB/s {total / size / dt:10.0f} IOPS", flush=True)
    os.remove(path)
    with open(os.path.join(out, "read_bench.csv"), "w") as f:
        f.write("request_bytes,threads,bytes,seconds,bandwidth_bytes_per_s,iops\n")
        for r in rows:
            f.write(",".join(str(x) for x in r) + "\n")


if __name__ == "__main__":
    main()
