"""The sound measures: a fit counts only against its null baselines; the stopping rule; both ends."""
import pytest
import torch

from bench.whitening.profile import (baselines, fit_counts, fit_paper, formula_profile_tau, reference_lambda2)


def _eigvals():
    return 1.0 / torch.arange(1, 28, dtype=torch.float64) ** 2


def test_a_formula_profile_with_its_peak_inside_counts_and_trivial_profiles_do_not():
    eig = _eigvals()
    lam2 = reference_lambda2(eig, 3)
    whitened = formula_profile_tau(lam2, 1e-7 * 40_000)  # peak near component 5: inside the paper's grid
    fit = fit_paper(whitened, lam2)
    assert fit.r > 0.999 and fit_counts(fit, baselines(whitened, eig))
    for p in (1.0, 0.5, -1.0):  # e ∝ lambda, a power law, full whitening: explained by lambda^p
        trivial = eig.sqrt() ** p
        fit = fit_paper(trivial, lam2)
        assert not fit_counts(fit, baselines(trivial, eig)), p


def test_baselines_find_the_power():
    eig = _eigvals()
    base = baselines(eig.sqrt() ** 0.37, eig)
    assert abs(base.power - 0.37) < 0.006 and base.r_power > 0.9999 and base.r_lambda < base.r_power


def test_reference_grid_ignores_the_input_scale_and_patch_count():
    eig = _eigvals()
    torch.testing.assert_close(reference_lambda2(eig * 255.0 ** 2, 3), reference_lambda2(eig, 3))
    unit = torch.ones(27, dtype=torch.float64)  # unit-variance inputs: the paper's lambda^2 = 450 * eigval
    torch.testing.assert_close(reference_lambda2(unit, 3), unit * 450)


class _Trainer:
    def __init__(self):
        self.current_epoch, self.global_step, self.should_stop = 0, 0, False


def _rule(history, check_every=1, epochs=None, double=True):
    """Feed (accuracy, loss) per read to the rule; return it and the epoch training stopped at."""
    from bench.whitening.recording import StoppingRule

    rule = StoppingRule(loader=None, train_acc=0.99, plateau_epochs=3, plateau_rel=0.01, max_epochs=8,
                        check_every=check_every, double=double)
    it = iter(history)
    rule._evaluate = lambda module: next(it)
    rule._snap = lambda module, step: rule.snapshots.__setitem__(step, None)
    trainer = _Trainer()
    for epoch in range(epochs or len(history)):
        trainer.current_epoch, trainer.global_step = epoch, 4 * (epoch + 1)
        rule.on_train_epoch_end(trainer, None)
        if trainer.should_stop:
            return rule, epoch + 1
    return rule, None


def test_stopping_rule_accuracy_plateau_and_cap():
    rule, stopped = _rule([(0.5, 1.0), (0.9, 0.5), (0.995, 0.1)] + [(1.0, 0.01)] * 5)
    assert (rule.stop_epoch, rule.rule, stopped) == (3, "acc", 6)
    assert rule.phases() == {"half": 2, "stop": 3, "double": 6}
    assert [rule.epoch_steps[e] for e in rule.phases().values()] == [8, 12, 24]  # 4 steps an epoch
    rule, _ = _rule([(0.1, 2.30)] * 10)  # no 1% improvement on epoch 1's loss for 3 epochs
    assert (rule.stop_epoch, rule.rule) == (4, "plateau")
    falling = [(0.2, 2.0 * 0.9 ** e) for e in range(20)]
    rule, stopped = _rule(falling)
    assert (rule.stop_epoch, rule.rule, stopped) == (8, "cap", 16)


def test_stopping_rule_read_every_few_epochs():
    # reads at epochs 3 and 6 only: accuracy reached at 6; half is the last read at or before ceil(6/2) = 3
    rule, stopped = _rule([(0.5, 1.0), (0.995, 0.1)], check_every=3, epochs=14)
    assert (rule.stop_epoch, rule.rule, stopped) == (6, "acc", 12)
    assert rule.phases() == {"half": 3, "stop": 6, "double": 12}
    assert sorted(rule.snapshots) == [4 * e for e in (3, 6, 12)]  # at the reads and at 2E only
    assert rule.accuracy_at(None, 3) == 0.5
    with pytest.raises(ValueError, match="not read"):
        rule.accuracy_at(None, 4)
    rule, stopped = _rule([(0.5, 1.0), (0.995, 0.1)], check_every=3, epochs=14, double=False)  # a control
    assert (rule.stop_epoch, stopped, rule.phases()) == (6, 6, {"half": 3, "stop": 6})


def test_a_resume_after_the_last_epoch_trains_no_further():
    # the rule stopped at E = 3 and trained to 6; a crash before the model was cached resumes at epoch 6
    rule, _ = _rule([(0.5, 1.0), (0.9, 0.5), (0.995, 0.1)] + [(1.0, 0.01)] * 5)
    trainer = _Trainer()
    trainer.current_epoch, trainer.global_step = 6, 24
    rule.on_train_start(trainer, None)
    assert trainer.should_stop
    trainer.current_epoch, trainer.should_stop = 5, False  # an epoch short of 2E: it trains on
    rule.on_train_start(trainer, None)
    assert not trainer.should_stop


def test_both_ends_disagreeing_is_inconclusive():
    from bench.claims import AtLeast, Claim, Value
    from bench.whitening.card import AtBothEnds

    def rows(half, double):
        return [{"metric": "m", "value": v, "params": {"phase": p}} for p, v in (("half", half), ("double", double))]

    claim = Claim("c", "m at both ends", paper="-", check=AtBothEnds(lambda phase: AtLeast(Value("m", phase=phase), 0)),
                  exact=True)  # rows without items or stderr: judged as written
    assert claim.evaluate(rows(0.2, 0.3)).status == "reproduced"
    assert claim.evaluate(rows(-0.2, -0.3)).status == "not reproduced"
    held_once = claim.evaluate(rows(0.2, -0.3))
    assert held_once.status == "inconclusive" and "at half the stopping point: reproduced" in held_once.note
