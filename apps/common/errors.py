"""One error type for the API, one place that turns it into the OpenAI error envelope."""

import orjson

TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    502: "upstream_error",
    503: "service_unavailable",
    504: "timeout_error",
}


class ApiError(Exception):
    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None, headers=None,
                 type_: str | None = None):
        super().__init__(message)
        self.type = type_ or TYPES.get(status, "api_error")  # OpenAI's own where it differs (insufficient_quota)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def to_json(self) -> bytes:
        return orjson.dumps(self.body())


def from_provider_error(exc) -> ApiError:
    """A ProviderError as the client sees it: the provider's message, our status."""
    headers = {}
    if exc.retry_after:
        headers["retry-after"] = str(int(exc.retry_after + 0.999))
    code = exc.kind if exc.kind not in ("upstream_error",) else None
    param = getattr(exc, "param", None)
    return ApiError(exc.status, exc.message, code=code, param=param, headers=headers)


def drf_exception_handler(exc, context):
    """DRF's handler (the management API), with bodies in the same envelope as /v1 so clients parse one shape."""
    from django.db import InterfaceError, OperationalError
    from rest_framework.views import exception_handler

    response = exception_handler(exc, context)
    if response is None:
        if isinstance(exc, (OperationalError, InterfaceError)):  # the database is unreachable: retry, not a bug
            from rest_framework.response import Response

            error = ApiError(503, "The database is unreachable right now; retry shortly.", code="service_unavailable")
            return Response(error.body(), status=503, headers={"Retry-After": "5"})
        return None
    detail = response.data
    param = None
    if isinstance(detail, dict) and "detail" in detail:
        message = str(detail["detail"])
    elif isinstance(detail, dict) and detail:
        param = next(iter(detail))
        value = detail[param]
        message = f"{param}: {value[0] if isinstance(value, list) and value else value}"
    else:
        message = str(detail)
    response.data = ApiError(response.status_code, message, param=param).body()
    return response
