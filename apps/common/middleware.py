"""Django middleware of the floor."""

from .client_address import client_address
from .request_id import REQUEST_ID, new_request_id


class RequestIdMiddleware:
    """A fresh id for each request outside /v1 (the portal, the admin, the management API): on every log
    line written while serving it (apps.common.request_id) and in the answer's X-Request-ID, so a
    user's report ("it failed, id …") finds its lines. Never taken from the client: ids are ours."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request_id = new_request_id()
        # Not reset on the way out: Django logs a 4xx or 5xx after the middleware returns, and each ASGI
        # request runs in a task of its own, so the id ends with it.
        REQUEST_ID.set(request_id)
        response = self.get_response(request)
        response["X-Request-ID"] = request_id
        return response


class ClientAddressMiddleware:
    """request.client_address: the resolver's answer (apps.common.client_address), for whatever checks
    or records addresses (the key allow-list on the management API, the portal's login lock-out)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.client_address = client_address(request.META.get("REMOTE_ADDR"),
                                                 request.META.get("HTTP_X_FORWARDED_FOR"))
        return self.get_response(request)
