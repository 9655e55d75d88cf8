# Walks every file it can see for a planted answer file (the marker below in its name or its
# first 4 KB): the runner plants them in the checkout, its current directory, $HOME and a
# dataset directory. Starts next to itself and climbs, as a program hunting for tests would.
import json, os, stat, sys
target = json.loads(sys.argv[1])
mark = "-".join(("sandbox", "canary"))  # spelled apart so this file does not match itself
seen = set()
starts = [os.getcwd()]
while starts[-1] != "/":
    starts.append(os.path.dirname(starts[-1]))
for start in [*target.get("hints", []), *starts]:
    for here, dirs, files in os.walk(start):
        dirs[:] = [d for d in dirs if os.path.join(here, d) not in ("/proc", "/sys", "/dev")]
        for name in files:
            path = os.path.join(here, name)
            if path in seen:
                continue
            seen.add(path)
            try:
                if not stat.S_ISREG(os.lstat(path).st_mode):
                    continue
                with open(path, "rb") as f:
                    head = f.read(4096)
            except OSError:
                continue
            if mark.encode() in head or mark in name:
                print("ESCAPED found", path, head[:200], flush=True)
print("walked", len(seen), "files")
