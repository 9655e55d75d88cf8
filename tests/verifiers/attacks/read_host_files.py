# Reads files it has no business seeing: /etc/passwd, the Hugging Face token, the checkout's
# README (the runner passes their host paths).
import json, sys
for path in json.loads(sys.argv[1])["host_files"]:
    try:
        with open(path) as f:
            print("ESCAPED read", path, f.read(200), flush=True)
    except OSError as e:
        print("refused", path, type(e).__name__)
