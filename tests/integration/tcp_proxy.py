"""A loopback TCP proxy that can freeze: stop forwarding without closing (a network that went
away silently, no FIN, no RST). Runs its own asyncio loop in a thread so sync tests can use it."""

from __future__ import annotations

import asyncio
import threading

__all__ = ["FreezableProxy"]


class FreezableProxy:
    """``127.0.0.1:<port>`` → ``target``. ``freeze()`` stalls every open connection for good;
        connections made after it pass again (a node whose network came back). ``cut()`` freezes
        and also stalls every new connection (accepted, never answered: a blackhole) until
        ``heal()``. ``pause()`` holds every byte in flight until ``resume()`` and then forwards it
    on the same connections (a short cut that TCP retransmission survives, as an iptables DROP)."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.connections = 0
        self._frozen: list[asyncio.Event] = []
        self._healed: asyncio.Event | None = None
        self._resumed: asyncio.Event | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="freezable-proxy", daemon=True
        )

    def start(self) -> FreezableProxy:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._accept, "127.0.0.1", 0), self._loop
        ).result(10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def freeze(self) -> None:
        """Stop forwarding on every open connection; sockets stay open and unread."""

        def go() -> None:
            for ev in self._frozen:
                ev.set()

        self._loop.call_soon_threadsafe(go)

    def cut(self) -> None:
        """A network cut: open connections freeze, new ones hang (no SYN-ACK from the far end)."""

        def go() -> None:
            self._healed = asyncio.Event()
            for ev in self._frozen:
                ev.set()

        self._loop.call_soon_threadsafe(go)

    def heal(self) -> None:
        """The network is back: new connections pass again (frozen ones stay dead)."""

        def go() -> None:
            if self._healed is not None:
                self._healed.set()
                self._healed = None

        self._loop.call_soon_threadsafe(go)

    def pause(self) -> None:
        """Forward nothing, close nothing: bytes wait in the proxy until ``resume()``."""

        def go() -> None:
            self._resumed = self._resumed or asyncio.Event()

        self._loop.call_soon_threadsafe(go)

    def resume(self) -> None:
        """Forward what waited, in order, on the connections that were open."""

        def go() -> None:
            if self._resumed is not None:
                self._resumed.set()
                self._resumed = None

        self._loop.call_soon_threadsafe(go)

    def close(self) -> None:
        async def shut() -> None:
            if self._server:
                self._server.close()
            for w in self._writers:
                w.transport.abort()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shut(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        if self._healed is not None:  # cut: hold the connection, forward nothing until healed
            self._writers.append(writer)
            await self._healed.wait()
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        frozen = asyncio.Event()
        self._frozen.append(frozen)
        self._writers += [writer, up_writer]
        await asyncio.gather(
            self._pump(reader, up_writer, frozen), self._pump(up_reader, writer, frozen)
        )

    async def _pump(
        self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, frozen: asyncio.Event
    ) -> None:
        while not frozen.is_set():
            read = asyncio.ensure_future(src.read(65536))
            stop = asyncio.ensure_future(frozen.wait())
            await asyncio.wait({read, stop}, return_when=asyncio.FIRST_COMPLETED)
            if frozen.is_set():
                read.cancel()
                stop.cancel()
                break
            stop.cancel()
            data = read.result()
            if not data:
                dst.close()
                return
            while self._resumed is not None:
                await self._resumed.wait()
            dst.write(data)
            await dst.drain()
        await asyncio.Event().wait()  # frozen: hold both sockets open, forward nothing, forever
