"""Tests of lib/eib.py, the eib module of Python hooks.

Run with Debian's python3 and python3-pytest, with lib/ on PYTHONPATH (what
tests/hooks/python_test.go does):

    PYTHONPATH=lib /usr/bin/python3 -m pytest tests/hooks/python
"""

import json
import logging
import os
import subprocess
import sys
import textwrap

import pytest

import eib

FULLCONFIG = textwrap.dedent("""\
    # Full configuration for demo-master-amd64-amd64.1.base
    [build]
    cachedir = /var/cache/eib
    builddir = ${cachedir}/build
    tmpdir = ${builddir}/tmp
    dry_run = False
    outversion = demo-${branch}
    branch = master

    [image]
    hooks = 10-a
    \t50-b
    price = $$5
    signing_key = ${build:tmpdir}/key.asc

    [flatpak-remote-eos]
    url = https://example.org/${build:branch}
    """)


@pytest.fixture
def fullconfig(tmp_path, monkeypatch):
    path = tmp_path / 'fullconfig.ini'
    path.write_text(FULLCONFIG)
    monkeypatch.setenv('EIB_TMPFULLCONFIG', str(path))
    return path


def test_get_config_reads_tmpfullconfig_and_interpolates(fullconfig):
    config = eib.get_config()
    assert isinstance(config, eib.ImageConfigParser)
    assert config['build']['tmpdir'] == '/var/cache/eib/build/tmp'
    assert config['image']['signing_key'] == '/var/cache/eib/build/tmp/key.asc'
    assert config['image']['price'] == '$5'
    assert config['image']['hooks'].split() == ['10-a', '50-b']
    assert config['flatpak-remote-eos']['url'] == 'https://example.org/master'
    assert config.getboolean('build', 'dry_run') is False
    # The raw value stays available.
    assert config.get('build', 'tmpdir', raw=True) == '${builddir}/tmp'


def test_get_config_from_a_path_and_its_errors(fullconfig, tmp_path,
                                               monkeypatch):
    assert eib.get_config(str(fullconfig))['build']['branch'] == 'master'
    monkeypatch.delenv('EIB_TMPFULLCONFIG')
    with pytest.raises(eib.ImageBuildError, match='EIB_TMPFULLCONFIG'):
        eib.get_config()
    missing = tmp_path / 'nothing.ini'
    with pytest.raises(eib.ImageBuildError, match=str(missing)):
        eib.get_config(str(missing))
    bad = tmp_path / 'bad.ini'
    bad.write_text('no section header\n')
    with pytest.raises(eib.ImageBuildError, match=str(bad)):
        eib.get_config(str(bad))


def test_environment_names_are_those_hooks_see(fullconfig):
    config = eib.get_config()
    assert config.getenv('build', 'tmpdir') == (
        'EIB_TMPDIR', '/var/cache/eib/build/tmp')
    assert config.getenv('build', 'dry_run') == ('EIB_DRY_RUN', 'false')
    assert config.getenv('flatpak-remote-eos', 'url') == (
        'EIB_FLATPAK_REMOTE_EOS_URL', 'https://example.org/master')
    env = config.get_environment()
    assert env['EIB_IMAGE_SIGNING_KEY'] == '/var/cache/eib/build/tmp/key.asc'
    assert env['EIB_IMAGE_HOOKS'] == '10-a\n50-b'


def test_an_empty_config_has_a_build_section():
    config = eib.ImageConfigParser()
    assert config.has_section('build')
    config.setboolean('build', 'dry_run', True)
    assert config['build']['dry_run'] == 'true'
    with pytest.raises(TypeError):
        config.setboolean('build', 'dry_run', 'yes')


def test_get_manifest_reads_the_merged_manifest(tmp_path, monkeypatch):
    monkeypatch.setenv('EIB_OUTDIR', str(tmp_path))
    monkeypatch.setenv('EIB_OUTVERSION', 'demo-master.1.base')
    with pytest.raises(eib.ImageBuildError, match='No manifest file'):
        eib.get_manifest()
    path = tmp_path / 'demo-master.1.base.manifest.json'
    path.write_text(json.dumps({'product': 'demo', 'images': {}}))
    assert eib.get_manifest() == {'product': 'demo', 'images': {}}
    other = tmp_path / 'other.json'
    other.write_text('{"x": 1}')
    assert eib.get_manifest(str(other)) == {'x': 1}
    other.write_text('{not json')
    with pytest.raises(eib.ImageBuildError, match='is not JSON'):
        eib.get_manifest(str(other))
    monkeypatch.delenv('EIB_OUTDIR')
    with pytest.raises(eib.ImageBuildError, match='EIB_OUTDIR'):
        eib.get_manifest()


def test_image_build_error_joins_its_arguments():
    err = eib.ImageBuildError('No keys in', '/x/keys', 3)
    assert str(err) == 'No keys in /x/keys 3'
    assert err.msg == 'No keys in /x/keys 3'


@pytest.mark.parametrize('debug,level', [('1', 'DEBUG'), ('', 'INFO')])
def test_setup_logging_level_follows_eib_debug(debug, level):
    code = ('import eib, logging; eib.setup_logging(); eib.setup_logging(); '
            'r = logging.getLogger(); '
            'print(logging.getLevelName(r.level), len(r.handlers)); '
            'logging.getLogger("hook").warning("said")')
    env = dict(os.environ, EIB_DEBUG=debug)
    proc = subprocess.run([sys.executable, '-c', code], env=env,
                          capture_output=True, text=True, check=True)
    assert proc.stdout == f'{level} 1\n'
    assert proc.stderr.startswith('+ ')
    assert proc.stderr.rstrip().endswith('WARNING hook: said')


def test_retry_returns_after_transient_failures(caplog):
    calls = []

    def flaky(a, b=0):
        calls.append((a, b))
        if len(calls) < 3:
            raise OSError('not yet')
        return a + b

    with caplog.at_level(logging.WARNING):
        assert eib.retry(flaky, 1, b=2, timeout=0) == 3
    assert calls == [(1, 2)] * 3
    assert 'retrying' in caplog.text


def test_retry_gives_up_after_max_retries():
    calls = []

    def broken():
        calls.append(1)
        raise ValueError('always')

    with pytest.raises(ValueError, match='always'):
        eib.retry(broken, max_retries=2, timeout=0)
    assert len(calls) == 3


def test_recreate_dir_and_disk_usage(tmp_path):
    d = tmp_path / 'd'
    (d / 'sub').mkdir(parents=True)
    (d / 'sub' / 'f').write_bytes(b'x' * 1000)
    eib.recreate_dir(str(d))
    assert list(d.iterdir()) == []
    eib.recreate_dir(str(tmp_path / 'new' / 'deep'))
    assert (tmp_path / 'new' / 'deep').is_dir()

    (d / 'a').write_bytes(b'a' * 5000)
    (d / 'sub').mkdir()
    (d / 'sub' / 'b').write_bytes(b'b' * 300)
    big = tmp_path / 'big'
    big.write_bytes(b'z' * 100000)
    (d / 'link').symlink_to(big)
    expected = sum(os.lstat(p).st_size for p in
                   [d, d / 'a', d / 'sub', d / 'sub' / 'b', d / 'link'])
    assert eib.disk_usage(str(d)) == expected
    assert eib.disk_usage(str(d)) < 100000


def test_get_ostree_trusted_keys(tmp_path):
    data = tmp_path / 'data'
    local = tmp_path / 'local' / 'data'
    config = eib.ImageConfigParser()
    config['build']['datadir'] = str(data)
    with pytest.raises(eib.ImageBuildError, match='No OSTree keys directory'):
        eib.get_ostree_trusted_keys(config)
    (data / 'keys').mkdir(parents=True)
    with pytest.raises(eib.ImageBuildError, match=r'No OSTree keys \(\*.asc\)'):
        eib.get_ostree_trusted_keys(config)
    for p in [data / 'keys' / 'b.asc', data / 'keys' / 'readme.txt',
              local / 'keys' / 'a.asc']:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text('key\n')
    assert eib.get_ostree_trusted_keys(config) == [str(data / 'keys' / 'b.asc')]
    config['build']['localdatadir'] = str(local)
    assert eib.get_ostree_trusted_keys(config) == [
        str(data / 'keys' / 'b.asc'), str(local / 'keys' / 'a.asc')]
