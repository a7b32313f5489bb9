// Opt-in CPU profiling of a real ProxyCommand run (SSM_PROXY_CPU_PROFILE=FILE, %p = pid):
// ssh starts the proxy itself, so node's --cpu-prof flag cannot be passed.
import type { Session } from 'node:inspector';
import { createRequire } from 'node:module';
import { writeFileSync } from 'node:fs';

let session: Session | undefined;

export function startCpuProfile(): void {
  if (!process.env.SSM_PROXY_CPU_PROFILE || session) return;
  // Loaded only when asked for: the inspector module costs every start-up a few ms.
  const { Session: InspectorSession } = createRequire(import.meta.url)('node:inspector') as typeof import('node:inspector');
  session = new InspectorSession();
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
      const path = file.replace('%p', String(process.pid));
      try {
        if (!err && res) writeFileSync(path, JSON.stringify(res.profile));
      } catch (e) {
        process.stderr.write(`ssm-proxy: cannot write the CPU profile ${path} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); check SSM_PROXY_CPU_PROFILE\n`);
      }
      s.disconnect();
      resolve();
    });
  });
}
