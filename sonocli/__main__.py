"""Allow ``python -m sonocli`` where the console script is not on PATH."""

from sonocli.cli.root import main

if __name__ == "__main__":
    main()
