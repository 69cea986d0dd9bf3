"""A TCP proxy that adds a fixed delay each way, so loopback behaves like a link between regions.

Every chunk is forwarded `delay` seconds after it arrived (in order, pipelined: a stream of chunks is delayed, not
slowed down), and the first bytes of each connection one round trip later still, as a TCP handshake would cost them.
Bandwidth, loss and slow start are not modelled. Run as a process of its own (`DelayProxy(...).start()`), so its
work does not share an interpreter with what is measured.

    python tests/bench/latency_proxy.py LISTEN_PORT TARGET_PORT DELAY_SECONDS
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

CHUNK = 65536


async def _forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float,
                   first_due: float) -> None:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes | None]] = asyncio.Queue()

    async def send() -> None:
        while True:
            due, data = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if data is None:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()

    sender = asyncio.create_task(send())
    try:
        while data := await reader.read(CHUNK):
            queue.put_nowait((max(loop.time() + delay, first_due), data))
        queue.put_nowait((loop.time() + delay, None))
        await sender
    except (ConnectionError, OSError):
        sender.cancel()


async def _serve(listen: int, target: int, delay: float) -> None:
    async def connection(creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        accepted = loop.time()
        try:
            sreader, swriter = await asyncio.open_connection("127.0.0.1", target)
        except OSError:
            cwriter.close()
            return
        # client -> server: its first bytes leave after the handshake's round trip (SYN, SYN-ACK), then one way
        await asyncio.gather(_forward(creader, swriter, delay, accepted + 3 * delay),
                             _forward(sreader, cwriter, delay, 0.0), return_exceptions=True)
        for w in (swriter, cwriter):
            w.close()

    server = await asyncio.start_server(connection, "127.0.0.1", listen)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


class DelayProxy:
    """The proxy as a process: 127.0.0.1:listen -> 127.0.0.1:target, delay seconds each way."""

    def __init__(self, listen: int, target: int, delay: float) -> None:
        self.listen, self.target, self.delay = listen, target, delay
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> DelayProxy:
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__)), str(self.listen), str(self.target),
                                      str(self.delay)], stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "ready"
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)


if __name__ == "__main__":
    asyncio.run(_serve(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])))
