"""No HTTP pages: the peer is its WebSocket."""

urlpatterns = []
