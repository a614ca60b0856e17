"""`python -m flash_pipeline`: the same CLI as the `flash` script."""

import os
import sys

# `python -m` puts the working directory first on sys.path; flash's later (lazy) imports must
# never find a user's module of the same name there, so it goes, as it does for the `flash` script.
if sys.path and sys.path[0] in ("", os.getcwd()):
    del sys.path[0]

from flash_pipeline.cli import main

if __name__ == "__main__":
    main()
