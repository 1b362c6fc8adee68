"""bench/peers.py's pure parts without the shared data file or any peer: the interleaved round
schedule, medians and speedups, the table (measured rows by speed, failed rows with their reason),
the target verdict, the ISA preset choice, the venv marker, and the missing-data exit."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from bench import peers as p


def _result(label, tool, b16, b1, rouge=30.0, **kw):
    return p.Result(label, tool, seconds={16: list(b16), 1: list(b1)}, rouge_lsum=rouge, size_mb=10.0,
                    cosine_mean=0.99, cosine_min=0.9, **kw)


def test_schedule_gives_each_round_every_label_once_in_shuffled_reproducible_orders():
    labels = [f"v{i}" for i in range(8)]
    rounds = p.schedule(labels, 7, seed=3)
    assert len(rounds) == 7
    assert all(sorted(order) == sorted(labels) for order in rounds)
    assert len({tuple(order) for order in rounds}) > 1  # not one fixed order
    assert rounds == p.schedule(labels, 7, seed=3)
    assert rounds != p.schedule(labels, 7, seed=4)
    with pytest.raises(ValueError):
        p.schedule(labels, 0)


def test_median_and_speedup_use_the_median_pass_of_each_variant():
    base = _result(p.BASELINE, p.OURS, [10, 11, 9, 100], [20, 20, 21])
    fast = _result("fast", "Optimum", [5, 4, 6, 50], [4, 5, 6])
    assert base.median(16) == 10.5 and fast.median(16) == 5.5
    assert p.speedup(fast, base, 16) == pytest.approx(10.5 / 5.5)
    assert p.speedup(fast, base, 1) == pytest.approx(4.0)
    assert p.Result("x", "y").median(16) != p.Result("x", "y").median(16)  # nan: nothing measured


def test_rouge_drop_is_relative_and_signed():
    base = _result(p.BASELINE, p.OURS, [1], [1], rouge=40.0)
    assert p.rouge_drop(_result("a", "t", [1], [1], rouge=39.0), base) == pytest.approx(2.5)
    assert p.rouge_drop(_result("b", "t", [1], [1], rouge=41.0), base) == pytest.approx(-2.5)


def test_table_orders_measured_rows_by_speed_and_lists_failures_with_reasons():
    results = [_result(p.BASELINE, p.OURS, [10], [10]),
               _result("ours int8", p.OURS, [4], [5]),
               p.Result("olive (install/export)", "Olive", status="failed: pip said no"),
               _result("optimum O2", "Optimum", [8], [9])]
    headers, rows = p.table_rows(results)
    assert [r[0] for r in rows] == ["ours int8", "optimum O2", p.BASELINE, "olive (install/export)"]
    assert rows[0][headers.index("speedup b16")] == "2.50x"
    assert rows[0][headers.index("speedup b1")] == "2.00x"
    assert rows[-1][2] == "failed: pip said no"
    assert all(len(r) == len(headers) for r in rows)


def test_verdict_compares_our_fastest_within_the_drop_bound_with_the_peers():
    base = _result(p.BASELINE, p.OURS, [10], [10], rouge=30.0)
    ours_fast_but_lossy = _result("ours lossy", p.OURS, [2], [2], rouge=25.0)  # 16.7% drop: not eligible
    ours_ok = _result("ours int8", p.OURS, [4], [6], rouge=29.9)
    peer_lossy = _result("peer per-tensor", "Optimum", [3], [3], rouge=28.0)
    peer_ok = _result("peer per-channel", "Olive", [5], [5], rouge=30.0)
    text = p.target_verdict([base, ours_fast_but_lossy, ours_ok, peer_lossy, peer_ok])
    b16, b1 = text.splitlines()
    assert "batch 16: ours ours int8 2.50x" in b16
    assert "within the bound: Olive peer per-channel 2.00x (+0.00%) -> **met**" in b16
    assert "any drop: Optimum peer per-tensor 3.33x" in b16 and b16.endswith("**not met**")
    assert "batch 1: ours ours int8 1.67x" in b1
    assert "within the bound: Olive peer per-channel 2.00x (+0.00%) -> **not met**" in b1


def test_verdict_without_an_eligible_variant_of_ours_says_not_met():
    base = _result(p.BASELINE, p.OURS, [10], [10], rouge=30.0)
    text = p.target_verdict([base, _result("lossy", p.OURS, [1], [1], rouge=10.0)])
    assert text.count("not met") == 2 and "no infersweep variant" in text


@pytest.mark.parametrize("flags, preset", [({"avx2", "avx512f", "avx512_vnni"}, "avx512_vnni"),
                                           ({"avx2", "avx512f"}, "avx512"), ({"avx2", "fma"}, "avx2"),
                                           ({"asimd", "asimddp"}, "arm64")])
def test_isa_preset_follows_the_cpu_flags(monkeypatch, flags, preset):
    import infersweep.trials.hardware as hardware

    monkeypatch.setattr(hardware, "detect", lambda: SimpleNamespace(cpu_flags=frozenset(flags)))
    assert p.isa_config() == preset


def test_peer_venv_reuses_a_matching_marker_and_refuses_to_install_when_told_not_to(tmp_path, monkeypatch):
    monkeypatch.setattr(p, "PEERS_HOME", tmp_path)
    peer = p.PEERS["optimum"]
    calls = []
    with pytest.raises(RuntimeError, match="--skip-install"):
        p.peer_venv("optimum", peer, install=False, run=calls.append)
    (tmp_path / "optimum").mkdir()
    (tmp_path / "optimum" / ".infersweep-peer.json").write_text(json.dumps([p.TORCH_PIN, *peer.packages]))
    assert p.peer_venv("optimum", peer, install=False, run=calls.append) == tmp_path / "optimum" / "bin" / "python"
    assert calls == []


def test_peer_venv_installs_torch_first_and_reports_a_failed_pip(tmp_path, monkeypatch):
    monkeypatch.setattr(p, "PEERS_HOME", tmp_path)
    calls = []

    def run(cmd, **_):
        calls.append(cmd)
        failed = "olive-ai==0.13.0" in cmd
        return SimpleNamespace(returncode=int(failed), stdout="", stderr="ERROR: No matching distribution" if failed else "")

    with pytest.raises(RuntimeError, match="No matching distribution"):
        p.peer_venv("olive", p.PEERS["olive"], install=True, run=run)
    assert calls[1][-1] == p.TORCH_PIN and "olive-ai==0.13.0" in calls[2]
    assert not (tmp_path / "olive" / ".infersweep-peer.json").exists()


def test_bench_exits_cleanly_without_the_shared_file(monkeypatch, tmp_path, capsys):
    import bench._report as report

    monkeypatch.setattr(report, "SHARED_CNN", tmp_path / "absent.jsonl")
    assert p.main(["--no-write", "--rounds", "1"]) == 0
    assert "absent" in capsys.readouterr().out


def test_unknown_peer_is_a_usage_error():
    with pytest.raises(SystemExit):
        p.main(["--peers", "optimum,nope"])


def test_bf16_is_skipped_with_a_reason_only_without_bf16_instructions():
    assert "no bf16 instructions" in p.bf16_skip_reason("bf16", forced=False, has_bf16=False)
    assert p.bf16_skip_reason("bf16", forced=True, has_bf16=False) is None
    assert p.bf16_skip_reason("bf16", forced=False, has_bf16=True) is None
    assert p.bf16_skip_reason("int8_dynamic", forced=False, has_bf16=False) is None


def test_a_saved_run_renders_again_without_measuring(tmp_path, capsys):
    results = [_result(p.BASELINE, p.OURS, [10, 12], [20, 22]), _result("ours int8", p.OURS, [4, 5], [8, 9]),
               p.Result("olive (install/export)", "Olive", status="failed: no venv")]
    run = dict(results=results, sentences=50, forwards={16: 3, 1: 4}, versions=["Olive: olive-ai 0.13.0"],
               load_before="load 1", load_after="load 2", seconds=60.0, machine_line="test machine", docs=2,
               rounds=2, cpus=2)
    p.save_run(run, tmp_path / "run.json")
    loaded = p.load_run(tmp_path / "run.json")
    assert loaded["results"][1].seconds == {16: [4, 5], 1: [8, 9]} and loaded["forwards"] == {16: 3, 1: 4}
    assert p.main(["--from-json", str(tmp_path / "run.json"), "--no-write"]) == 0
    out = capsys.readouterr().out
    assert "| ours int8 | infersweep | 4.50 | 2.44x |" in out
    assert "failed: no venv" in out and "load 1" in out and "load 2" in out


def test_a_variant_far_slower_than_the_baseline_stays_out_of_the_rounds_with_its_ratio():
    assert p.too_slow(7.9, 2.0) is None
    reason = p.too_slow(10.0, 2.0)
    assert reason.startswith("too slow: 5.0x") and "left out of the rounds" in reason


def test_export_key_changes_with_what_the_exports_depend_on(tmp_path):
    import numpy as np

    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    calibration = tmp_path / "cal.npz"
    np.savez(calibration, ids=np.arange(6), lengths=np.array([2, 4]))
    peer = p.PEERS["olive"]
    key = p.export_key(peer, str(model), calibration, "avx2")
    assert key == p.export_key(peer, str(model), calibration, "avx2")
    assert key != p.export_key(peer, str(model), calibration, "avx512_vnni")
    assert key != p.export_key(p.PEERS["optimum"], str(model), calibration, "avx2")
    np.savez(calibration, ids=np.arange(6), lengths=np.array([3, 3]))
    assert key != p.export_key(peer, str(model), calibration, "avx2")


def test_load_averages_are_read_from_uptime_lines():
    line = " 06:19:36 up  4:35,  0 user,  load average: 25.62, 28.35, 26.08"
    assert p.load_averages(line) == [25.62, 28.35, 26.08]
    assert p.load_averages("10:00  up 2 days, load averages: 1.5 2.0 2.5") == [1.5, 2.0, 2.5]
    assert p.load_averages("no uptime here") == []
