"""``python -m n2amd_driver.ipi``: the package's driver on the i-PI socket (:mod:`.md.ipi_client`)."""
import sys

from .md.ipi_client import main

if __name__ == "__main__":
    sys.exit(main())
