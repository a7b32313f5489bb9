import { describe, expect, it } from 'vitest';
import { CLIENT_VERSION, parseArgs, usageText, VERSION, type ParsedArgs, type ProxyOptions } from '../../src/cli/args.ts';
import { EXIT_CODE_DOCS } from '../../src/cli/exit-codes.ts';

function run(argv: string[], env: NodeJS.ProcessEnv = {}): ProxyOptions {
  const parsed = parseArgs(argv, env);
  if (parsed.kind !== 'run') throw new Error(`expected run, got ${JSON.stringify(parsed)}`);
  return parsed.options;
}

function errorOf(argv: string[], env: NodeJS.ProcessEnv = {}): string {
  const parsed: ParsedArgs = parseArgs(argv, env);
  if (parsed.kind !== 'error') throw new Error(`expected error, got ${JSON.stringify(parsed)}`);
  return parsed.message;
}

describe('parseArgs: defaults', () => {
  it('needs only a target', () => {
    expect(run(['i-0123456789abcdef0'])).toEqual({
      target: 'i-0123456789abcdef0',
      port: 22,
      documentName: 'AWS-StartSSHSession',
      verbose: 0,
      frameRate: 970,
      maxPayload: 1024,
      handshakeTimeoutSeconds: 30,
      giveUpSeconds: 300,
      reconnectSeconds: 300,
    });
  });

  it('takes the port as ssh passes %h %p', () => {
    expect(run(['i-0abc', '2222']).port).toBe(2222);
    expect(run(['mi-0123456789abcdef0', '22']).target).toBe('mi-0123456789abcdef0');
  });

  it('accepts ECS and other targets verbatim', () => {
    expect(run(['ecs:cluster_task0123_runtime-id']).target).toBe('ecs:cluster_task0123_runtime-id');
    expect(run(['some-other-target', '443']).port).toBe(443);
  });

  it('accepts the port bounds', () => {
    expect(run(['i-1', '1']).port).toBe(1);
    expect(run(['i-1', '65535']).port).toBe(65535);
  });

  it('accepts options before and after positionals, and = forms', () => {
    const options = run(['--region=eu-west-1', 'i-1', '22', '--profile', 'dev']);
    expect(options.region).toBe('eu-west-1');
    expect(options.profile).toBe('dev');
  });

  it('leaves unset optional values absent', () => {
    const options = run(['i-1']);
    for (const key of ['region', 'profile', 'reason', 'endpointUrl', 'logFile', 'caBundle']) expect(options).not.toHaveProperty(key);
  });
});

describe('parseArgs: options', () => {
  it('reads every option', () => {
    const options = run([
      '--region',
      'us-gov-west-1',
      '--profile',
      'prod',
      '--document-name',
      'My-SSH-Doc',
      '--reason',
      'ticket 42',
      '--endpoint-url',
      'http://127.0.0.1:8080',
      '--ca-bundle',
      '/etc/ca.pem',
      '-vv',
      '--log-file',
      '/tmp/ssm.log',
      '--frame-rate',
      '0',
      '--max-payload',
      '65536',
      'i-1',
      '2022',
    ]);
    expect(options).toEqual({
      target: 'i-1',
      port: 2022,
      region: 'us-gov-west-1',
      profile: 'prod',
      documentName: 'My-SSH-Doc',
      reason: 'ticket 42',
      endpointUrl: 'http://127.0.0.1:8080',
      caBundle: '/etc/ca.pem',
      verbose: 2,
      logFile: '/tmp/ssm.log',
      frameRate: 0,
      maxPayload: 65536,
      handshakeTimeoutSeconds: 30,
      giveUpSeconds: 300,
      reconnectSeconds: 300,
    });
  });

  it('counts -v in every spelling', () => {
    expect(run(['-v', 'i-1']).verbose).toBe(1);
    expect(run(['-vvv', 'i-1']).verbose).toBe(3);
    expect(run(['-v', '--verbose', '-v', 'i-1']).verbose).toBe(3);
  });

  it('omits an empty --reason', () => {
    expect(run(['--reason', '', 'i-1'])).not.toHaveProperty('reason');
  });

  it('uses the last value of a repeated option', () => {
    expect(run(['--region', 'eu-west-1', '--region', 'eu-west-2', 'i-1']).region).toBe('eu-west-2');
  });

  it('reads the timing knobs from the environment only, and checks them', () => {
    const o = run(['i-1'], { SSM_PROXY_HANDSHAKE_TIMEOUT: '5', SSM_PROXY_GIVE_UP_AFTER: '7', SSM_PROXY_RECONNECT_FOR: '9' });
    expect([o.handshakeTimeoutSeconds, o.giveUpSeconds, o.reconnectSeconds]).toEqual([5, 7, 9]);
    const bad = parseArgs(['i-1'], { SSM_PROXY_GIVE_UP_AFTER: '0' });
    expect(bad.kind).toBe('error');
    if (bad.kind === 'error') expect(bad.message).toMatch(/SSM_PROXY_GIVE_UP_AFTER/);
  });

  it('reads SSM_PROXY_USE_SDK as on or off, and refuses anything else', () => {
    expect(run(['i-1'])).not.toHaveProperty('useSdk');
    for (const on of ['1', 'true', 'YES', 'on']) expect(run(['i-1'], { SSM_PROXY_USE_SDK: on }).useSdk).toBe(true);
    for (const off of ['0', 'false', 'no', 'Off', '']) expect(run(['i-1'], { SSM_PROXY_USE_SDK: off })).not.toHaveProperty('useSdk');
    const bad = parseArgs(['i-1'], { SSM_PROXY_USE_SDK: 'sometimes' });
    expect(bad).toEqual({ kind: 'error', message: expect.stringMatching(/^SSM_PROXY_USE_SDK="sometimes" is neither on .* nor off/) });
  });

  it('takes a target that looks like an option after --', () => {
    expect(parseArgs(['--', '-weird'], {})).toEqual({ kind: 'run', options: expect.objectContaining({ target: '-weird' }) });
  });
});

describe('parseArgs: environment', () => {
  it('reads the AWS variables', () => {
    const options = run(['i-1'], {
      AWS_PROFILE: 'p1',
      AWS_REGION: 'eu-central-1',
      AWS_ENDPOINT_URL_SSM: 'https://ssm.example.test',
    });
    expect(options).toMatchObject({ profile: 'p1', region: 'eu-central-1', endpointUrl: 'https://ssm.example.test' });
  });

  it('prefers AWS_PROFILE over AWS_DEFAULT_PROFILE', () => {
    expect(run(['i-1'], { AWS_PROFILE: 'a', AWS_DEFAULT_PROFILE: 'b' }).profile).toBe('a');
    expect(run(['i-1'], { AWS_DEFAULT_PROFILE: 'b' }).profile).toBe('b');
  });

  it('says whether the profile came from the environment (keys there then come first, as in the AWS CLI)', () => {
    expect(run(['i-1'], { AWS_PROFILE: 'a' }).profileFromEnv).toBe(true);
    expect(run(['i-1'], { AWS_DEFAULT_PROFILE: 'b' }).profileFromEnv).toBe(true);
    expect(run(['--profile', 'c', 'i-1'], { AWS_PROFILE: 'a' })).not.toHaveProperty('profileFromEnv');
    expect(run(['i-1'], {})).not.toHaveProperty('profileFromEnv');
  });

  it('prefers AWS_REGION over AWS_DEFAULT_REGION', () => {
    expect(run(['i-1'], { AWS_REGION: 'us-east-1', AWS_DEFAULT_REGION: 'us-west-2' }).region).toBe('us-east-1');
    expect(run(['i-1'], { AWS_DEFAULT_REGION: 'us-west-2' }).region).toBe('us-west-2');
  });

  it('prefers AWS_ENDPOINT_URL_SSM over AWS_ENDPOINT_URL', () => {
    const both = { AWS_ENDPOINT_URL_SSM: 'https://a.test', AWS_ENDPOINT_URL: 'https://b.test' };
    expect(run(['i-1'], both).endpointUrl).toBe('https://a.test');
    expect(run(['i-1'], { AWS_ENDPOINT_URL: 'https://b.test' }).endpointUrl).toBe('https://b.test');
  });

  it('ignores endpoint variables when AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true', () => {
    const env = { AWS_ENDPOINT_URL_SSM: 'https://a.test', AWS_IGNORE_CONFIGURED_ENDPOINT_URLS: 'true' };
    expect(run(['i-1'], env)).not.toHaveProperty('endpointUrl');
    expect(run(['--endpoint-url', 'https://c.test', 'i-1'], env).endpointUrl).toBe('https://c.test');
  });

  it('treats empty variables as unset', () => {
    const options = run(['i-1'], { AWS_PROFILE: '', AWS_DEFAULT_PROFILE: 'b', AWS_REGION: '', SSM_PROXY_VERBOSE: '' });
    expect(options.profile).toBe('b');
    expect(options).not.toHaveProperty('region');
    expect(options.verbose).toBe(0);
  });

  it('lets command-line options win', () => {
    const env = {
      AWS_PROFILE: 'envp',
      AWS_REGION: 'eu-west-1',
      AWS_ENDPOINT_URL_SSM: 'https://env.test',
      SSM_PROXY_FRAME_RATE: '5',
      SSM_PROXY_MAX_PAYLOAD: '10',
      SSM_PROXY_LOG_FILE: '/env.log',
      SSM_PROXY_VERBOSE: '3',
      AWS_CA_BUNDLE: '/env.pem',
    };
    const options = run(
      [
        '--profile=cli',
        '--region=us-east-2',
        '--endpoint-url=https://cli.test',
        '--frame-rate=7',
        '--max-payload=11',
        '--log-file=/cli.log',
        '--ca-bundle=/cli.pem',
        '-v',
        'i-1',
      ],
      env,
    );
    expect(options).toMatchObject({
      profile: 'cli',
      region: 'us-east-2',
      endpointUrl: 'https://cli.test',
      frameRate: 7,
      maxPayload: 11,
      logFile: '/cli.log',
      caBundle: '/cli.pem',
      verbose: 1,
    });
  });

  it('reads the SSM_PROXY variables', () => {
    const options = run(['i-1'], {
      SSM_PROXY_FRAME_RATE: '0',
      SSM_PROXY_MAX_PAYLOAD: '4096',
      SSM_PROXY_LOG_FILE: '/var/log/x',
      SSM_PROXY_VERBOSE: '2',
      AWS_CA_BUNDLE: '/ca.pem',
    });
    expect(options).toMatchObject({ frameRate: 0, maxPayload: 4096, logFile: '/var/log/x', verbose: 2, caBundle: '/ca.pem' });
  });
});

describe('parseArgs: usage errors', () => {
  const suffix = '; usage: ssm-proxy [options] <target> [port] (see --help)';
  const cases: [string, string[], NodeJS.ProcessEnv, string][] = [
    ['no target', [], {}, 'missing <target>'],
    ['empty target', [''], {}, '<target> is empty'],
    ['target with a space', ['i-1 x'], {}, 'whitespace'],
    ['target with a tab', ['i-\t1'], {}, 'whitespace'],
    ['target with a control character', ['i-\u00071'], {}, 'control'],
    ['overlong target', ['i-' + 'a'.repeat(400)], {}, 'longer than 400'],
    ['too many arguments', ['i-1', '22', 'extra'], {}, 'unexpected argument "extra"'],
    ['port 0', ['i-1', '0'], {}, '[port] must be from 1 to 65535'],
    ['port too big', ['i-1', '65536'], {}, '[port] must be from 1 to 65535'],
    ['port with a sign', ['i-1', '+22'], {}, '[port] must be a whole number'],
    ['port not a number', ['i-1', 'ssh'], {}, '[port] must be a whole number'],
    ['port with a decimal point', ['i-1', '22.0'], {}, '[port] must be a whole number'],
    ['port with spaces', ['i-1', ' 22'], {}, '[port] must be a whole number'],
    ['unknown option', ['--nope', 'i-1'], {}, 'unknown option --nope'],
    ['unknown short option', ['-x', 'i-1'], {}, 'unknown option -x'],
    ['option without value', ['i-1', '--region'], {}, 'option --region needs a value'],
    ['option followed by an option', ['--region', '--profile', 'x', 'i-1'], {}, 'option --region needs a value'],
    ['negative number as a separate value', ['--frame-rate', '-1', 'i-1'], {}, "option --frame-rate needs a value; one that starts with '-' is given as --frame-rate=VALUE"],
    ['flag with a value', ['--verbose=3', 'i-1'], {}, 'does not take a value'],
    ['bad region', ['--region', 'EU West', 'i-1'], {}, '--region "EU West" is not a valid AWS region name'],
    ['bad region from env', ['i-1'], { AWS_REGION: 'eu_west_1' }, 'AWS_REGION "eu_west_1" is not a valid AWS region name'],
    ['empty profile', ['--profile', '', 'i-1'], {}, '--profile is empty'],
    ['empty document', ['--document-name', '', 'i-1'], {}, '--document-name is empty'],
    ['document with space', ['--document-name', 'a b', 'i-1'], {}, 'whitespace'],
    ['long reason', ['--reason', 'r'.repeat(257), 'i-1'], {}, '--reason is longer than 256'],
    ['multi-line reason', ['--reason', 'a\nb', 'i-1'], {}, '--reason must be a single line'],
    ['endpoint not a URL', ['--endpoint-url', 'localhost:8080x', 'i-1'], {}, 'must be an http:// or https:// URL'],
    ['endpoint garbage', ['--endpoint-url', 'not a url', 'i-1'], {}, 'is not a URL'],
    ['endpoint wrong scheme', ['--endpoint-url', 'ftp://x', 'i-1'], {}, 'must be an http:// or https:// URL'],
    ['endpoint env wrong', ['i-1'], { AWS_ENDPOINT_URL_SSM: 'wss://x' }, 'AWS_ENDPOINT_URL_SSM "wss://x" must be an http'],
    ['negative frame rate', ['--frame-rate=-1', 'i-1'], {}, '--frame-rate must be a whole number'],
    ['fractional frame rate', ['--frame-rate', '1.5', 'i-1'], {}, '--frame-rate must be a whole number'],
    ['huge frame rate', ['--frame-rate', '1000001', 'i-1'], {}, '--frame-rate must be from 0 to 1000000'],
    ['zero payload', ['--max-payload', '0', 'i-1'], {}, '--max-payload must be from 1 to 65536'],
    ['huge payload', ['--max-payload', '65537', 'i-1'], {}, '--max-payload must be from 1 to 65536'],
    ['bad frame rate env', ['i-1'], { SSM_PROXY_FRAME_RATE: 'fast' }, 'SSM_PROXY_FRAME_RATE must be a whole number'],
    ['bad payload env', ['i-1'], { SSM_PROXY_MAX_PAYLOAD: '0' }, 'SSM_PROXY_MAX_PAYLOAD must be from 1'],
    ['bad verbose env', ['i-1'], { SSM_PROXY_VERBOSE: 'yes' }, 'SSM_PROXY_VERBOSE must be a whole number'],
    ['empty log file', ['--log-file', '', 'i-1'], {}, '--log-file is empty'],
    ['empty ca bundle', ['--ca-bundle=', 'i-1'], {}, '--ca-bundle is empty'],
  ];
  it.each(cases)('%s', (_name, argv, env, fragment) => {
    const message = errorOf(argv, env);
    expect(message).toContain(fragment);
    expect(message.endsWith(suffix)).toBe(true);
    expect(message).not.toMatch(/[\r\n]/);
    expect(message.startsWith('ssm-proxy:')).toBe(false);
  });

  it('refuses an endpoint URL with a user name or password, without echoing them', () => {
    for (const [argv, env] of [
      [['--endpoint-url', 'http://user:hunter2pw@127.0.0.1:8080', 'i-1'], {}],
      [['i-1'], { AWS_ENDPOINT_URL_SSM: 'https://user:hunter2pw@vpce.example.test' }],
    ] as const) {
      const message = errorOf([...argv], { ...env });
      expect(message).toMatch(/must not contain a user name or password \(https?:\/\/<credentials>@(127\.0\.0\.1:8080|vpce\.example\.test)\)/);
      expect(message).not.toContain('hunter2pw');
      expect(message).not.toContain('user:');
    }
  });

  it('words a missing target as the guide shows', () => {
    expect(errorOf([])).toBe('missing <target>; usage: ssm-proxy [options] <target> [port] (see --help)');
  });
});

describe('parseArgs: help and version', () => {
  it('recognises -h, --help, -V, --version', () => {
    expect(parseArgs(['-h'], {})).toEqual({ kind: 'help' });
    expect(parseArgs(['--help'], {})).toEqual({ kind: 'help' });
    expect(parseArgs(['-V'], {})).toEqual({ kind: 'version' });
    expect(parseArgs(['--version'], {})).toEqual({ kind: 'version' });
  });

  it('gives help even next to other arguments or a bad option', () => {
    expect(parseArgs(['i-1', '22', '--help'], {})).toEqual({ kind: 'help' });
    expect(parseArgs(['--bogus', '-h'], {})).toEqual({ kind: 'help' });
    expect(parseArgs(['--bogus', '--version'], {})).toEqual({ kind: 'version' });
    expect(parseArgs(['i-1', '--frame-rate', 'x', '-h'], {})).toEqual({ kind: 'help' });
  });

  it('does not treat -h after -- as help', () => {
    expect(parseArgs(['--', '-h'], {}).kind).toBe('run');
  });

  it('exposes the versions', () => {
    expect(VERSION).toBe('0.1.0');
    expect(CLIENT_VERSION).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
    const [a, b, c] = CLIENT_VERSION.split('.').map(Number);
    expect(a * 1e8 + b * 1e5 + c).toBeGreaterThanOrEqual(1 * 1e8 + 2 * 1e5 + 339);
  });
});

describe('usageText', () => {
  const text = usageText();

  it('lists every option', () => {
    for (const option of [
      '--region',
      '--profile',
      '--document-name',
      '--reason',
      '--endpoint-url',
      '--ca-bundle',
      '-v, --verbose',
      '--log-file',
      '--frame-rate',
      '--max-payload',
      '-h, --help',
      '-V, --version',
    ]) {
      expect(text).toContain(option);
    }
  });

  it('lists the environment variables', () => {
    for (const name of [
      'AWS_PROFILE',
      'AWS_DEFAULT_PROFILE',
      'AWS_REGION',
      'AWS_DEFAULT_REGION',
      'AWS_ENDPOINT_URL_SSM',
      'AWS_ENDPOINT_URL',
      'SSM_PROXY_FRAME_RATE',
      'SSM_PROXY_MAX_PAYLOAD',
      'SSM_PROXY_LOG_FILE',
      'SSM_PROXY_VERBOSE',
    ]) {
      expect(text).toContain(name);
    }
  });

  it('lists every exit code', () => {
    const flat = text.replace(/\s+/g, ' ');
    for (const doc of EXIT_CODE_DOCS) expect(flat).toContain(doc.meaning);
    expect(text).toContain('128+N');
  });

  it('shows the ssh config example', () => {
    expect(text).toContain('Host i-* mi-*\n      ProxyCommand ssm-proxy %h %p');
  });

  it('fits a 100-column terminal', () => {
    for (const line of text.split('\n')) expect(line.length).toBeLessThanOrEqual(100);
  });
});
