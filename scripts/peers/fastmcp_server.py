"""A peer for scripts/bench --peers: FastMCP (PyPI `fastmcp`, the version pinned in
tests/interop/requirements.txt) as its own authorization server, on loopback.

    tests/interop/.venv/bin/python scripts/peers/fastmcp_server.py --port 8123 [--log-level warning]

The store is FastMCP's InMemoryOAuthProvider: /.well-known/oauth-authorization-server,
/register (dynamic registration on), /authorize, /token. Its /authorize issues a code at once
(no person, no consent page), so a pool of codes is collected by plain GETs. The /authorize
route is FastMCP's own AuthorizationHandler (fastmcp.server.auth.handlers.authorize), mounted
here exactly as FastMCP's OAuthProxy mounts it: the SDK's handler alone answers an unknown
client with the same small JSON whatever the Accept header; FastMCP's adds the HTML page for
browsers and the registration hints for clients, the answer this comparison is about.

One process, one event loop: the in-memory store cannot be shared between worker processes.
uvicorn logs at --log-level (default info: an access line per request); FastMCP's own log level
is FASTMCP_LOG_LEVEL (default INFO: a Rich-formatted line for each unregistered client)."""

import argparse

import uvicorn
from fastmcp import FastMCP
from fastmcp.server.auth.handlers.authorize import AuthorizationHandler
from fastmcp.server.auth.providers.in_memory import InMemoryOAuthProvider
from mcp.server.auth.settings import ClientRegistrationOptions
from starlette.routing import Route


class Provider(InMemoryOAuthProvider):
    """InMemoryOAuthProvider with FastMCP's AuthorizationHandler on /authorize (as OAuthProxy)."""

    def get_routes(self, mcp_path=None):
        routes = []
        for route in super().get_routes(mcp_path):
            if isinstance(route, Route) and route.path == "/authorize":
                handler = AuthorizationHandler(provider=self, base_url=self.base_url, issuer_url=self.issuer_url)
                route = Route(path="/authorize", endpoint=handler.handle, methods=["GET", "POST"])
            routes.append(route)
        return routes


parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--log-level", default="info")
args = parser.parse_args()

auth = Provider(
    base_url=f"http://127.0.0.1:{args.port}",
    client_registration_options=ClientRegistrationOptions(enabled=True),
)
mcp = FastMCP("doorman-bench-peer", auth=auth)


@mcp.tool
def echo(message: str) -> str:
    """Echoes the message (the server has something to protect)."""
    return message


uvicorn.run(mcp.http_app(path="/mcp"), host="127.0.0.1", port=args.port, log_level=args.log_level)
