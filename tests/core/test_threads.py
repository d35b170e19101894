"""The thread policy (lvm_studio.core.threads): defaults per machine size, overrides, per-thread use()."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest
import torch

from lvm_studio.core import threads
from lvm_studio.core.threads import ROLES, ThreadPolicy, parse, policy_for


@pytest.fixture(autouse=True)
def no_configured_policy(monkeypatch):
    monkeypatch.delenv(threads.ENV, raising=False)
    threads.configure(None)
    n = torch.get_num_threads()
    yield
    threads._configured = None  # not configure(None): a test's malformed environment is still set
    torch.set_num_threads(n)


@pytest.mark.parametrize("cores", [2, 4, 8, 16])
def test_training_and_tasks_never_ask_for_more_threads_than_cores(cores):
    p = policy_for(cores)
    assert p.training >= 1 and p.tasks >= 1 and p.gui == 1
    assert p.training + p.tasks <= cores


def test_two_cores_give_one_thread_each():
    p = policy_for(2)
    assert (p.training, p.tasks) == (1, 1)


def test_more_cores_never_give_fewer_training_threads():
    training = [policy_for(c).training for c in range(1, 65)]
    assert training == sorted(training)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", (1, 1, 1, "PASSIVE")),
        ("3", (3, 1, 1, "PASSIVE")),
        (" 3 ", (3, 1, 1, "PASSIVE")),
        ("training=4,tasks=2", (4, 2, 1, "PASSIVE")),
        ("tasks=2, gui=2", (1, 2, 2, "PASSIVE")),
        ("wait=active", (1, 1, 1, "ACTIVE")),
        ("Training=2,WAIT=Passive", (2, 1, 1, "PASSIVE")),
    ],
)
def test_environment_overrides_parse_over_the_base(text, expected):
    p = parse(text, ThreadPolicy(training=1, tasks=1))
    assert (p.training, p.tasks, p.gui, p.wait_policy) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("x", "whole number"),
        ("0", "at least 1"),
        ("-2", "at least 1"),
        ("2.5", "whole number"),
        ("training=", "whole number"),
        ("training=two", "whole number"),
        ("tasks=0", "at least 1"),
        ("cpus=2", "unknown thread role 'cpus'"),
        ("training=2,,tasks=1", "expected role=threads"),
        ("training=2,training=3", "given twice"),
        ("wait=sometimes", "passive or active"),
        ("=3", "expected role=threads"),
    ],
)
def test_bad_overrides_raise_a_clear_value_error(text, fragment):
    with pytest.raises(ValueError, match=fragment):
        parse(text, ThreadPolicy(training=1, tasks=1))


def test_current_names_the_environment_variable_when_it_is_malformed(monkeypatch):
    monkeypatch.setenv(threads.ENV, "training=lots")
    with pytest.raises(ValueError, match=f"{threads.ENV}='training=lots'.*whole number"):
        threads.current()


def test_configure_overrides_the_environment_and_none_restores_it(monkeypatch):
    monkeypatch.setenv(threads.ENV, "3")
    assert threads.current().training == 3
    assert threads.configure(ThreadPolicy(training=2, tasks=2)).training == 2
    assert threads.current() == ThreadPolicy(training=2, tasks=2)
    assert threads.configure(None).training == 3


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_a_policy_refuses_anything_but_whole_counts(bad):
    with pytest.raises(ValueError, match="whole number"):
        ThreadPolicy(training=bad, tasks=1)
    with pytest.raises(ValueError, match="unknown thread role"):
        ThreadPolicy(training=1, tasks=1).threads("render")


def test_use_sets_the_calling_thread_only():
    threads.configure(ThreadPolicy(training=2, tasks=1, gui=1))
    assert threads.use("gui") == 1
    assert torch.get_num_threads() == 1
    seen = {}

    def worker():
        seen["set"] = threads.use("training")
        seen["after"] = torch.get_num_threads()

    t = threading.Thread(target=worker)
    t.start()
    t.join(30)
    assert seen == {"set": 2, "after": 2}
    assert torch.get_num_threads() == 1  # the main thread kept its own
    for role in ROLES:
        assert threads.use(role) == threads.current().threads(role)


def test_configure_process_sets_the_wait_policy_before_torch_loads():
    # a fresh interpreter: torch must not be loaded when the policy is applied
    code = (
        "import os, sys\n"
        "from lvm_studio.core import threads\n"
        "p = threads.configure_process()\n"
        "assert 'torch' not in sys.modules\n"
        "print(os.environ['OMP_WAIT_POLICY'], os.environ['OMP_NUM_THREADS'], p.training)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    env[threads.ENV] = "training=2,wait=active"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["ACTIVE", "2", "2"]


def test_configure_process_keeps_what_the_user_exported(monkeypatch):
    code = (
        "import os\n"
        "from lvm_studio.core import threads\n"
        "threads.configure_process()\n"
        "print(os.environ['OMP_WAIT_POLICY'], os.environ['OMP_NUM_THREADS'])\n"
    )
    env = dict(os.environ, OMP_WAIT_POLICY="ACTIVE", OMP_NUM_THREADS="1")
    env.pop(threads.ENV, None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["ACTIVE", "1"]
