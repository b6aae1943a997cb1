"""``lab install``: put on this machine what the lab needs, and nothing it already has.

Steps, each skipped when already done (so a second run is fast and changes nothing):
  1. Debian packages for libvirt, QEMU and the C compiler (``apt-get update`` at most once,
     ``--no-install-recommends``);
  2. the user ``libvirt-qemu``, without which libvirt's QEMU driver refuses to start;
  3. the guest kernel: the real package behind ``linux-image-cloud-amd64``, fetched with
     ``apt-get download``, unpacked with ``dpkg -x`` in the cache dir; only vmlinuz is kept;
  4. the guest's static /init, compiled from ``tools/lab/guest/init.c`` when the source changed;
  5. the initramfs (see :mod:`tools.lab.initramfs`) when /init changed.

Concurrency: runs under the lab lock (see :mod:`tools.lab.state`); images are replaced by
rename, so guests starting meanwhile see whole files.
"""

import glob
import grp
import hashlib
import logging
import os
import pwd
import re
import shutil
import tempfile

from tools.lab import commands
from tools.lab import errors
from tools.lab import initramfs

LOG = logging.getLogger(__name__)

DEB_PACKAGES = ('libvirt-daemon', 'libvirt-daemon-driver-qemu', 'libvirt-clients',
                'qemu-system-x86', 'qemu-utils', 'gcc', 'libc6-dev',
                'iproute2')  # ss: tools.lab.streams
KERNEL_META_PACKAGE = 'linux-image-cloud-amd64'
QEMU_USER = 'libvirt-qemu'
INIT_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'guest', 'init.c')

APT_TIMEOUT = 900
QUICK_TIMEOUT = 60


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


def _read(path):
    try:
        with open(path, encoding='utf-8') as f:
            return f.read().strip()
    except FileNotFoundError:
        return None


def _write(path, text):
    tmp = '%s.%d.tmp' % (path, os.getpid())
    with open(tmp, 'w', encoding='utf-8') as f:
        f.write(text + '\n')
    os.replace(tmp, path)


class Installer:
    """Runs the install steps for one lab configuration (:class:`tools.lab.config.LabConfig`)."""

    def __init__(self, config):
        self.config = config
        self._apt_updated = False

    def run(self):
        """Run every step; return the list of steps that did something.

        :raises InstallError: a step failed (the message names it and its log, if any).
        """
        if os.geteuid() != 0:
            raise errors.InstallError('lab install must run as root (it installs packages and '
                                      'starts namespaced daemons)')
        os.makedirs(self.config.images_dir, exist_ok=True)
        os.makedirs(self.config.cache_dir, exist_ok=True)
        done = []
        for step in (self.install_packages, self.create_qemu_user, self.fetch_kernel,
                     self.build_init, self.build_initramfs):
            if step():
                done.append(step.__name__)
        LOG.info('install: %s', ', '.join(done) if done else 'everything already in place')
        return done

    # --- packages ----------------------------------------------------------------------

    @staticmethod
    def missing_packages(packages=DEB_PACKAGES):
        """The Debian packages of packages that are not installed."""
        result = commands.run(['dpkg-query', '-W', '-f', '${Package} ${Status}\n']
                              + list(packages), 'check installed packages', QUICK_TIMEOUT,
                              error=errors.InstallError, check=False)
        installed = {line.split()[0] for line in result.stdout.splitlines()
                     if line.endswith(' install ok installed')}
        return [p for p in packages if p not in installed]

    def _apt_update(self):
        if not self._apt_updated:
            LOG.info('install: apt-get update')
            commands.run(['apt-get', 'update', '-q'], 'run apt-get update', APT_TIMEOUT,
                         error=errors.InstallError)
            self._apt_updated = True

    def install_packages(self):
        missing = self.missing_packages()
        if not missing:
            return False
        LOG.info('install: Debian packages %s', ' '.join(missing))
        self._apt_update()
        commands.run(['apt-get', 'install', '-y', '-q', '--no-install-recommends'] + missing,
                     'install Debian packages %s' % ' '.join(missing), APT_TIMEOUT,
                     error=errors.InstallError)
        return True

    # --- user --------------------------------------------------------------------------

    @staticmethod
    def create_qemu_user():
        try:
            pwd.getpwnam(QEMU_USER)
            return False
        except KeyError:
            pass
        try:
            group = ['--gid', grp.getgrnam('kvm').gr_name]
        except KeyError:
            group = ['--user-group']
        LOG.info('install: creating user %s', QEMU_USER)
        commands.run(['useradd', '--system', '--no-create-home', '--home-dir',
                      '/var/lib/libvirt', '--shell', '/usr/sbin/nologin'] + group
                     + [QEMU_USER], 'create user %s' % QEMU_USER, QUICK_TIMEOUT,
                     error=errors.InstallError)
        return True

    # --- kernel ------------------------------------------------------------------------

    def _kernel_package(self):
        """The versioned kernel package the meta package currently depends on."""
        for attempt in range(2):
            result = commands.run(['apt-cache', 'depends', '--no-recommends', '--no-suggests',
                                   '--no-conflicts', '--no-breaks', '--no-replaces',
                                   '--no-enhances', KERNEL_META_PACKAGE],
                                  'resolve %s' % KERNEL_META_PACKAGE, QUICK_TIMEOUT,
                                  error=errors.InstallError, check=False)
            found = re.findall(r'^\s*Depends:\s*(linux-image-\S+)\s*$', result.stdout, re.M)
            if result.returncode == 0 and found:
                return found[0]
            if attempt == 0:
                self._apt_update()
        raise errors.InstallError('could not resolve %s to a kernel package: apt-cache says: %s'
                                  % (KERNEL_META_PACKAGE,
                                     ' '.join((result.stderr or result.stdout).split())[-300:]))

    def fetch_kernel(self):
        kernel = self.config.kernel_path
        if os.path.exists(kernel):
            return False
        package = self._kernel_package()
        LOG.info('install: downloading kernel package %s', package)
        workdir = tempfile.mkdtemp(prefix='kernel-', dir=self.config.cache_dir)
        try:
            commands.run(['apt-get', 'download', '-q', '-o', 'APT::Sandbox::User=root',
                          package], 'download %s' % package, APT_TIMEOUT,
                         error=errors.InstallError, cwd=workdir)
            debs = glob.glob(os.path.join(workdir, '*.deb'))
            if len(debs) != 1:
                raise errors.InstallError('download %s: expected one .deb in %s, found %d'
                                          % (package, workdir, len(debs)))
            tree = os.path.join(workdir, 'tree')
            commands.run(['dpkg', '-x', debs[0], tree], 'unpack %s' % debs[0], APT_TIMEOUT,
                         error=errors.InstallError)
            images = glob.glob(os.path.join(tree, 'boot', 'vmlinuz-*'))
            if len(images) != 1:
                raise errors.InstallError('unpack %s: expected one boot/vmlinuz-*, found %d'
                                          % (debs[0], len(images)))
            tmp = '%s.%d.tmp' % (kernel, os.getpid())
            shutil.copyfile(images[0], tmp)
            os.replace(tmp, kernel)
            _write(kernel + '.source', '%s %s' % (os.path.basename(debs[0]),
                                                  os.path.basename(images[0])))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        LOG.info('install: kernel %s ready at %s', package, kernel)
        return True

    # --- guest /init and initramfs -----------------------------------------------------

    def build_init(self):
        target = self.config.init_path
        stamp = target + '.source-sha256'
        source_hash = _sha256(INIT_SOURCE)
        if os.path.exists(target) and _read(stamp) == source_hash:
            return False
        LOG.info('install: compiling %s', INIT_SOURCE)
        tmp = '%s.%d.tmp' % (target, os.getpid())
        try:
            commands.run(['gcc', '-static', '-Os', '-s', '-Wall', '-o', tmp, INIT_SOURCE],
                         'compile the guest /init %s' % INIT_SOURCE, 300,
                         error=errors.InstallError)
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        _write(stamp, source_hash)
        return True

    def build_initramfs(self):
        target = self.config.initramfs_path
        stamp = target + '.init-sha256'
        init_hash = _sha256(self.config.init_path)
        if os.path.exists(target) and _read(stamp) == init_hash:
            return False
        LOG.info('install: writing initramfs %s', target)
        initramfs.write_initramfs(self.config.init_path, target)
        _write(stamp, init_hash)
        return True

    def check_images(self):
        """Raise InstallError unless the kernel and the initramfs exist."""
        for path in (self.config.kernel_path, self.config.initramfs_path):
            if not os.path.exists(path):
                raise errors.InstallError('%s is missing: run "python -m tools.lab install" '
                                          '(state dir %s)' % (path, self.config.state_dir))
