"""WebSocket URL patterns (xrouter_project/asgi.py routes the `websocket` scope here)."""

from django.urls import path

from .consumers import realtime_chat

websocket_urlpatterns = [path("v1/realtime/chat", realtime_chat)]
