#!/usr/bin/env python3
"""A long link between a client and a server on loopback: a TCP proxy that gives every
connection a round-trip time and a window, as a real path and a real TCP stack would.

    bench/link.py --to 127.0.0.1:8787 --rtt 80ms --window 256KiB [--rate 50MB] [--loss 0.001]

Loopback has no latency, so every client looks equally fast there. Through a real path, one TCP
connection moves at most one window of unacknowledged bytes per round trip: its throughput is
`window / RTT` (256 KiB over 80 ms is 3.3 MB/s), whatever the bandwidth. That is what makes the
number of connections (or parts in flight) matter, and what this emulates:

- **RTT**: each chunk is delivered half an RTT after the proxy reads it, and counts against the
  sender's window until its acknowledgement would come back, another half RTT later.
- **Window**: per connection and direction, at most `--window` bytes in flight; the proxy stops
  reading from the sender until acknowledgements free room, so the sender's socket fills and
  the sender blocks, as with a full TCP window.
- **Handshake**: a new connection pays one RTT before its first byte moves (SYN, SYN-ACK).
- **Bandwidth** (`--rate`, optional): one bottleneck shared by all connections in each
  direction; chunks queue for it in arrival order.
- **Loss-like stalls** (`--loss P`, optional): each chunk is held back by a retransmission
  timeout (`--rto`, default max(200 ms, 2 RTT)) with probability P, and the chunks behind it in
  that connection wait too (TCP delivers in order).

Python standard library only; one asyncio thread. As a module, `Link(...).start()` runs it on a
background thread for bench/run and returns the port it listens on.
"""

import argparse
import asyncio
import random
import re
import sys
import threading
from collections import deque

CHUNK = 64 * 1024


def parse_duration(text):
    """`80ms`, `0.2s`, or plain seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s)?\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (try 80ms)")
    value = float(m.group(1))
    return value / 1000 if m.group(2) == "ms" else value


def parse_bytes(text):
    """`256KiB`, `1MiB`, `50MB` (decimal), or plain bytes."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(|K|Ki|M|Mi|G|Gi)B?\s*", text, re.I)
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (try 256KiB)")
    unit = m.group(2).lower()
    scale = {"": 1, "k": 1e3, "ki": 1 << 10, "m": 1e6, "mi": 1 << 20, "g": 1e9, "gi": 1 << 30}[unit]
    return int(float(m.group(1)) * scale)


class Bottleneck:
    """One direction's shared bandwidth: the time at which it is next free."""

    def __init__(self, rate):
        self.rate = rate
        self.free_at = 0.0

    def transmit(self, now, size):
        """When `size` bytes arriving `now` have gone through it."""
        if not self.rate:
            return now
        self.free_at = max(now, self.free_at) + size / self.rate
        return self.free_at


class Link:
    def __init__(self, to, rtt, window, rate=None, loss=0.0, rto=None, listen="127.0.0.1:0", seed=None):
        host, port = to.rsplit(":", 1)
        self.to = (host, int(port))
        lhost, lport = listen.rsplit(":", 1)
        self.listen = (lhost, int(lport))
        self.rtt = rtt
        self.window = window
        self.loss = loss
        self.rto = rto if rto is not None else max(0.2, 2 * rtt)
        self.random = random.Random(seed)
        self.up = Bottleneck(rate)
        self.down = Bottleneck(rate)
        self.connections = 0
        self.bytes_up = 0
        self.bytes_down = 0
        self.stalls = 0
        self.port = None
        self._loop = None
        self._server = None
        self._thread = None

    # --- running it ---------------------------------------------------------------------

    def start(self):
        """Serves on a background thread; returns the port it listens on."""
        ready = threading.Event()

        def run():
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self._open())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="link", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the link emulator did not start")
        return self.port

    def stop(self):
        if self._loop is None:
            return

        async def close():
            self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop = None

    async def _open(self):
        self._server = await asyncio.start_server(self._accept, *self.listen)
        self.port = self._server.sockets[0].getsockname()[1]

    # --- one connection -----------------------------------------------------------------

    async def _accept(self, client_reader, client_writer):
        self.connections += 1
        try:
            await asyncio.sleep(self.rtt)  # the handshake
            server_reader, server_writer = await asyncio.open_connection(*self.to)
        except (OSError, asyncio.CancelledError):
            client_writer.close()
            return
        up = asyncio.ensure_future(self._pipe(client_reader, server_writer, self.up, "bytes_up"))
        down = asyncio.ensure_future(self._pipe(server_reader, client_writer, self.down, "bytes_down"))
        try:
            await asyncio.gather(up, down)
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            for task in (up, down):
                task.cancel()
            for writer in (client_writer, server_writer):
                writer.close()

    async def _pipe(self, reader, writer, bottleneck, counter):
        """One direction of one connection: reads while the window has room, delivers each
        chunk half an RTT later (in order), and frees its window half an RTT after that."""
        loop = asyncio.get_running_loop()
        in_flight = 0
        room = asyncio.Event()
        room.set()
        queue = deque()
        queued = asyncio.Event()
        eof = False

        def acked(size):
            nonlocal in_flight
            in_flight -= size
            if in_flight < self.window:
                room.set()

        async def deliver():
            while True:
                while not queue:
                    if eof:
                        return
                    queued.clear()
                    await queued.wait()
                at, data = queue.popleft()
                delay = at - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                if data is None:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()
                loop.call_later(self.rtt / 2, acked, len(data))

        delivering = asyncio.ensure_future(deliver())
        try:
            last_at = 0.0
            while True:
                await room.wait()
                data = await reader.read(min(CHUNK, self.window - in_flight))
                now = loop.time()
                if not data:
                    eof = True
                    queue.append((max(now + self.rtt / 2, last_at), None))
                    queued.set()
                    break
                in_flight += len(data)
                if in_flight >= self.window:
                    room.clear()
                setattr(self, counter, getattr(self, counter) + len(data))
                at = bottleneck.transmit(now, len(data)) + self.rtt / 2
                if self.loss and self.random.random() < self.loss:
                    self.stalls += 1
                    at += self.rto
                last_at = max(at, last_at)  # in order: nothing overtakes a stalled chunk
                queue.append((last_at, data))
                queued.set()
            await delivering
        finally:
            delivering.cancel()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--to", required=True, help="the server, HOST:PORT")
    parser.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT (default: a free port)")
    parser.add_argument("--rtt", type=parse_duration, default=parse_duration("80ms"))
    parser.add_argument("--window", type=parse_bytes, default=parse_bytes("256KiB"))
    parser.add_argument("--rate", type=parse_bytes, default=None, help="shared bandwidth per direction, bytes/s")
    parser.add_argument("--loss", type=float, default=0.0, help="probability a chunk stalls for --rto")
    parser.add_argument("--rto", type=parse_duration, default=None)
    args = parser.parse_args()
    link = Link(args.to, args.rtt, args.window, args.rate, args.loss, args.rto, args.listen)

    async def run():
        await link._open()
        print(f"listening on {link.listen[0]}:{link.port}", flush=True)
        async with link._server:
            await link._server.serve_forever()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
    print(
        f"{link.connections} connections, {link.bytes_up} bytes up, {link.bytes_down} down, {link.stalls} stalls",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
