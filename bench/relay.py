"""A TCP relay on loopback that adds network latency: what a cold start's first Decrypt waits for on AWS.

On LocalStack over loopback the first Decrypt waits for no network at all, so a prefetch has nothing to hide.
The relay forwards bytes to LocalStack unchanged (TLS passes through it, verified end to end) and delays them:
the upstream connection opens one round trip after the client's (the TCP handshake), and every chunk, in each
direction, is delivered ``one_way_s`` after it arrived (pipelined: delays do not add up within a burst).
A new connection + TLS 1.3 + one request therefore waits three round trips, a reused connection one.

Stdlib only, asyncio in one daemon thread. Bounded: at most ``max_connections`` at once (more are closed
unanswered), a bounded queue per direction, an idle timeout per connection, and a lifetime after which it
stops by itself, even if nobody calls ``stop``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

_CHUNK = 65536
_EOF = b""


class LatencyRelay:
    def __init__(self, upstream_port: int, one_way_s: float, *, max_connections: int = 32,
                 idle_timeout_s: float = 60.0, lifetime_s: float = 3600.0) -> None:
        self.upstream_port, self.one_way_s = upstream_port, one_way_s
        self.max_connections, self.idle_timeout_s, self.lifetime_s = max_connections, idle_timeout_s, lifetime_s
        self.port = 0
        self.connections = 0  # accepted and relayed, over the relay's life
        self.refused = 0  # over max_connections, or LocalStack refused
        self._open = 0
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="latency-relay", daemon=True)

    def __enter__(self) -> LatencyRelay:
        return self.start()

    def start(self) -> LatencyRelay:
        self._thread.start()
        if not self._ready.wait(10) or self._error or not self.port:
            raise RuntimeError(f"the latency relay did not start: {self._error!r}")
        return self

    def __exit__(self, *_: Any) -> None:
        self.stop()

    def stop(self) -> None:
        if self._loop and self._stopped and not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(self._stopped.set)
            except RuntimeError:  # the loop closed meanwhile (its lifetime ran out)
                pass
        self._thread.join(10)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as error:  # reported by __enter__ if it happens at start
            self._error = error
            self._ready.set()

    async def _serve(self) -> None:
        self._loop, self._stopped = asyncio.get_running_loop(), asyncio.Event()
        server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            await asyncio.wait_for(self._stopped.wait(), self.lifetime_s)
        except asyncio.TimeoutError:
            pass  # the lifetime ran out: stop by ourselves
        finally:
            server.close()
            for task in asyncio.all_tasks() - {asyncio.current_task()}:
                task.cancel()

    async def _relay(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        if self._open >= self.max_connections:
            self.refused += 1
            client_writer.close()
            return
        self._open += 1
        try:
            await asyncio.sleep(2 * self.one_way_s)  # SYN, SYN-ACK: the client's bytes leave one round trip later
            try:
                upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
            except OSError:
                self.refused += 1
                return
            self.connections += 1
            try:
                await asyncio.gather(self._pipe(client_reader, upstream_writer),
                                     self._pipe(upstream_reader, client_writer))
            finally:
                upstream_writer.close()
        finally:
            self._open -= 1
            client_writer.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Read chunks as they come; deliver each one_way_s after it arrived, in order."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(maxsize=256)

        async def read() -> None:
            try:
                while chunk := await asyncio.wait_for(reader.read(_CHUNK), self.idle_timeout_s):
                    await queue.put((time.monotonic() + self.one_way_s, chunk))
            except (OSError, asyncio.TimeoutError):
                pass
            await queue.put((time.monotonic() + self.one_way_s, _EOF))

        async def deliver() -> None:
            broken = False  # the far side went away: keep draining the queue so that read() never blocks
            while True:
                due, chunk = await queue.get()
                if broken:
                    if chunk == _EOF:
                        return
                    continue
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                try:
                    if chunk == _EOF:
                        if writer.can_write_eof():
                            writer.write_eof()
                        return
                    writer.write(chunk)
                    await writer.drain()
                except OSError:
                    broken = True

        await asyncio.gather(read(), deliver())
