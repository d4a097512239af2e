"""The Slack adapter: bolt wiring (app.py), pure conversion (convert.py) and rendering (render.py).

Only this package imports slack_bolt / slack_sdk. ``server.py`` serves HTTP for ``supportbot
serve``; ``socket_mode.py`` runs ``supportbot run slack --socket-mode``.
"""
