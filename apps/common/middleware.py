"""Django middleware of the floor."""

from .client_address import client_address


class ClientAddressMiddleware:
    """request.client_address: the resolver's answer (apps.common.client_address), for whatever checks
    or records addresses (the key allow-list on the management API, the portal's login lock-out)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.client_address = client_address(request.META.get("REMOTE_ADDR"),
                                                 request.META.get("HTTP_X_FORWARDED_FOR"))
        return self.get_response(request)
