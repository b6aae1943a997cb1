"""The checked-in sample config is what oslo-config-generator produces today."""

import os
import subprocess
import sys

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
SAMPLE = os.path.join(TOP, 'etc', 'migration-conductor',
                      'migration-conductor.conf.sample')


def test_sample_config_is_current(tmp_path):
    out = tmp_path / 'sample.conf'
    subprocess.run(
        [sys.executable, '-m', 'oslo_config.generator', '--config-file',
         os.path.join(TOP, 'etc', 'migration-conductor', 'config-generator.conf'),
         '--output-file', str(out)],
        check=True, cwd=TOP, capture_output=True, timeout=120)
    with open(SAMPLE) as expected:
        assert out.read_text() == expected.read(), (
            'etc/migration-conductor/migration-conductor.conf.sample is stale: run '
            'tools/generate-config-sample.sh')


def test_sample_documents_every_project_group():
    with open(SAMPLE) as sample:
        text = sample.read()
    for group in ('[DEFAULT]', '[conductor]', '[agent]', '[libvirt]', '[all_in_one]',
                  '[simulated]', '[database]'):
        assert group in text, group
    assert '#transport_url' in text
