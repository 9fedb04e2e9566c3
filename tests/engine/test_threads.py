"""The thread policy: 0 means one thread per CPU the process may use."""
import ivos.runtime.threads as threads


def test_zero_means_the_cpus_this_process_may_use(monkeypatch):
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {3}, raising=False)
    assert threads.usable_cpus() == 1 and threads.resolve_threads(0) == 1
    assert threads.resolve_threads(3) == 3


def test_without_affinity_the_machine_count_is_used(monkeypatch):
    monkeypatch.delattr(threads.os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 6)
    assert threads.usable_cpus() == 6


def test_a_models_threads_reach_the_crf_and_fine_tuning(monkeypatch):
    """``ivos.load(..., threads=N)``: the predictors' native CRF and the OSVOS fine-tuning
    use N threads too (one count for every pool), unless a FinetuneConfig sets its own."""
    import ivos

    click = ivos.load("ivos-lite0", threads=1)
    osvos = ivos.load("osvos-lite0", threads=1)
    assert click.threads == 1 and ivos.ImagePredictor(click).settings.crf.threads == 1
    vp = ivos.VideoPredictor(osvos, click)
    assert vp.settings.crf.threads == 1 and vp.click_settings.crf.threads == 1
    assert vp.settings.finetune.threads == 1
    own = ivos.VideoPredictor(osvos, finetune_config=ivos.FinetuneConfig(threads=2))
    assert own.settings.finetune.threads == 2
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    assert ivos.load("ivos-lite0").threads == 3  # 0 resolves to the usable CPUs
