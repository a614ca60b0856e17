"""`python -m flash_pipeline`: the same CLI as the `flash` script."""

from flash_pipeline.cli import main

if __name__ == "__main__":
    main()
