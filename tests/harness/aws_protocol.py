"""How AWS calls look on the wire, and how their answers and errors are written.

IAM and STS speak the awsQuery protocol: a form-encoded POST with `Action=...`, answered
with XML. CloudTrail speaks awsJson1_1: the operation is in the `X-Amz-Target` header and
both ways are JSON. The service and the region come from the SigV4 credential scope of
the `Authorization` header (`Credential=KEY/DATE/REGION/SERVICE/aws4_request`);
signatures themselves are not checked.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

from werkzeug.wrappers import Request, Response

QUERY_NAMESPACES = {
    "iam": "https://iam.amazonaws.com/doc/2010-05-08/",
    "sts": "https://sts.amazonaws.com/doc/2011-06-15/",
}
JSON_CONTENT_TYPE = "application/x-amz-json-1.1"

_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/,\s]+/\d{8}/([^/]+)/([^/]+)/aws4_request")


@dataclass(frozen=True)
class AwsCall:
    """One AWS operation as received: who it is for and what it asks.

    `params` holds the form parameters of an awsQuery call; `json_body` the request
    document of an awsJson call (None for awsQuery).
    """

    service: str
    operation: str
    region: str
    params: dict[str, str]
    json_body: dict[str, Any] | None

    @property
    def name(self) -> str:
        """The `service:Operation` key under which calls are counted."""
        return f"{self.service}:{self.operation}"


def parse_call(request: Request, body: bytes) -> AwsCall | None:
    """Recognises a signed AWS call; None for anything else (left to moto)."""
    scope = _CREDENTIAL_SCOPE.search(request.headers.get("Authorization", ""))
    if scope is None:
        return None
    region, service = scope.group(1), scope.group(2)

    target = request.headers.get("X-Amz-Target")
    if target:
        operation = target.rsplit(".", 1)[-1]
        return AwsCall(service, operation, region, {}, _json_object(body))

    params = {key: values[0] for key, values in parse_qs(request.query_string.decode()).items()}
    if request.mimetype == "application/x-www-form-urlencoded":
        params.update({k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()})
    if "Action" not in params:
        return None
    return AwsCall(service, params["Action"], region, params, None)


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body or b"{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def new_request_id() -> str:
    """A request id shaped like AWS's."""
    return str(uuid.uuid4())


def query_response(call: AwsCall, result_xml: str) -> Response:
    """An awsQuery success document: `<OpResponse><OpResult>...</OpResult>...`."""
    request_id = new_request_id()
    operation = call.operation
    body = (
        f'<{operation}Response xmlns="{QUERY_NAMESPACES[call.service]}">'
        f"<{operation}Result>{result_xml}</{operation}Result>"
        f"<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata>"
        f"</{operation}Response>"
    )
    return Response(body, 200, {"x-amzn-RequestId": request_id}, content_type="text/xml")


def query_error(service: str, code: str, message: str, status: int) -> Response:
    """An awsQuery error document, as IAM and STS write it."""
    request_id = new_request_id()
    # AWS marks client errors Sender and its own failures Receiver.
    fault_type = "Sender" if status < 500 else "Receiver"
    namespace = QUERY_NAMESPACES.get(service, QUERY_NAMESPACES["iam"])
    body = (
        f'<ErrorResponse xmlns="{namespace}">'
        f"<Error><Type>{fault_type}</Type><Code>{escape(code)}</Code>"
        f"<Message>{escape(message)}</Message></Error>"
        f"<RequestId>{request_id}</RequestId></ErrorResponse>"
    )
    return Response(body, status, {"x-amzn-RequestId": request_id}, content_type="text/xml")


def json_response(payload: dict[str, Any]) -> Response:
    """An awsJson1_1 success answer."""
    return Response(
        json.dumps(payload),
        200,
        {"x-amzn-RequestId": new_request_id()},
        content_type=JSON_CONTENT_TYPE,
    )


def json_error(code: str, message: str, status: int) -> Response:
    """An awsJson1_1 error: `__type` in the body and `x-amzn-ErrorType` in a header."""
    return Response(
        json.dumps({"__type": code, "message": message}),
        status,
        {"x-amzn-RequestId": new_request_id(), "x-amzn-ErrorType": code},
        content_type=JSON_CONTENT_TYPE,
    )


def error_response(call: AwsCall, code: str, message: str, status: int) -> Response:
    """An error in the protocol the call was made in."""
    if call.json_body is not None:
        return json_error(code, message, status)
    return query_error(call.service, code, message, status)
