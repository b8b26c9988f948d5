"""eib's Python library for hooks.

Hooks run with this directory on PYTHONPATH (after <localdir>/lib), on the
host as in .chroot hooks, so a Python hook written for EIB (Endless OS's
image builder) does ``import eib`` and finds the same functions:

    config = eib.get_config()            # the build's merged configuration
    manifest = eib.get_manifest()        # the merged manifest (publish)
    eib.setup_logging()                  # EIB_DEBUG=1 (--debug): DEBUG
    eib.retry(fetch, url, max_retries=5) # transient failures
    eib.recreate_dir(path)
    eib.disk_usage(path)                 # bytes, like du --apparent-size
    eib.get_ostree_trusted_keys(config)  # data/keys/*.asc files
    raise eib.ImageBuildError('no such app', name)

Only the standard library is used: the module also runs inside the OS being
built, whatever Python 3 it has.
"""

import configparser
import glob
import json
import logging
import os
import re
import shutil
import time

__all__ = [
    'CACHEDIR',
    'SYSCONFDIR',
    'ImageBuildError',
    'ImageConfigParser',
    'disk_usage',
    'get_config',
    'get_manifest',
    'get_ostree_trusted_keys',
    'recreate_dir',
    'retry',
    'setup_logging',
]

# eib's defaults of [build] cachedir and sysconfdir (EIB_CACHEDIR and
# EIB_SYSCONFDIR in a hook are the build's own).
CACHEDIR = '/var/cache/eib'
SYSCONFDIR = '/etc/eib'

logger = logging.getLogger(__name__)


class ImageBuildError(Exception):
    """A build error; its message is its arguments joined by spaces."""

    def __init__(self, *args):
        super().__init__(*args)
        self.msg = ' '.join(str(a) for a in args)

    def __str__(self):
        return self.msg


class ImageConfigParser(configparser.ConfigParser):
    """eib's configuration, with ${key} and ${section:key} interpolation
    (configparser.ExtendedInterpolation) as eib itself resolves it. The
    [build] section always exists."""

    BUILD_SECTION = 'build'

    def __init__(self, *args, **kwargs):
        kwargs.setdefault('interpolation',
                          configparser.ExtendedInterpolation())
        super().__init__(*args, **kwargs)
        if not self.has_section(self.BUILD_SECTION):
            self.add_section(self.BUILD_SECTION)

    def setboolean(self, section, option, value):
        """Store a bool as the shell-friendly 'true' or 'false'."""
        if not isinstance(value, bool):
            raise TypeError(f'{section}:{option}: not a bool: {value!r}')
        self.set(section, option, 'true' if value else 'false')

    def getenv(self, section, option):
        """The (name, value) of section:option as a hook's environment has
        it: EIB_<SECTION>_<OPTION> (EIB_<OPTION> for [build]), characters
        other than A-Z, 0-9 and _ turned into _, booleans as true/false."""
        value = self[section][option]
        if value.lower() in ('true', 'false'):
            value = value.lower()
        name = 'EIB_'
        if section != self.BUILD_SECTION:
            name += section.upper() + '_'
        name += option.upper()
        return re.sub(r'[^A-Z0-9_]', '_', name), value

    def get_environment(self):
        """Every option as a hook's environment variable: {name: value}."""
        return dict(self.getenv(section, option)
                    for section in self.sections()
                    for option in self.options(section))


def get_config(path=None):
    """The build's full merged configuration (private files included), as
    an ImageConfigParser, read from path or else EIB_TMPFULLCONFIG (the
    [build] tmpfullconfig file eib writes before the first stage)."""
    if path is None:
        path = os.environ.get('EIB_TMPFULLCONFIG')
        if not path:
            raise ImageBuildError('EIB_TMPFULLCONFIG is not set: no path to',
                                  'the configuration file')
    if not os.path.exists(path):
        raise ImageBuildError('No configuration file at', path)
    config = ImageConfigParser()
    try:
        read = config.read(path, encoding='utf-8')
    except configparser.Error as err:
        raise ImageBuildError('Reading configuration', path + ':', err)
    if not read:
        raise ImageBuildError('No configuration read from', path)
    return config


def get_manifest(path=None):
    """The merged manifest of the build, as parsed JSON, read from path or
    else ${EIB_OUTDIR}/${EIB_OUTVERSION}.manifest.json (written by the
    manifest stage: use it from the publish hooks on)."""
    if path is None:
        outdir = os.environ.get('EIB_OUTDIR')
        outversion = os.environ.get('EIB_OUTVERSION')
        if not outdir or not outversion:
            raise ImageBuildError('EIB_OUTDIR and EIB_OUTVERSION must be set',
                                  'to find the manifest')
        path = os.path.join(outdir, outversion + '.manifest.json')
    if not os.path.exists(path):
        raise ImageBuildError('No manifest file at', path)
    with open(path, encoding='utf-8') as f:
        try:
            return json.load(f)
        except ValueError as err:
            raise ImageBuildError('Manifest', path, 'is not JSON:', err)


def setup_logging():
    """Log to stderr with the time, level and logger name; DEBUG when
    EIB_DEBUG=1 (eib --debug), INFO otherwise. Does nothing once the root
    logger has a handler, so calling it again is harmless."""
    level = logging.DEBUG if os.environ.get('EIB_DEBUG') == '1' \
        else logging.INFO
    logging.basicConfig(
        level=level,
        format='+ %(asctime)s %(levelname)s %(name)s: %(message)s',
        datefmt='%H:%M:%S')


def retry(func, *args, max_retries=3, timeout=1, **kwargs):
    """Return func(*args, **kwargs), calling it again after any exception,
    up to max_retries more times, timeout seconds apart; the last failure
    is raised."""
    setup_logging()
    attempt = 0
    while True:
        try:
            return func(*args, **kwargs)
        except Exception:
            attempt += 1
            if attempt > max_retries:
                logger.error('%s failed %d times; giving up',
                             getattr(func, '__name__', func), attempt)
                raise
            logger.warning('%s failed (attempt %d of %d); retrying',
                           getattr(func, '__name__', func), attempt,
                           max_retries + 1, exc_info=True)
            time.sleep(timeout)


def recreate_dir(path):
    """Delete path, whatever it holds, and make it again, empty."""
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path, exist_ok=True)


def disk_usage(path):
    """Apparent size in bytes of path and everything under it (symbolic
    links counted as links, never followed)."""
    total = os.lstat(path).st_size
    for top, dirs, files in os.walk(path):
        for name in dirs + files:
            total += os.lstat(os.path.join(top, name)).st_size
    return total


def get_ostree_trusted_keys(config):
    """The OSTree keys a build trusts: every *.asc file of
    ${build:datadir}/keys and ${build:localdatadir}/keys, sorted by path.
    Neither directory, or no key in them, is an ImageBuildError."""
    build = config[ImageConfigParser.BUILD_SECTION]
    dirs = [os.path.join(build['datadir'], 'keys')]
    if 'localdatadir' in build:
        dirs.append(os.path.join(build['localdatadir'], 'keys'))
    present = [d for d in dirs if os.path.isdir(d)]
    if not present:
        raise ImageBuildError('No OSTree keys directory:', ' '.join(dirs))
    keys = sorted(k for d in present
                  for k in glob.glob(os.path.join(glob.escape(d), '*.asc')))
    if not keys:
        raise ImageBuildError('No OSTree keys (*.asc) in', ' '.join(present))
    return keys
