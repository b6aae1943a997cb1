"""Reading the lab guests' console files: verdicts of the memory checks, timed beats."""

import time

from tools.lab import consoles


def test_the_latest_verdict_and_any_corruption(tmp_path):
    path = tmp_path / 'console.log'
    path.write_text('mc-heartbeat seq=1 touched_mib=64 dirty_pps=0 check=none\n'
                    'mc-check round=1 ok frozen_mib=16 touched_mib=64 crc=1\n')
    assert consoles.integrity(str(path)) == ('ok', False)
    with open(path, 'a') as stream:
        stream.write('mc-check round=2 CORRUPT region=dirty page=3 expected=1 found=2\n'
                     'mc-check round=3 ok frozen_mib=16 touched_mib=64 crc=1\n')
    assert consoles.integrity(str(path)) == ('ok', True)
    assert consoles.integrity(str(tmp_path / 'none.log')) == (None, False)


def test_the_watch_times_beats_as_they_arrive_and_finds_the_largest_gap(tmp_path):
    path = tmp_path / 'console.log'
    path.write_text('mc-heartbeat seq=1 touched_mib=0 dirty_pps=0 check=ok\n')
    with consoles.HeartbeatWatch(str(path)) as watch:
        with open(path, 'a') as stream:
            for seq, pause in ((2, 0.05), (3, 0.05), (4, 0.3), (5, 0.05)):
                time.sleep(pause)
                stream.write('mc-heartbeat seq=%d touched_mib=0 dirty_pps=0 ' % seq)
                stream.flush()
                time.sleep(0.02)              # a line arrives in two pieces
                stream.write('check=ok\n')
                stream.flush()
        time.sleep(0.05)
        assert not watch.stopped_beating(after_s=1.0)
    # Beats before the watch started are not counted; cut lines count once complete.
    assert [seq for seq, _mono, _wall in watch.beats()] == [2, 3, 4, 5]
    gap, before, after = watch.largest_gap()
    assert (before, after) == (3, 4) and 0.28 <= gap <= 0.6
    assert watch.stopped_beating(after_s=0.0)
