"""The web console: server-rendered pages over ``dispatch`` (transport ``web``), a stylesheet and a small script."""
