"""The real zc.zrs 3.1.0 as a test peer.

primary.py and secondary.py run under .venv-zrs/bin/python (zc.zrs needs
ZODB < 5.6); driver.py runs in the main test venv and drives them as
subprocesses through their stdin/stdout commands.
"""
