# Tries to raise its hard limits back up (soft = hard, so any raise is a raise of the hard one).
import resource
for name in ("RLIMIT_CPU", "RLIMIT_AS", "RLIMIT_NPROC", "RLIMIT_FSIZE", "RLIMIT_NOFILE"):
    which = getattr(resource, name)
    soft, hard = resource.getrlimit(which)
    try:
        resource.setrlimit(which, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        print("ESCAPED raised", name)
    except (ValueError, OSError):
        pass
