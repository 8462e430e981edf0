"""Entry point of the standalone flasher build (installer/studio-flash.spec)."""
import sys

from studio.flasher import main

if __name__ == "__main__":
    sys.exit(main())
