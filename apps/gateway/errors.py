"""The gateway's error envelope (shared with the management API)."""

from apps.common.errors import ApiError, from_provider_error

__all__ = ["ApiError", "from_provider_error", "drf_exception_handler"]


def drf_exception_handler(exc, context):
    """DRF's handler, with bodies in the same envelope as /v1 so clients parse one shape."""
    from rest_framework.views import exception_handler

    response = exception_handler(exc, context)
    if response is None:
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
