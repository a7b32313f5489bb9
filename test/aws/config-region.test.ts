// The region read from the AWS config file before the SDK loads (a guess for opening the
// API's connection early): the profile's section, as the SDK names them.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configFileRegion } from '../../src/aws/config-region.ts';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'ssm-proxy-config-region-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function config(name: string, text: string): NodeJS.ProcessEnv {
  const file = join(dir, name);
  writeFileSync(file, text);
  return { AWS_CONFIG_FILE: file };
}

describe('configFileRegion', () => {
  const text = [
    '# made by aws configure',
    '[default]',
    'region = eu-west-1',
    'output = json',
    '',
    '[profile work]',
    'sso_session = corp',
    '  region=ap-southeast-2   ; the team account',
    '',
    '[profile  spaced ]',
    'region =us-gov-west-1',
    '',
    '[sso-session corp]',
    'region = us-east-1',
    '[profile noregion]',
    'output = text',
  ].join('\n');

  it("reads the default profile's region, and a named profile's", () => {
    const env = config('a', text);
    expect(configFileRegion(undefined, env)).toBe('eu-west-1');
    expect(configFileRegion('default', env)).toBe('eu-west-1');
    expect(configFileRegion('work', env)).toBe('ap-southeast-2');
    expect(configFileRegion('spaced', env)).toBe('us-gov-west-1');
  });

  it('is undefined for a profile without a region, an unknown profile, or a section that is not a profile', () => {
    const env = config('b', text);
    expect(configFileRegion('noregion', env)).toBeUndefined();
    expect(configFileRegion('missing', env)).toBeUndefined();
    expect(configFileRegion('corp', env)).toBeUndefined(); // [sso-session corp]
  });

  it('takes [profile default] for the default profile, and reads ~/.aws/config without AWS_CONFIG_FILE', () => {
    const home = join(dir, 'home');
    mkdirSync(join(home, '.aws'), { recursive: true });
    writeFileSync(join(home, '.aws', 'config'), '[profile default]\r\nregion = sa-east-1\r\n');
    expect(configFileRegion(undefined, { HOME: home })).toBe('sa-east-1');
  });

  it('leaves a pipe alone: reading it would take its content from the SDK (and could block)', () => {
    const fifo = join(dir, 'fifo');
    const r = spawnSync('mkfifo', [fifo]);
    expect(r.status, 'mkfifo').toBe(0);
    // No writer: opening it would block for good, so the check runs in a child with a time limit.
    const module = join(import.meta.dirname, '..', '..', 'src', 'aws', 'config-region.ts');
    const code = `import { configFileRegion } from ${JSON.stringify(module)}; process.stdout.write(String(configFileRegion(undefined, { AWS_CONFIG_FILE: ${JSON.stringify(fifo)} })));`;
    const child = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { encoding: 'utf8', timeout: 15_000 });
    expect(child.signal, 'blocked on the pipe').toBeNull();
    expect(child.stdout).toBe('undefined');
  });

  it('is undefined without a file, and for a value that is not a region', () => {
    expect(configFileRegion(undefined, { AWS_CONFIG_FILE: join(dir, 'none') })).toBeUndefined();
    expect(configFileRegion(undefined, config('c', '[default]\nregion = $(evil)\n'))).toBeUndefined();
    expect(configFileRegion(undefined, config('d', '[default]\nregion =\n'))).toBeUndefined();
  });
});
