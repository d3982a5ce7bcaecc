"""``python -m newsfeed.world --out data [--scale S] [--seed N]``: generate a world and write it to disk."""

from newsfeed.world.storage import main

raise SystemExit(main())
