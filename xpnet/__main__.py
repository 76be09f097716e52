"""``python -m xpnet`` and the ``xpnet`` command.

Ctrl-C at any moment, start-up included (importing the array libraries takes a while), ends
with one line and exit status 130, never a traceback.
"""

import sys


def run() -> int:
    try:
        from xpnet.cli import main
    except KeyboardInterrupt:
        print("xpnet: interrupted", file=sys.stderr)
        return 130
    return main()


if __name__ == "__main__":
    sys.exit(run())
