"""`python -m hcdg ...` (also what `torchrun -m hcdg train ...` runs)."""

from hcdg.cli import main

if __name__ == "__main__":
    main()
