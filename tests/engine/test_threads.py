"""The thread policy: 0 means one thread per CPU the process may use."""
import ivos.threads as threads


def test_zero_means_the_cpus_this_process_may_use(monkeypatch):
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {3}, raising=False)
    assert threads.usable_cpus() == 1 and threads.resolve_threads(0) == 1
    assert threads.resolve_threads(3) == 3


def test_without_affinity_the_machine_count_is_used(monkeypatch):
    monkeypatch.delattr(threads.os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 6)
    assert threads.usable_cpus() == 6
