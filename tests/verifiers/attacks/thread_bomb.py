# Thread bomb: threads count against the process cap too.
import threading, time
while True:
    threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
