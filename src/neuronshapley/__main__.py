"""``python -m neuronshapley``: the command line (see :mod:`neuronshapley.cli`)."""

from neuronshapley.cli import main

if __name__ == "__main__":
    main()
