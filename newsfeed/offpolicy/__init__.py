"""Learning from logged feedback (chapter 9): what logs with known randomness allow.

- ``estimators``: the examination curve from randomized sessions, and a new policy's value from another's logs
  (direct method, IPS, self-normalized IPS, doubly robust);
- ``evaluation``: those estimators on the world's logs, slot by slot, against each policy's true value;
- ``open_bandit``: the same estimators on a real dataset, the Open Bandit Dataset's small sample;
- ``relabeled``: chapter 4's network trained on labels divided by the chance each was observed;
- ``position``: the position-bias ablation (no correction, the position tower, inverse propensities), served;
- ``delays``: labels that arrive late, and four ways to train before they have all arrived.
"""

from newsfeed.offpolicy.estimators import estimates, examination_exponent, importance_weights, position_curve
from newsfeed.offpolicy.open_bandit import OPEN_BANDIT, open_bandit, thompson_distribution, thompson_from_random_logs

__all__ = ["OPEN_BANDIT", "estimates", "examination_exponent", "importance_weights", "open_bandit",
           "position_curve", "thompson_distribution", "thompson_from_random_logs"]
