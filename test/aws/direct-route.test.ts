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
    expect(reason({})).toBe('no region given; the SDK looks for one in the config file');
    expect(reason({ region: 'eu-isoe-west-1' })).toBe('no regional endpoint known for eu-isoe-west-1');
    expect(reason({ region: 'eu-west-1', endpointUrl: 'http://127.0.0.1:4566/ssm' })).toBe('the endpoint URL has a path or query');
    delete env.AWS_SECRET_ACCESS_KEY;
    expect(reason({ region: 'eu-west-1' })).toBe('no keys in the environment');
  });

  it.each(['AWS_USE_FIPS_ENDPOINT', 'AWS_USE_DUALSTACK_ENDPOINT', 'AWS_RETRY_MODE', 'AWS_DISABLE_CLOCK_SKEW_CORRECTION'])('leaves %s to the SDK', (name) => {
    env[name] = name === 'AWS_RETRY_MODE' ? 'adaptive' : 'true';
    expect(reason({ region: 'eu-west-1' })).toBe(`${name} is set`);
  });

  it.each([
    'endpoint_url = http://localhost:4566',
    'use_fips_endpoint = true',
    'use_dualstack_endpoint=true',
    'services = local',
    'max_attempts = 10',
    '  retry_mode = adaptive',
    'disable_clock_skew_correction = true',
    'sdk_ua_app_id = billing',
  ])('leaves "%s" in the config or the credentials file to the SDK, endpoint URL given or not', (line) => {
    env.AWS_SHARED_CREDENTIALS_FILE = join(dir, 'credentials');
    for (const which of ['config', 'credentials'] as const) {
      const other = which === 'config' ? 'credentials' : 'config';
      rmSync(join(dir, other), { force: true });
      writeFileSync(join(dir, which), `[default]\nregion = eu-west-1\n${line}\n`);
      expect(reason({ region: 'eu-west-1' })).toBe(`the ${which} file has endpoint, retry or client settings`);
      expect(reason({ region: 'eu-west-1', endpointUrl: 'http://127.0.0.1:4566' })).toBe(`the ${which} file has endpoint, retry or client settings`);
    }
  });

  it('reads AWS_CONFIG_FILE and AWS_SHARED_CREDENTIALS_FILE with a leading ~/ as the SDK does: in the home folder', () => {
    writeFileSync(join(dir, 'alt-config'), '[default]\nuse_fips_endpoint = true\n');
    env.AWS_CONFIG_FILE = '~/alt-config';
    expect(reason({ region: 'us-east-1' })).toBe('the config file has endpoint, retry or client settings');
    env.AWS_CONFIG_FILE = join(dir, 'config');
    writeFileSync(join(dir, 'alt-credentials'), '[default]\nendpoint_url = https://vpce.example\n');
    env.AWS_SHARED_CREDENTIALS_FILE = '~/alt-credentials';
    expect(reason({ region: 'us-east-1' })).toBe('the credentials file has endpoint, retry or client settings');
  });

  it('leaves a config file it cannot read as a file to the SDK', () => {
    env.AWS_CONFIG_FILE = dir;
    expect(reason({ region: 'eu-west-1' })).toBe('the config file cannot be read here');
  });

  it('honours AWS_MAX_ATTEMPTS, and leaves a value it cannot read to the SDK', () => {
    env.AWS_MAX_ATTEMPTS = '5';
    expect(route({ region: 'eu-west-1' })).toMatchObject({ maxAttempts: 5 });
    for (const odd of ['many', '1e1', ' 2', '-1']) {
      env.AWS_MAX_ATTEMPTS = odd;
      expect(reason({ region: 'eu-west-1' })).toBe('AWS_MAX_ATTEMPTS is not a whole number');
    }
  });

  it('puts AWS_SDK_UA_APP_ID in the route, and leaves one the SDK would clean up to it', () => {
    env.AWS_SDK_UA_APP_ID = 'billing-42';
    expect(route({ region: 'eu-west-1' })).toMatchObject({ ok: true, appId: 'billing-42' });
    env.AWS_SDK_UA_APP_ID = 'two words';
    expect(reason({ region: 'eu-west-1' })).toBe('AWS_SDK_UA_APP_ID is not a plain token of up to 50 characters');
  });

  it('goes through the SDK for everything with SSM_PROXY_USE_SDK=1', () => {
    expect(reason({ region: 'eu-west-1', useSdk: true })).toBe('SSM_PROXY_USE_SDK is set');
  });
});
