from django.urls import path

from .consumers import ChatStreamConsumer

websocket_urlpatterns = [path("v1/realtime/chat", ChatStreamConsumer.as_asgi())]
