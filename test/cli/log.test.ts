import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ExitCode, ProxyError } from '../../src/cli/exit-codes.ts';
import { createLogger, formatErrorLine, oneLine, redact, silentLogger, type Logger } from '../../src/cli/log.ts';
import { installWarningFilter, uninstallWarningFilter } from '../../src/cli/warnings.ts';

class Capture {
  text = '';
  write(chunk: string): boolean {
    this.text += chunk;
    return true;
  }
  get lines(): string[] {
    return this.text.split('\n').filter((l) => l !== '');
  }
}

function emitAll(logger: Logger): void {
  logger.error('E');
  logger.warn('W');
  logger.info('I');
  logger.debug('D');
  logger.trace('T');
}

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ssm-proxy-log-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('createLogger: levels on stderr', () => {
  const expected: [number, string[]][] = [
    [0, ['ssm-proxy: E']],
    [1, ['ssm-proxy: E', 'ssm-proxy: warning: W', 'ssm-proxy: I']],
    [2, ['ssm-proxy: E', 'ssm-proxy: warning: W', 'ssm-proxy: I', 'ssm-proxy: debug: D']],
    [3, ['ssm-proxy: E', 'ssm-proxy: warning: W', 'ssm-proxy: I', 'ssm-proxy: debug: D', 'ssm-proxy: trace: T']],
  ];
  it.each(expected)('-v count %i', (verbose, lines) => {
    const stderr = new Capture();
    const logger = createLogger({ verbose, stderr });
    emitAll(logger);
    expect(stderr.lines).toEqual(lines);
  });

  it('still shows errors when the verbosity is nonsense', () => {
    const stderr = new Capture();
    emitAll(createLogger({ verbose: Number.NaN, stderr }));
    emitAll(createLogger({ verbose: -3, stderr }));
    expect(stderr.lines).toEqual(['ssm-proxy: E', 'ssm-proxy: E']);
  });

  it('reports which levels are enabled', () => {
    const logger = createLogger({ verbose: 1, stderr: new Capture() });
    expect(logger.isEnabled('error')).toBe(true);
    expect(logger.isEnabled('info')).toBe(true);
    expect(logger.isEnabled('debug')).toBe(false);
  });

  it('writes each message as one line', () => {
    const stderr = new Capture();
    createLogger({ verbose: 0, stderr }).error('first\nsecond\r\n  third\u001b[2J');
    expect(stderr.text).toBe('ssm-proxy: first second third[2J\n');
  });
});

describe('createLogger: log file', () => {
  it('records debug and below when -v is 0, and keeps stderr to errors', () => {
    const stderr = new Capture();
    const file = join(dir, 'proxy.log');
    const logger = createLogger({ verbose: 0, logFile: file, stderr, now: () => new Date('2024-05-06T07:08:09.010Z') });
    emitAll(logger);
    logger.close();
    expect(stderr.lines).toEqual(['ssm-proxy: E']);
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    expect(lines).toEqual([
      `2024-05-06T07:08:09.010Z [${process.pid}] ERROR E`,
      `2024-05-06T07:08:09.010Z [${process.pid}] WARN W`,
      `2024-05-06T07:08:09.010Z [${process.pid}] INFO I`,
      `2024-05-06T07:08:09.010Z [${process.pid}] DEBUG D`,
    ]);
  });

  it('records trace at -vvv, still with errors only on stderr', () => {
    const stderr = new Capture();
    const file = join(dir, 'proxy.log');
    const logger = createLogger({ verbose: 3, logFile: file, stderr });
    emitAll(logger);
    logger.close();
    expect(stderr.lines).toEqual(['ssm-proxy: E']);
    const text = readFileSync(file, 'utf8');
    expect(text).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \[\d+\] ERROR E$/m);
    expect(text).toMatch(/ TRACE T$/m);
  });

  it('appends rather than truncates, and keeps the file private', () => {
    const file = join(dir, 'proxy.log');
    const a = createLogger({ verbose: 0, logFile: file, stderr: new Capture() });
    a.debug('one');
    a.close();
    const b = createLogger({ verbose: 0, logFile: file, stderr: new Capture() });
    b.debug('two');
    b.close();
    expect(readFileSync(file, 'utf8')).toMatch(/one\n.*two\n$/);
    if (process.platform !== 'win32') expect(statSync(file).mode & 0o077).toBe(0);
  });

  it('fails with a usage error when the file cannot be opened', () => {
    const file = join(dir, 'missing-dir', 'proxy.log');
    let caught: unknown;
    try {
      createLogger({ verbose: 0, logFile: file, stderr: new Capture() });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ProxyError);
    expect((caught as ProxyError).exitCode).toBe(ExitCode.Usage);
    expect((caught as ProxyError).message).toContain('ENOENT');
  });

  it('keeps logging to stderr after close', () => {
    const stderr = new Capture();
    const logger = createLogger({ verbose: 0, logFile: join(dir, 'x.log'), stderr });
    logger.close();
    logger.close();
    logger.error('late');
    expect(stderr.lines).toEqual(['ssm-proxy: late']);
  });
});

describe('redaction', () => {
  const token = 'AAEAAExampleTokenValue/with+base64==';

  it('removes registered secrets from stderr and the file', () => {
    const stderr = new Capture();
    const file = join(dir, 'proxy.log');
    const logger = createLogger({ verbose: 3, stderr });
    const fileLogger = createLogger({ verbose: 3, logFile: file, stderr: new Capture() });
    for (const l of [logger, fileLogger]) {
      l.addSecret(token);
      l.error(`failed with ${token}`);
      l.debug(`token=${token};`);
    }
    fileLogger.close();
    expect(stderr.text).not.toContain(token);
    expect(stderr.text).toContain('failed with <redacted>');
    expect(readFileSync(file, 'utf8')).not.toContain(token);
  });

  it('removes a longer secret whole when a shorter one is inside it', () => {
    const stderr = new Capture();
    const logger = createLogger({ verbose: 0, stderr });
    logger.addSecret('abcd');
    logger.addSecret('xxabcdxx');
    logger.error('v=xxabcdxx');
    expect(stderr.text).toBe('ssm-proxy: v=<redacted>\n');
  });

  it('ignores secrets too short to be real', () => {
    const stderr = new Capture();
    const logger = createLogger({ verbose: 0, stderr });
    logger.addSecret('');
    logger.addSecret('a');
    logger.error('a banana');
    expect(stderr.text).toBe('ssm-proxy: a banana\n');
  });

  it('scrubs TokenValue JSON fields without registration', () => {
    const frame = `{"MessageSchemaVersion":"1.0","RequestId":"r","TokenValue":"${token}","ClientId":"c"}`;
    expect(redact(frame)).toBe('{"MessageSchemaVersion":"1.0","RequestId":"r","TokenValue":"<redacted>","ClientId":"c"}');
    expect(redact('{"TokenValue" : "a\\"b"}')).toBe('{"TokenValue" : "<redacted>"}');
    // A truncated log line still loses the value.
    expect(redact('{"TokenValue":"AAEAAE')).toBe('{"TokenValue":"<redacted>"');
    const stderr = new Capture();
    createLogger({ verbose: 0, stderr }).error(`sent ${frame}`);
    expect(stderr.text).not.toContain(token);
  });

  it('scrubs AWS secret keys and session tokens', () => {
    expect(redact('{"SecretAccessKey":"wJalrXUtnFEMI/K7MDENG","SessionToken":"FwoGZX"}')).toBe(
      '{"SecretAccessKey":"<redacted>","SessionToken":"<redacted>"}',
    );
    expect(redact('aws_secret_access_key = wJalrXUtnFEMI/K7MDENG')).toBe('aws_secret_access_key = <redacted>');
    expect(redact('AWS_SESSION_TOKEN=FwoGZXIvYXdzE')).toBe('AWS_SESSION_TOKEN=<redacted>');
    expect(redact('https://x/?X-Amz-Security-Token=FwoG%2Fabc&X-Amz-Date=1')).toBe(
      'https://x/?X-Amz-Security-Token=<redacted>&X-Amz-Date=1',
    );
    expect(redact('x-amz-security-token: FwoGabc')).toBe('x-amz-security-token: <redacted>');
  });

  it('leaves ordinary text alone', () => {
    const text = 'session alice-0123 started on wss://ssmmessages.eu-west-1.amazonaws.com/v1/data-channel/alice-0123';
    expect(redact(text)).toBe(text);
  });
});

describe('formatting helpers', () => {
  it('formatErrorLine prefixes, folds and redacts', () => {
    expect(formatErrorLine('bad\nthing {"TokenValue":"zzzz"}')).toBe('ssm-proxy: bad thing {"TokenValue":"<redacted>"}\n');
  });

  it('oneLine folds line breaks', () => {
    expect(oneLine('  a\n\n b \r\nc ')).toBe('a b c');
  });

  it('silentLogger drops everything', () => {
    emitAll(silentLogger);
    expect(silentLogger.isEnabled('error')).toBe(false);
  });
});

describe('installWarningFilter', () => {
  afterEach(() => uninstallWarningFilter());

  async function collectWarnings(emit: () => void): Promise<Error[]> {
    const seen: Error[] = [];
    const onWarning = (w: Error) => seen.push(w);
    process.on('warning', onWarning);
    try {
      emit();
      // 'warning' events are emitted on a later tick.
      await new Promise((resolve) => setTimeout(resolve, 10));
    } finally {
      process.off('warning', onWarning);
    }
    return seen;
  }

  it('drops the SDK Node version warning and passes every other warning', async () => {
    installWarningFilter();
    installWarningFilter(); // idempotent
    const seen = await collectWarnings(() => {
      process.emitWarning('NodeVersionSupportWarning: The AWS SDK for JavaScript (v3)\nwill require node >=22.');
      process.emitWarning('something else', 'OtherWarning');
      process.emitWarning('typed', 'NodeVersionSupportWarning');
      process.emitWarning('typed via options', { type: 'NodeVersionSupportWarning' });
      const err = new Error('as error');
      err.name = 'NodeVersionSupportWarning';
      process.emitWarning(err);
      process.emitWarning(new Error('NodeVersionSupportWarning: in message'));
      process.emitWarning('with options', { type: 'DeprecationWarning', code: 'DEP0999' });
    });
    expect(seen.map((w) => `${w.name}: ${w.message}`)).toEqual(['OtherWarning: something else', 'DeprecationWarning: with options']);
    expect((seen[1] as Error & { code?: string }).code).toBe('DEP0999');
  });

  it('restores the original emitWarning', async () => {
    installWarningFilter();
    uninstallWarningFilter();
    const seen = await collectWarnings(() => process.emitWarning('NodeVersionSupportWarning: back'));
    expect(seen).toHaveLength(1);
  });

  it('keeps the warning off stderr in a real process', () => {
    const warningsModule = fileURLToPath(new URL('../../src/cli/warnings.ts', import.meta.url));
    const script = [
      `const { installWarningFilter } = await import(${JSON.stringify(warningsModule)});`,
      'installWarningFilter();',
      "process.emitWarning('NodeVersionSupportWarning: The AWS SDK for JavaScript (v3) will require node >=22.');",
      "process.emitWarning('kept warning', 'OtherWarning');",
    ].join('\n');
    const result = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: fileURLToPath(new URL('../..', import.meta.url)),
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(result.status).toBe(0);
    expect(result.stderr).toContain('OtherWarning: kept warning');
    expect(result.stderr).not.toContain('NodeVersionSupportWarning');
    expect(result.stdout).toBe('');
  });
});
