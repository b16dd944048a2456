"""Python-side peers for the zrs interoperability tests.

Everything here drives the real ZODB FileStorage (installed from
tests/requirements.txt) so that the tests can hold zrs to what Python does.
"""
