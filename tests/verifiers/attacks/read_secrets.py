# Looks for the parent's secrets: an environment variable and a file only its owner may read.
import json, os, sys
target = json.loads(sys.argv[1])
if os.environ.get(target["secret_env"]):
    print("ESCAPED env", os.environ[target["secret_env"]])
try:
    print("ESCAPED file", open(target["private_file"]).read())
except (OSError, KeyError):
    pass
