// Opt-in CPU profiling of a real ProxyCommand run (SSM_PROXY_CPU_PROFILE=FILE, %p = pid):
// ssh starts the proxy itself, so node's --cpu-prof flag cannot be passed.
import { Session } from 'node:inspector';
import { writeFileSync } from 'node:fs';

let session: Session | undefined;

export function startCpuProfile(): void {
  if (!process.env.SSM_PROXY_CPU_PROFILE || session) return;
  session = new Session();
  session.connect();
  session.post('Profiler.enable');
  session.post('Profiler.start');
}

export function stopCpuProfile(): Promise<void> {
  const file = process.env.SSM_PROXY_CPU_PROFILE;
  const s = session;
  if (!file || !s) return Promise.resolve();
  session = undefined;
  return new Promise((resolve) => {
    s.post('Profiler.stop', (err, res) => {
      if (!err && res) writeFileSync(file.replace('%p', String(process.pid)), JSON.stringify(res.profile));
      s.disconnect();
      resolve();
    });
  });
}
