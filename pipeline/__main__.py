"""`python -m pipeline`: the same CLI as the `flash` script."""

from pipeline.cli import main

if __name__ == "__main__":
    main()
