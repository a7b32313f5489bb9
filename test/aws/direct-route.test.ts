import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { directRoute, type DirectRouteConfig } from '../../src/aws/direct-route.ts';

let dir: string;
let env: NodeJS.ProcessEnv;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ssm-proxy-route-'));
  env = { HOME: dir, AWS_CONFIG_FILE: join(dir, 'config'), AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE', AWS_SECRET_ACCESS_KEY: 'secret' };
});

afterEach(() => rmSync(dir, { recursive: true, force: true }));

const route = (cfg: DirectRouteConfig) => directRoute(cfg, env);
const reason = (cfg: DirectRouteConfig) => {
  const r = route(cfg);
  return r.ok ? 'direct' : r.reason;
};

describe('directRoute', () => {
  it("signs here with the environment's keys, a region and the regional endpoint", () => {
    env.AWS_SESSION_TOKEN = 'token';
    expect(route({ region: 'eu-west-1' })).toEqual({
      ok: true,
      region: 'eu-west-1',
      endpoint: new URL('https://ssm.eu-west-1.amazonaws.com'),
      credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret', sessionToken: 'token' },
      maxAttempts: 3,
    });
    expect(route({ region: 'cn-north-1' })).toMatchObject({ endpoint: new URL('https://ssm.cn-north-1.amazonaws.com.cn') });
  });

  it('takes a given endpoint as it is, and a config file with nothing that changes the call', () => {
    writeFileSync(join(dir, 'config'), '[default]\nregion = eu-west-1\noutput = json\n[profile other]\nrole_arn = arn:aws:iam::1:role/x\n');
    expect(route({ region: 'eu-west-1', endpointUrl: 'http://127.0.0.1:4566' })).toMatchObject({ ok: true, endpoint: new URL('http://127.0.0.1:4566') });
    expect(route({ region: 'eu-west-1' })).toMatchObject({ ok: true });
  });

  it('uses the keys with a profile from AWS_PROFILE (as the AWS CLI), not with --profile', () => {
    expect(reason({ region: 'eu-west-1', profile: 'work', profileFromEnv: true })).toBe('direct');
    expect(reason({ region: 'eu-west-1', profile: 'work' })).toBe('--profile work');
  });

  it('leaves to the SDK whatever it would resolve otherwise', () => {
    expect(reason({})).toBe('the region is in the config file');
    expect(reason({ region: 'eu-isoe-west-1' })).toBe('no regional endpoint known for eu-isoe-west-1');
    expect(reason({ region: 'eu-west-1', endpointUrl: 'http://127.0.0.1:4566/ssm' })).toBe('the endpoint URL has a path or query');
    delete env.AWS_SECRET_ACCESS_KEY;
    expect(reason({ region: 'eu-west-1' })).toBe('no keys in the environment');
  });

  it.each(['AWS_USE_FIPS_ENDPOINT', 'AWS_USE_DUALSTACK_ENDPOINT', 'AWS_RETRY_MODE'])('leaves %s to the SDK', (name) => {
    env[name] = name === 'AWS_RETRY_MODE' ? 'adaptive' : 'true';
    expect(reason({ region: 'eu-west-1' })).toBe(`${name} is set`);
  });

  it.each(['endpoint_url = http://localhost:4566', 'use_fips_endpoint = true', 'use_dualstack_endpoint=true', 'services = local', 'max_attempts = 10', '  retry_mode = adaptive'])(
    'leaves a config file with "%s" to the SDK',
    (line) => {
      writeFileSync(join(dir, 'config'), `[default]\nregion = eu-west-1\n${line}\n`);
      expect(reason({ region: 'eu-west-1' })).toBe('the config file has endpoint or retry settings');
    },
  );

  it('leaves a config file it cannot read as a file to the SDK', () => {
    env.AWS_CONFIG_FILE = dir;
    expect(reason({ region: 'eu-west-1' })).toBe('the config file cannot be read here');
  });

  it('honours AWS_MAX_ATTEMPTS, and leaves a value it cannot read to the SDK', () => {
    env.AWS_MAX_ATTEMPTS = '5';
    expect(route({ region: 'eu-west-1' })).toMatchObject({ maxAttempts: 5 });
    env.AWS_MAX_ATTEMPTS = 'many';
    expect(reason({ region: 'eu-west-1' })).toBe('AWS_MAX_ATTEMPTS is not a positive whole number');
  });

  it('goes through the SDK for everything with SSM_PROXY_USE_SDK=1', () => {
    expect(reason({ region: 'eu-west-1', useSdk: true })).toBe('SSM_PROXY_USE_SDK is set');
  });
});
