# Double fork: the grandchild leaves the session and sleeps forever; it must be dead once
# run_python returns (the runner looks for the token in every process's command line).
import os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        time.sleep(3600)
    os._exit(0)
print("parent exits")
