// A private OpenSSH server on a random 127.0.0.1 port with keys made at test time,
// and an ssh config that reaches it either directly or through ssm-proxy.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';

export const REPO = resolve(new URL('../..', import.meta.url).pathname);
export const PROXY_BIN = join(REPO, 'bin', 'ssm-proxy');

/**
 * PATH with the node running this process first. The launcher is started as ssh starts
 * it, through its #! line, which finds `node` on PATH (and gives it its flags).
 */
export function pathWithNode(path = process.env.PATH): string {
  return [dirname(process.execPath), ...(path ? [path] : [])].join(delimiter);
}

const INSTALL_HINT = 'install OpenSSH and rsync: apt-get install -y openssh-server openssh-client rsync';

function findBinary(name: string, dirs = ['/usr/sbin', '/usr/bin', '/usr/local/sbin', '/usr/local/bin']): string | undefined {
  return dirs.map((d) => join(d, name)).find((p) => existsSync(p));
}

/** Fails (never skips) with what to install when OpenSSH is missing. */
export function requireOpenSsh(): { sshd: string; ssh: string; scp: string; rsync: string; keygen: string } {
  const found = { sshd: findBinary('sshd'), ssh: findBinary('ssh'), scp: findBinary('scp'), rsync: findBinary('rsync'), keygen: findBinary('ssh-keygen') };
  const missing = Object.entries(found).filter(([, p]) => !p).map(([n]) => n);
  if (missing.length > 0) throw new Error(`the end-to-end tests need ${missing.join(', ')}: ${INSTALL_HINT}`);
  if (!existsSync(join(REPO, 'dist', 'ssm-proxy.cjs'))) throw new Error('dist/ssm-proxy.cjs is missing: run `npm run build` (npm test does)');
  return found as { sshd: string; ssh: string; scp: string; rsync: string; keygen: string };
}

export async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => res(port));
    });
  });
}

export async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (let i = 0; i < 1000 && Date.now() < until; i++) {
    const ok = await new Promise<boolean>((res) => {
      const c = connect(port, '127.0.0.1');
      c.once('connect', () => {
        c.destroy();
        res(true);
      });
      c.once('error', () => res(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms`);
}

export interface SshdHandle {
  dir: string;
  port: number;
  userKey: string;
  knownHosts: string;
  bins: ReturnType<typeof requireOpenSsh>;
  stop(): Promise<void>;
  /** Writes an ssh config: `direct` reaches sshd itself; i-* and mi-* go through ssm-proxy. */
  writeConfig(proxyArgs: string[], extra?: string[]): string;
}

export async function startSshd(): Promise<SshdHandle> {
  const bins = requireOpenSsh();
  const dir = mkdtempSync(join(tmpdir(), 'ssm-proxy-e2e-'));
  const hostKey = join(dir, 'host_ed25519');
  const userKey = join(dir, 'user_ed25519');
  for (const k of [hostKey, userKey]) {
    const r = spawnSync(bins.keygen, ['-q', '-t', 'ed25519', '-N', '', '-f', k], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`ssh-keygen failed: ${r.stderr}`);
  }
  writeFileSync(join(dir, 'authorized_keys'), spawnSync('cat', [`${userKey}.pub`], { encoding: 'utf8' }).stdout, { mode: 0o600 });
  // sshd needs its privilege separation directory.
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  const user = process.env.USER || spawnSync('id', ['-un'], { encoding: 'utf8' }).stdout.trim() || 'root';

  let proc: ChildProcess | undefined;
  let port = 0;
  let log = '';
  for (let attempt = 0; attempt < 5 && !proc; attempt++) {
    port = await freePort();
    const cfg = join(dir, 'sshd_config');
    writeFileSync(
      cfg,
      [
        `Port ${port}`,
        'ListenAddress 127.0.0.1',
        `HostKey ${hostKey}`,
        `PidFile ${join(dir, 'sshd.pid')}`,
        `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'PubkeyAuthentication yes',
        'PermitRootLogin yes',
        'StrictModes no',
        'UsePAM no',
        'UseDNS no',
        'Subsystem sftp internal-sftp',
        'MaxStartups 100:30:200',
        'MaxSessions 100',
        'LogLevel ERROR',
        '',
      ].join('\n'),
    );
    const p = spawn(bins.sshd, ['-D', '-e', '-f', cfg], { stdio: ['ignore', 'ignore', 'pipe'] });
    p.stderr!.on('data', (d) => (log += d.toString()));
    try {
      await waitForPort(port, 5_000);
      proc = p;
    } catch {
      p.kill('SIGKILL');
    }
  }
  if (!proc) throw new Error(`sshd did not start: ${log.trim()}`);
  // sshd -D outlives a test process that dies or exits early; take it down with us.
  const killOnExit = () => proc?.kill('SIGTERM');
  process.once('exit', killOnExit);
  const hostPub = spawnSync('cat', [`${hostKey}.pub`], { encoding: 'utf8' }).stdout.trim();
  const knownHosts = join(dir, 'known_hosts');
  // One entry under a wildcard so that every instance id and the direct alias verify the host key.
  writeFileSync(knownHosts, `* ${hostPub}\n[127.0.0.1]:${port} ${hostPub}\n`);

  const handle: SshdHandle = {
    dir,
    port,
    userKey,
    knownHosts,
    bins,
    async stop() {
      process.removeListener('exit', killOnExit);
      if (proc && proc.exitCode === null) {
        const exited = new Promise((r) => proc!.once('exit', r));
        proc.kill('SIGTERM');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
      }
      rmSync(dir, { recursive: true, force: true });
    },
    writeConfig(proxyArgs, extra = []) {
      const file = join(dir, `ssh_config_${Math.random().toString(36).slice(2)}`);
      const common = [`  User ${user}`, `  IdentityFile ${userKey}`, '  IdentitiesOnly yes', `  UserKnownHostsFile ${knownHosts}`, '  StrictHostKeyChecking yes', '  BatchMode yes', '  LogLevel ERROR', ...extra];
      const proxy = [PROXY_BIN, ...proxyArgs].map((a) => (/\s/.test(a) ? `"${a}"` : a)).join(' ');
      writeFileSync(
        file,
        ['Host direct', '  HostName 127.0.0.1', `  Port ${port}`, ...common, '', 'Host i-* mi-*', `  ProxyCommand ${proxy} %h %p`, ...common, ''].join('\n'),
      );
      return file;
    },
  };
  return handle;
}
