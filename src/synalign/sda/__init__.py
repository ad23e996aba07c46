"""Stage 3, distribution alignment (SDA): MMD weights that match synthetic to real."""
