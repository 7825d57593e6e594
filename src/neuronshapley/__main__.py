"""``python -m neuronshapley``: the command line (see :mod:`neuronshapley.cli.app`)."""

from neuronshapley.cli.app import main

if __name__ == "__main__":
    main()
