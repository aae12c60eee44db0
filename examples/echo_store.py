"""A WebSocket service on asyncpg that knows nothing of Sieve or OpenTelemetry.

Each text message is stored in Postgres and echoed back with the number of messages stored so far; the message
``fail`` makes the handler raise (a bug, as a service would have one). Run it plain::

    APP_DSN=postgresql://localhost/app python examples/echo_store.py

or with the whole Sieve pipeline, without changing a line::

    OTEL_SERVICE_NAME=echo-store SIEVE_PG_DSN=$APP_DSN opentelemetry-instrument python examples/echo_store.py

It listens on ``APP_PORT`` (default 8765; 0 picks a free port) and prints ``listening on ws://HOST:PORT`` once
it accepts connections. SIGTERM or Ctrl-C stops it.
"""

from __future__ import annotations

import asyncio
import json
import os

import asyncpg
from websockets.asyncio.server import ServerConnection, serve


async def main() -> None:
    pool = await asyncpg.create_pool(os.environ["APP_DSN"], min_size=1, max_size=4)
    async with pool.acquire() as conn:
        await conn.execute("CREATE TABLE IF NOT EXISTS echoes (id bigserial PRIMARY KEY, body text NOT NULL)")

    async def handler(websocket: ServerConnection) -> None:
        async for message in websocket:
            if message == "fail":
                raise RuntimeError("the handler has a bug")
            async with pool.acquire() as conn:
                await conn.execute("INSERT INTO echoes (body) VALUES ($1)", str(message))
                stored = await conn.fetchval("SELECT count(*) FROM echoes")
            await websocket.send(json.dumps({"echo": message, "stored": stored}))

    async with serve(handler, "127.0.0.1", int(os.environ.get("APP_PORT", "8765"))) as server:
        host, port = next(iter(server.sockets)).getsockname()[:2]
        print(f"listening on ws://{host}:{port}", flush=True)
        try:
            await server.serve_forever()
        finally:
            await pool.close()


if __name__ == "__main__":
    asyncio.run(main())
