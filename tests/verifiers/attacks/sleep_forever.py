# Uses no CPU, so only the parent's wall clock can stop it.
import time
time.sleep(3600)
