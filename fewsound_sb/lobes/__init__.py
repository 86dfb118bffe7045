"""Sound encoders E that map raw audio to an embedding (see ``encoders.py``)."""
