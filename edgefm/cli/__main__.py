"""``python -m edgefm.cli``: the same entry point as the ``edgefm`` script."""

from edgefm.cli.main import main

main()
