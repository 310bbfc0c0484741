"""FastMCP's own client (PyPI `fastmcp`, unmodified but for where it sends the person): discovers
Doorman from the MCP server's 401, registers, authorizes (PKCE, resource), calls a tool, waits
until its access token has expired, and calls again, which makes it refresh.

    python client.py http://127.0.0.1:8123/mcp WAIT_SECONDS

Prints one JSON object per line: {"authorize": url} when the person must be sent to Doorman (the
node test plays the browser and delivers the code to the client's callback), then
{"call": 1, "result": …, "access_token": …, "refresh_token": …} after each call."""

import asyncio
import json
import sys

from fastmcp import Client
from fastmcp.client.auth import OAuth


class TestOAuth(OAuth):
    """FastMCP's OAuth, with the browser replaced by the test: the URL goes to stdout."""

    authorizations = 0

    async def redirect_handler(self, authorization_url: str) -> None:
        TestOAuth.authorizations += 1
        print(json.dumps({"authorize": authorization_url}), flush=True)


async def main(url: str, wait: float) -> None:
    oauth = TestOAuth(
        scopes=["mcp", "offline_access"],
        client_name="FastMCP interop client",
        callback_host="127.0.0.1",
        callback_timeout=60,
    )
    async with Client(url, auth=oauth) as client:
        for call in (1, 2):
            if call == 2:
                await asyncio.sleep(wait)
            result = await client.call_tool("add", {"a": 2, "b": call})
            tokens = oauth.context.current_tokens
            print(
                json.dumps(
                    {
                        "call": call,
                        "result": result.data,
                        "access_token": tokens.access_token if tokens else None,
                        "refresh_token": tokens.refresh_token if tokens else None,
                        "authorizations": TestOAuth.authorizations,
                    }
                ),
                flush=True,
            )


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], float(sys.argv[2])))
