"""What Colab raises when a request to the browser fails (e.g. the user declines Drive)."""


class MessageError(RuntimeError):
    """A failed request to the Colab frontend."""
