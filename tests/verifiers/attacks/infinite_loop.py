# Burns CPU forever: the CPU rlimit (or the wall clock) must end it.
while True:
    pass
