"""The MCP Python SDK's client through Doorman's gate, driven by gate-python.test.mjs.

Starts from nothing but the gate URL (argv[1]): the SDK's OAuthClientProvider discovers Doorman,
registers, and hands this script the authorization URL, which it prints as `AUTHORIZE <url>`; the
test drives the browser step and answers `CALLBACK <url>` on stdin. Then it lists tools, calls
`echo` and `trigger-long-running-operation` (progress and result arrive as an SSE stream through
the gate) and prints `RESULT <json>`. With argv[3] `--revoked <access token>` it instead checks
that a revoked token is refused on its next call.
"""

import asyncio
import json
import sys
import time
from urllib.parse import parse_qs, urlparse

import httpx2
from mcp import Client
from mcp.client.auth import OAuthClientProvider, TokenStorage
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthToken,
)


class MemoryStorage(TokenStorage):
    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


def say(line: str) -> None:
    print(line, flush=True)


async def redirect_handler(url: str) -> None:
    say(f"AUTHORIZE {url}")


async def callback_handler() -> AuthorizationCodeResult:
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    if not line.startswith("CALLBACK "):
        raise RuntimeError(f"expected CALLBACK, got {line!r}")
    query = parse_qs(urlparse(line.split(" ", 1)[1].strip()).query)
    return AuthorizationCodeResult(
        code=query["code"][0],
        state=query.get("state", [None])[0],
        iss=query.get("iss", [None])[0],
    )


async def main() -> None:
    gate_url, redirect_uri = sys.argv[1], sys.argv[2]
    storage = MemoryStorage()
    oauth = OAuthClientProvider(
        server_url=gate_url,
        client_metadata=OAuthClientMetadata(
            client_name="Doorman interop (MCP Python SDK)",
            redirect_uris=[redirect_uri],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
    )
    async with httpx2.AsyncClient(auth=oauth, timeout=httpx2.Timeout(30, read=60)) as http:
        async with Client(streamable_http_client(gate_url, http_client=http)) as client:
            tools = await client.list_tools()
            echo = await client.call_tool("echo", {"message": "python through the gate"})
            progress: list[dict] = []

            async def on_progress(value: float, total: float | None, message: str | None) -> None:
                progress.append({"progress": value, "at": time.time()})

            result = await client.call_tool(
                "trigger-long-running-operation",
                {"duration": 1.5, "steps": 3},
                progress_callback=on_progress,
            )
            done = time.time()
            access_token = storage.tokens.access_token if storage.tokens else None
            say(
                "RESULT "
                + json.dumps(
                    {
                        "tools": [t.name for t in tools.tools],
                        "echo": echo.content[0].text,
                        "progress": [p["progress"] for p in progress],
                        "first_progress_before_result_ms": round((done - progress[0]["at"]) * 1000)
                        if progress
                        else None,
                        "result": result.content[0].text,
                        "scope": storage.tokens.scope if storage.tokens else None,
                        "client_id": storage.client_info.client_id if storage.client_info else None,
                        "refresh_token": storage.tokens.refresh_token if storage.tokens else None,
                        "access_token": access_token,
                    }
                )
            )
            # Wait for the test to revoke the tokens, then call again: refused, so the SDK must
            # authorize again (it asks for the browser, which the test reports).
            line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
            if line.strip() == "REVOKED":
                try:
                    await asyncio.wait_for(client.list_tools(cache_mode="bypass"), timeout=10)
                    say("AFTER-REVOKE answered")
                except BaseException as e:  # noqa: BLE001 - any refusal is what we report
                    say(f"AFTER-REVOKE refused {type(e).__name__}")


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except BaseException as e:  # noqa: BLE001
        say(f"ERROR {type(e).__name__}: {e}")
        raise
