# Tries to kill whoever started it, and init.
import os, signal
for pid in (os.getppid(), 1):
    try:
        os.kill(pid, signal.SIGKILL)
        print("ESCAPED killed", pid)
    except OSError:
        pass
