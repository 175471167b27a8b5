"""Who may use the ROCK wire: the server's bearer token, in any header a ROCK or ROLL client can send.

``Authorization: Bearer T`` (rl-rock's ``extra_headers``), ``XRL-Authorization: Bearer T`` (ROLL's
``xrl_authorization``), ``X-Key: T``, and HTTP Basic with ``T`` as the password, which is what a
client sends for a base URL such as ``http://rock:T@127.0.0.1:8080`` (``rock.make`` sends no header
of its own, so that is the one way to give it a token).
"""

from __future__ import annotations

import base64
import binascii

from starlette.requests import HTTPConnection

from ...errors import AuthenticationError


def presented_tokens(request: HTTPConnection) -> list[str]:
    """Every token the request carries, in the order above."""
    found = []
    for name in ("authorization", "xrl-authorization"):
        scheme, _, value = request.headers.get(name, "").partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            found.append(value.strip())
        elif scheme.lower() == "basic" and value.strip():
            try:
                found.append(base64.b64decode(value.strip(), validate=True).decode().partition(":")[2])
            except (binascii.Error, UnicodeDecodeError):
                pass
    if request.headers.get("x-key"):
        found.append(request.headers["x-key"].strip())
    return found


def authorize(request: HTTPConnection, call: str) -> str:
    """The ``Authorization`` header of the token that matched (for per-token caps); else raise."""
    check = request.app.state.check_token
    for token in presented_tokens(request):
        if check(f"Bearer {token}"):
            return f"Bearer {token}"
    raise AuthenticationError(
        f"`{call}`: missing or wrong token; pass the token `rock-envs serve` printed as "
        "`extra_headers={'Authorization': 'Bearer <token>'}`, `xrl_authorization=<token>`, an `X-Key` "
        "header, or in the base URL: http://rock:<token>@127.0.0.1:<port>."
    )
