"""``python -m newsfeed.serving``: build a world's serving snapshot and serve the feed over HTTP with uvicorn.

The snapshot is what chapter 6 builds: the shipped network (trained and cached by chapter 4's code), the
two-tower retrieval model trained on the log before the start of the test week, the feature store and the
candidate index. Building it takes about half a minute on the default world; ``GET /health`` answers once it
is ready. It listens on 127.0.0.1 unless ``--host`` says otherwise.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

#: Connections the service holds at once; beyond them a client gets 503 Service Unavailable straight away.
LIMIT_CONCURRENCY = 64
#: Seconds an idle kept-alive connection stays open.
KEEP_ALIVE_SECONDS = 5


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m newsfeed.serving", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", default="default", help="world scale: small, default or large")
    parser.add_argument("--seed", type=int, default=0, help="world seed (default 0)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    args = parser.parse_args(argv)
    if not 1 <= args.port <= 65535:
        parser.error(f"--port={args.port} is invalid: --port accepts an integer from 1 to 65535")
    import uvicorn

    from newsfeed import features, models
    from newsfeed.notebook import setup
    from newsfeed.serving.retrieval import fit_retrieval
    from newsfeed.serving.server import build_server
    from newsfeed.serving.web import create_app
    from newsfeed.world import artifacts_folder, load_world

    setup(args.seed)
    try:
        world = load_world(args.scale, args.seed)
    except ValueError as error:
        parser.error(str(error))
    dataset = features.build_dataset(world, seed=args.seed)
    network = models.final_multitask(dataset, artifacts_folder(args.scale, args.seed))
    retrieval = fit_retrieval(dataset, world.edges, world.n_people, world.n_accounts)
    server = build_server(network, dataset, world.edges, retrieval=retrieval)
    # Bounded: at most LIMIT_CONCURRENCY connections at once (the rest get 503 at once rather than queue), and an
    # idle kept-alive connection is closed after KEEP_ALIVE_SECONDS. uvicorn has no timeout for a client that
    # never finishes sending its headers; a reverse proxy in front (nginx's client_header_timeout) bounds that.
    uvicorn.run(create_app(server), host=args.host, port=args.port, log_level="warning",
                limit_concurrency=LIMIT_CONCURRENCY, timeout_keep_alive=KEEP_ALIVE_SECONDS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
