"""Deliberate bugs the unit tests must catch: each mutation is applied to the package, the named tests run, and
the check fails if they still pass. Run it after changing a test or the code it guards:

    .venv/bin/python tests/mutation_check.py

It restores every file it touches, also when interrupted.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: (what the bug is, file, original text, mutated text, the tests that must fail)
MUTATIONS: list[tuple[str, str, str, str, str]] = [
    ("calibration inverted (the offline report and the daily monitoring share it)", "newsfeed/metrics.py",
     "return float(np.mean(probabilities)) / observed", "return observed / float(np.mean(probabilities))",
     "tests/test_metrics.py tests/test_monitoring.py::test_daily_tables"),
    ("serving view at position 5 (the ranking policy and Ranker.score both use it)",
     "newsfeed/models/ranker.py", "return table.assign(position=1)",
     "return table.assign(position=5)",
     "tests/test_policies.py::test_ranking_policy_scores_every_candidate_at_the_top"),
    ("re-ranking freshness base", "newsfeed/serving/rerank.py", "score *= 0.5 **", "score *= 0.6 **",
     "tests/test_serving.py::test_rerank_freshness_halves_a_score_every_half_life"),
    ("weekday offset", "newsfeed/features/table.py", "_WEEKDAYS[(day + 3) % 7]", "_WEEKDAYS[(day + 4) % 7]",
     "tests/test_features.py::test_time_features_read_the_clock_of_the_request"),
    # Found by the reliability review of 2026-12-03 (each survived every unit test then).
    ("candidate index approximate by default", "newsfeed/serving/candidates.py", 'ann: str = "exact"',
     'ann: str = "ivf"', "tests/test_serving.py::test_the_candidate_index_is_exact_unless_asked"),
    ("feature store keeps events at its snapshot instant", "newsfeed/serving/store.py",
     'before = table[table["timestamp"] < snapshot]', 'before = table[table["timestamp"] <= snapshot]',
     "tests/test_serving.py::test_store_leaves_out_events_at_its_snapshot_instant"),
    ("online feature path reads the next user's rows too", "newsfeed/serving/online.py",
     "np.searchsorted(self.users, [user, user + 1])", "np.searchsorted(self.users, [user, user + 2])",
     "tests/test_serving.py::test_online_features_equal_the_store_path_to_the_bit"),
    ("mixture SPRT without its shrink factor (too eager to reject)", "newsfeed/sequential.py",
     "return shrink * np.exp(", "return np.exp(",
     "tests/test_sequential.py::test_the_mixture_ratio_is_the_normal_mixture_likelihood_ratio"),
    ("daily-quality calibration inverted (its arguments swapped)", "newsfeed/monitoring.py",
     'row[f"calibration_{reaction}"] = calibration(y, p)', 'row[f"calibration_{reaction}"] = calibration(p, y)',
     "tests/test_monitoring.py::test_daily_tables"),
    ("capacity: utilization multiplies", "newsfeed/scaling/capacity.py", "/ 1000 / costs.utilization",
     "/ 1000 * costs.utilization", "tests/test_scaling.py::test_capacity_cores_follow_their_formulas"),
    ("capacity: training hours in minutes", "newsfeed/scaling/capacity.py", "costs.training_hours * 3600",
     "costs.training_hours * 60", "tests/test_scaling.py::test_capacity_cores_follow_their_formulas"),
    ("PSI bins closed on the left", "newsfeed/monitoring.py", 'np.searchsorted(inner, present, side="left")',
     'np.searchsorted(inner, present, side="right")',
     "tests/test_monitoring.py::test_psi_bins_of_a_discrete_feature_are_closed_on_the_right"),
    ("autograder tolerance 1000 times looser", "newsfeed/grading.py", 'rtol=spec["rtol"], atol',
     'rtol=spec["rtol"] * 1000, atol',
     "tests/test_teaching.py::test_answers_leave_the_kernel_as_data_and_compare_within_tolerance"),
    ("affinity forgets in a day, not a week", "newsfeed/features/aggregates.py", "AFFINITY_DECAY_HOURS = 168.0",
     "AFFINITY_DECAY_HOURS = 24.0", "tests/test_features.py::test_affinity_forgets_by_a_factor_e_a_week"),
    ("an edge made at the request instant is known to it", "newsfeed/features/table.py",
     "known = pd.notna(created) & (created < when)", "known = pd.notna(created) & (created <= when)",
     "tests/test_features.py::test_author_followers_count_only_earlier_edges"),
    ("logQ correction added instead of subtracted", "newsfeed/serving/retrieval.py",
     "logits = logits - log_q[None, :]", "logits = logits + log_q[None, :]",
     "tests/test_serving.py::test_in_batch_loss_corrects_for_popularity_and_skips_repeats"),
    # Added with the code they guard (2026-12-04).
    ("as-of index counts an event at the request's own instant", "newsfeed/features/aggregates.py",
     'before = np.searchsorted(self.times, asked, side="left")',
     'before = np.searchsorted(self.times, asked, side="right")',
     "tests/test_features.py::test_the_as_of_index_answers_exactly_what_the_as_of_join_does"),
    ("Platt scaling drops its intercept", "newsfeed/models/calibration.py",
     "logit = slope * _logit(predicted[column].to_numpy()) + intercept",
     "logit = slope * _logit(predicted[column].to_numpy())",
     "tests/test_models.py::test_platt_scaling_recalibrates_each_head_on_fresh_rows_and_keeps_its_order"),
    ("the nightly recalibration fits each day on its own labels too", "newsfeed/models/calibration.py",
     "before = {night: (days < night).to_numpy() for night in nights}",
     "before = {night: (days <= night).to_numpy() for night in nights}",
     "tests/test_models.py::test_nightly_recalibration_fits_each_day_on_the_days_before_it_only"),
    ("rollout counters count each impression twice", "newsfeed/world/rollout.py",
     'self.per_post["impressions"] += np.bincount(posts, minlength=n_posts)',
     'self.per_post["impressions"] += 2 * np.bincount(posts, minlength=n_posts)',
     "tests/test_world.py::test_rollout_candidates_carry_each_posts_counts_so_far"),
    ("recent-engagement history reaches into its own session", "newsfeed/models/rungs.py",
     'before = np.searchsorted(event_key, (users << 40) + _seconds(session_start), side="left")',
     'before = np.searchsorted(event_key, (users << 40) + _seconds(session_start), side="right")',
     "tests/test_rungs.py::test_history_holds_only_engagements_from_before_the_session_most_recent_first"),
    ("hidden variables without the user's click bias", "newsfeed/world/outcomes.py",
     '"click_bias": truth.click_bias[users],', '"click_bias": 0.0 * truth.click_bias[users],',
     "tests/test_rungs.py::test_the_hidden_variables_are_what_the_true_probabilities_are_made_of"),
    ("position curve keeps sessions that stop before the last shuffled slot", "newsfeed/offpolicy/estimators.py",
     'shown = shown[shown.groupby("session_id")["position"].transform("size").to_numpy() == top]',
     'shown = shown[shown.groupby("session_id")["position"].transform("size").to_numpy() >= 1]',
     "tests/test_offpolicy.py::test_the_position_curve_recovers_a_known_examination_curve"),
    ("shuffled sessions shuffle the wrong rows (subset positions taken as the batch's)", "newsfeed/policies.py",
     "rows = where[rows]", "rows = rows",
     "tests/test_offpolicy.py::test_shuffled_sessions_show_the_policys_top_posts_in_a_uniformly_random_order"),
    ("doubly robust corrects with the model's prediction for the new policy, not for the logged choice",
     "newsfeed/offpolicy/estimators.py", '"doubly robust": model_target + weights * (rewards - model_logged)}',
     '"doubly robust": model_target + weights * (rewards - model_target)}',
     "tests/test_offpolicy.py::test_off_policy_estimates_find_the_new_policys_true_value"),
    ("logging propensity forgets the unrandomized sessions", "newsfeed/offpolicy/evaluation.py",
     'screen["propensity"] = share / top + (1.0 - share) * agrees', 'screen["propensity"] = share / top + 0 * agrees',
     "tests/test_offpolicy_evaluation.py"),
    ("self-normalized IPS divides by the rows, not the weights", "newsfeed/offpolicy/evaluation.py",
     '"self-normalized IPS": means["weighted reward"] / means["weight"],',
     '"self-normalized IPS": means["weighted reward"] / top,', "tests/test_offpolicy_evaluation.py"),
    ("the relabeled network multiplies its labels by the chance they were seen", "newsfeed/offpolicy/relabeled.py",
     "return reactions / torch.tensor(chance, dtype=reactions.dtype), dwell",
     "return reactions * torch.tensor(chance, dtype=reactions.dtype), dwell", "tests/test_offpolicy_training.py"),
    ("a reaction counts as arrived before its delay has passed", "newsfeed/offpolicy/delays.py",
     "(delays[reaction].to_numpy() <= age)", "(delays[reaction].to_numpy() <= 2 * age)",
     "tests/test_offpolicy_training.py"),
    # Chapter 10's world mechanisms and studies.
    ("shares travel to followers, not friends", "newsfeed/world/dynamics.py",
     'edges = world.edges[world.edges["edge_type"] == "friend"]',
     'edges = world.edges[world.edges["edge_type"] == "follow"]',
     "tests/test_dynamics.py::test_shared_posts_reach_friends_and_a_prompt_makes_more"),
    ("novelty halves every hour, not every day", "newsfeed/world/dynamics.py",
     "np.exp2(-since / (24.0 * d.novelty_half_life_days))", "np.exp2(-since / d.novelty_half_life_days)",
     "tests/test_dynamics.py::test_novelty_halves_every_half_life_from_each_users_first_session"),
    ("visits ignore satisfaction", "newsfeed/world/dynamics.py", "+ d.return_slope * (", "+ 0.0 * (",
     "tests/test_dynamics.py::test_the_return_rate_follows_satisfaction"),
    ("CUPED adds the covariate's deviation", "newsfeed/experiments.py", "return y - theta * (x - x.mean())",
     "return y + theta * (x - x.mean())", "tests/test_interference.py::test_cuped_keeps_the_difference_and_narrows_it"),
    ("edges cut counts the friendships inside clusters", "newsfeed/interference.py",
     "clusters[ends[:, 0]] != clusters[ends[:, 1]]", "clusters[ends[:, 0]] == clusters[ends[:, 1]]",
     "tests/test_interference.py::test_clusters_cover_everyone_and_cut_fewer_friendships_than_chance"),
    ("the within-session ROC-AUC ranks over all rows, not within each list", "newsfeed/metrics.py",
     'rank = pd.Series(scores.astype(float)).groupby(groups).rank(method="average").to_numpy()',
     'rank = pd.Series(scores.astype(float)).rank(method="average").to_numpy()',
     "tests/test_disagreement.py::test_within_list_auc_is_the_mean_of_each_lists_roc_auc"),
    ("the reach boost favours the most shown creators", "newsfeed/exposure.py",
     'less_shown = 1.0 - shown.rank(method="average", pct=True)', 'less_shown = shown.rank(method="average", pct=True)',
     "tests/test_exposure.py::test_the_boost_lifts_little_shown_creators_and_zero_changes_nothing"),
    ("every set of weights is served as chapter 2's", "newsfeed/weights.py",
     "lambda p: engagement_score(p, weights, prefix=\"p_\")",
     "lambda p: engagement_score(p, ENGAGEMENT_WEIGHTS, prefix=\"p_\")",
     "tests/test_weights.py::test_clickbait_weights_bounce_more_and_the_study_reads_its_cache"),
    ("demotion adds the chance of harm instead of taking it away", "newsfeed/integrity.py",
     "base = base - weight * classifier.predict_candidates(candidates)",
     "base = base + weight * classifier.predict_candidates(candidates)",
     "tests/test_integrity.py::test_demotion_lowers_likely_harm_and_puts_judged_posts_last"),
    ("a verdict counts before it arrives", "newsfeed/integrity.py",
     "return ~pd.isna(arrived) & (arrived <= candidates[\"requested_at\"].to_numpy())",
     "return ~pd.isna(arrived)",
     "tests/test_integrity.py::test_demotion_lowers_likely_harm_and_puts_judged_posts_last"),
    ("near-duplicates link past the window", "newsfeed/dedup.py",
     "earlier = (found < query) & (hours[query] - hours[found] <= window_hours)",
     "earlier = (found < query) & (hours[query] - hours[found] <= 2 * window_hours)",
     "tests/test_dedup.py::test_copies_within_the_window_share_a_group_and_later_ones_do_not"),
    ("deduplication keeps the worst of a group", "newsfeed/dedup.py",
     "order = np.lexsort((-base, group, session))", "order = np.lexsort((base, group, session))",
     "tests/test_dedup.py::test_deduplication_keeps_the_best_of_each_group_per_session"),
    ("the prior counts as one impression, not PRIOR_WEIGHT", "newsfeed/bubbles.py",
     "return cls((earned + PRIOR_WEIGHT * prior) / (shown + PRIOR_WEIGHT), topics)",
     "return cls((earned + PRIOR_WEIGHT * prior) / (shown + 1.0), topics)",
     "tests/test_bubbles.py::test_the_learned_rates_follow_engagement_and_the_prior_fills_the_unseen"),
]


def main() -> int:
    survived = []
    for name, relative, original, mutated, tests in MUTATIONS:
        path = ROOT / relative
        source = path.read_text()
        if source.count(original) != 1:
            print(f"{name}: the text to mutate is not in {relative} exactly once; update this check")
            return 2
        try:
            path.write_text(source.replace(original, mutated))
            command = [sys.executable, "-m", "pytest", "-q", "-x", "-o", "addopts=", "-p", "no:cacheprovider"]
            run = subprocess.run([*command, *tests.split()], cwd=ROOT, capture_output=True, text=True)
        finally:
            path.write_text(source)
        caught = run.returncode != 0
        print(f"{'caught  ' if caught else 'SURVIVED'} {name} ({relative}) by {tests}")
        if not caught:
            survived.append(name)
    print(f"{len(MUTATIONS) - len(survived)} of {len(MUTATIONS)} mutations caught")
    return 1 if survived else 0


if __name__ == "__main__":
    raise SystemExit(main())
