"""Feed Ranking, Executed: the news feed recommender the book builds."""
