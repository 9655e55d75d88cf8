# Tries to create files outside its work dir; the parent checks that none exist afterwards.
import json, sys
for path in json.loads(sys.argv[1])["outside"]:
    try:
        with open(path, "w") as f:
            f.write("escaped")
    except OSError:
        pass
