"""python -m lxcri_testbed up|down|status"""

import json
import sys

from .bed import BedError, down, load_state, up


def main(argv):
    if len(argv) != 1 or argv[0] not in ("up", "down", "status"):
        sys.stderr.write("usage: python -m lxcri_testbed up|down|status\n")
        return 2
    try:
        if argv[0] == "up":
            state = up()
            print(json.dumps(state, indent=2, sort_keys=True))
        elif argv[0] == "down":
            down()
        else:
            state = load_state()
            if state is None:
                print("test bed is down")
                return 1
            print(json.dumps(state, indent=2, sort_keys=True))
    except BedError as exc:
        sys.stderr.write("testbed: error: %s\n" % exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
