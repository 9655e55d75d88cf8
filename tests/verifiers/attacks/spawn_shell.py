# Tries to start other programs: a shell through subprocess, os.system, posix_spawn, and
# libc's execv through ctypes in a forked child (no audit hook sees that one); and looks for
# any program besides the interpreter. The shell would print the marker; the commands only
# spell it apart, so an error message that quotes them does not.
import os, subprocess, sys

SAY = "printf '%s%s %s\\n' ESC APED "


def attempt(how, run):
    try:
        run()
    except Exception as e:
        print("refused", how, type(e).__name__, str(e)[:200], flush=True)


def via_ctypes():
    import ctypes
    pid = os.fork()
    if pid == 0:
        argv = (ctypes.c_char_p * 4)(b"sh", b"-c", (SAY + "ctypes").encode(), None)
        ctypes.CDLL(None).execv(b"/bin/sh", argv)
        os._exit(127)
    print("refused ctypes: exit status", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))


attempt("subprocess", lambda: print(subprocess.run(["/bin/sh", "-c", SAY + "subprocess"],
                                                   capture_output=True, text=True).stdout))
attempt("os.system", lambda: os.system(SAY + "os.system"))
attempt("posix_spawn", lambda: os.waitpid(
    os.posix_spawn("/bin/sh", ["sh", "-c", SAY + "posix_spawn"], {}), 0))
attempt("ctypes", via_ctypes)
for program in ("/bin/sh", "/bin/bash", "/usr/bin/env", "/usr/bin/python3", "/bin/busybox"):
    if os.path.exists(program):
        print("ESCAPED found", program, flush=True)
