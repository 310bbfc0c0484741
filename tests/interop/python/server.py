"""A FastMCP server (PyPI `fastmcp`, unmodified) that takes Doorman as its authorization server:
RemoteAuthProvider, with JWTVerifier against Doorman's JWKS, or IntrospectionTokenVerifier
against Doorman's /introspect (a resource-server client the operator registered).

    python server.py --port 8123 --issuer http://127.0.0.1:8080 --verifier jwt
    python server.py --port 8123 --issuer … --verifier introspection --client-id … --client-secret …

The MCP endpoint is http://127.0.0.1:PORT/mcp, which is also the resource (the audience)."""

import argparse

from fastmcp import FastMCP
from fastmcp.server.auth import RemoteAuthProvider
from fastmcp.server.auth.providers.introspection import IntrospectionTokenVerifier
from fastmcp.server.auth.providers.jwt import JWTVerifier
from fastmcp.server.dependencies import get_access_token

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--issuer", required=True)
parser.add_argument("--verifier", choices=["jwt", "introspection"], required=True)
parser.add_argument("--client-id")
parser.add_argument("--client-secret")
args = parser.parse_args()

base_url = f"http://127.0.0.1:{args.port}"
resource = f"{base_url}/mcp"
if args.verifier == "jwt":
    verifier = JWTVerifier(
        jwks_uri=f"{args.issuer}/jwks.json",
        issuer=args.issuer,
        audience=resource,
        algorithm="ES256",
        required_scopes=["mcp"],
    )
else:
    verifier = IntrospectionTokenVerifier(
        introspection_url=f"{args.issuer}/introspect",
        client_id=args.client_id,
        client_secret=args.client_secret,
        audience=resource,
        required_scopes=["mcp"],
    )

auth = RemoteAuthProvider(
    token_verifier=verifier,
    authorization_servers=[args.issuer],
    base_url=base_url,
    scopes_supported=["mcp", "offline_access"],
)
mcp = FastMCP("doorman-interop", auth=auth)


@mcp.tool
def whoami() -> str:
    """Who the access token says the caller is."""
    token = get_access_token()
    return f"{token.client_id if token else None}"


@mcp.tool
def add(a: int, b: int) -> int:
    """Adds two numbers."""
    return a + b


if __name__ == "__main__":
    print(f"listening {resource}", flush=True)
    mcp.run(transport="http", host="127.0.0.1", port=args.port, show_banner=False)
