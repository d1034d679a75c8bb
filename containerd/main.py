"""Entry point placeholder until this layer's issue lands."""

import sys


def main() -> int:
    print("containerd: not built yet", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
