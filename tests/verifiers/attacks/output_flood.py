# Writes gigabytes to stdout: the parent must keep draining, cap what it keeps, and stop it.
import os
block = b"x" * (1 << 16)
while True:
    os.write(1, block)
