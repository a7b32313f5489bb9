// ssm-proxy entry point: `ProxyCommand ssm-proxy %h %p`.
// stdout carries the SSH stream and nothing else; people read stderr.
import { closeSync, openSync } from 'node:fs';
import { installWarningFilter } from './warnings.ts';
import { CLIENT_VERSION, VERSION, parseArgs, usageText, type ProxyOptions } from './args.ts';
import { ExitCode, ProxyError, SIGNAL_EXIT_BASE, SIGNAL_NUMBERS } from './exit-codes.ts';
import { createLogger, formatErrorLine, type Logger } from './log.ts';
import { startCpuProfile, stopCpuProfile } from './profile.ts';
import { V8_FLAGS } from './v8-flags.ts';
import { monotonicMs } from '../transport/clock.ts';
import { codeCacheHandle } from '../loader/handle.ts';
import type { SessionStart } from '../aws/ssm.ts';
import { dataChannelPreconnection, type Preconnection } from '../transport/preconnect.ts';
import { expectedStreamOrigin, parseRememberedOrigins, rememberStreamOrigin } from '../session/stream-origin.ts';

const STREAM_ORIGINS_NOTE = 'stream-origins';

installWarningFilter();
// Guard the SSH stream: anything a dependency prints with console.* goes to stderr.
console.log = console.info = console.debug = (...args: unknown[]) => console.error(...args);

/**
 * Waits until ssh has read what we wrote to stdout (writes to a pipe are queued in the
 * process, and process.exit drops the queue), for as long as it keeps reading: false if
 * it took nothing for `stallMs` while bytes were left.
 */
async function flushStdout(stallMs: number): Promise<boolean> {
  const out = process.stdout;
  let left = out.writableLength;
  let lastProgress = monotonicMs();
  while (out.writableLength > 0 && !out.destroyed) {
    await new Promise((r) => setTimeout(r, 20));
    if (out.writableLength < left) {
      left = out.writableLength;
      lastProgress = monotonicMs();
    } else if (monotonicMs() - lastProgress > stallMs) return false;
  }
  return true;
}

/** Output that ssh is reading slowly is waited for this long without progress (2 s after a signal). */
const STDOUT_STALL_MS = 10_000;
const STDOUT_STALL_AFTER_SIGNAL_MS = 2_000;

/**
 * Exits once stdout is written. `lastWork` (writing the code cache) runs after stdio is
 * released when it has nothing to say there, so that no one waits on it.
 */
async function exit(code: number, logger?: Logger, lastWork?: () => void): Promise<never> {
  const pending = process.stdout.writableLength;
  if (!(await flushStdout(code >= SIGNAL_EXIT_BASE ? STDOUT_STALL_AFTER_SIGNAL_MS : STDOUT_STALL_MS)) && code === ExitCode.Ok) {
    logger?.error(`ssh stopped reading the session's output with ${process.stdout.writableLength} of the last ${pending} bytes not taken; they are lost`);
    code = ExitCode.ConnectionLost;
  }
  await stopCpuProfile();
  const work = () => {
    try {
      lastWork?.();
    } catch {
      // Only a later start's speed depends on it: the exit must happen.
    }
  };
  const shown = logger?.isEnabled('debug') ?? false;
  if (shown) work();
  releaseStdio();
  if (!shown) work();
  logger?.close();
  process.exit(code);
}

/**
 * Closes stdin, stdout and stderr once everything is written, before the exit. A
 * caller that reads ssh's stderr to its end (ansible, scripts, the bench) waits for every
 * holder of it to close it, and ssh's stderr is ours too: at a normal exit the kernel
 * closes it only after node's own teardown and the release of the process's memory, ~5 ms
 * later. /dev/null takes their place, so nothing opened afterwards lands on 0-2. Skipped
 * while stderr still holds queued bytes (a reader that stopped reading: they would be lost).
 */
function releaseStdio(): void {
  if (process.platform === 'win32' || process.stderr.writableLength > 0 || process.stdout.writableLength > 0) return;
  try {
    closeSync(openSync('/dev/null', 'r+')); // none to put in their place: leave them
  } catch {
    return;
  }
  try {
    for (const fd of [0, 1, 2]) closeSync(fd);
    for (const flags of ['r', 'w', 'w'] as const) openSync('/dev/null', flags);
  } catch {
    // The exit that follows closes them anyway.
  }
}

function memorySummary(): string {
  const m = process.memoryUsage();
  const mb = (n: number) => (n / 1048576).toFixed(1);
  return `heap ${mb(m.heapUsed)}/${mb(m.heapTotal)} MB, external ${mb(m.external)} MB, array buffers ${mb(m.arrayBuffers)} MB`;
}

/** How long a signal waits for StartSession's answer, so that the session it starts can be ended. */
const START_ANSWER_WAIT_MS = 3_000;

function signalExitCode(name: string): number {
  return SIGNAL_EXIT_BASE + (SIGNAL_NUMBERS[name] ?? 15);
}

async function run(options: ProxyOptions, logger: Logger): Promise<never> {
  // Until StartSession is on the wire a signal just ends the process. Then a session may
  // exist on the service's side, and it is ended (TerminateSession API) before we exit;
  // once the PortSession runs, that does the whole terminate procedure.
  let onSignal: (name: string) => void = (name) => void exit(signalExitCode(name), logger);
  for (const s of Object.keys(SIGNAL_NUMBERS)) process.on(s, () => onSignal(s));
  logger.debug(`ssm-proxy ${VERSION} on node ${process.version}${process.execArgv.length > 0 ? ` ${process.execArgv.join(' ')}` : ''}`);

  // The loader has set them already; this covers runs without it (see v8-flags.ts).
  (await import('node:v8')).setFlagsFromString(V8_FLAGS);
  const { createSsmApi } = await import('../aws/ssm.ts');
  const api = await createSsmApi({ region: options.region, profile: options.profile, profileFromEnv: options.profileFromEnv, endpointUrl: options.endpointUrl, useSdk: options.useSdk, logger, caBundle: options.caBundle });
  const t0 = monotonicMs();
  // The session's code loads while StartSession's answer is on its way (7-10 ms that
  // would otherwise come after it), or after the answer if the request gave no signal.
  let sessionModules: Promise<[typeof import('../session/port-session.ts'), typeof import('../transport/stdin.ts')]> | undefined;
  const loadSessionModules = () => {
    if (!sessionModules) {
      sessionModules = Promise.all([import('../session/port-session.ts'), import('../transport/stdin.ts')]);
      sessionModules.catch(() => {}); // awaited below, unless StartSession fails first
    }
    return sessionModules;
  };
  // The data channel's connection opens while StartSession is answered too, where we
  // know (or remember) where it will be.
  const codeCache = codeCacheHandle();
  const remembered = parseRememberedOrigins(codeCache?.readNote(STREAM_ORIGINS_NOTE));
  const expectedOrigin = expectedStreamOrigin(api.region, options.endpointUrl, remembered);
  let preconnection: Preconnection | undefined;
  const preconnect = () => {
    if (!expectedOrigin) return;
    try {
      preconnection = dataChannelPreconnection(expectedOrigin, api.endpointIsLoopback, api.ca);
      if (preconnection) logger.trace(`opening a connection to ${expectedOrigin} for the data channel`);
    } catch (err) {
      // Only a head start: the websocket connects on its own later.
      logger.trace(`could not open a connection to ${expectedOrigin} ahead: ${(err as Error).message}`);
    }
  };
  let signalled: string | undefined;
  let startedSession: SessionStart | undefined;
  let answerWait: NodeJS.Timeout | undefined;
  let ending: Promise<never> | undefined;
  const endStarted = (name: string): Promise<never> =>
    (ending ??= (async () => {
      clearTimeout(answerWait); // the answer came: the API call below is bounded itself
      if (startedSession) await api.terminateSession(startedSession.sessionId);
      return exit(signalExitCode(name), logger);
    })());
  let start: SessionStart;
  try {
    start = await api.startSession({
      target: options.target,
      documentName: options.documentName,
      port: options.port,
      reason: options.reason,
      onSent: () => {
        logger.trace(`StartSession request sent after ${(monotonicMs() - t0).toFixed(0)} ms`);
        onSignal = (name) => {
          if (signalled) return void exit(signalExitCode(name), logger); // a second signal: at once
          signalled = name;
          logger.debug(`${name} while the session was being started: ending it before exiting`);
          if (startedSession) void endStarted(name);
          else answerWait = setTimeout(() => void exit(signalExitCode(name), logger), START_ANSWER_WAIT_MS);
        };
        preconnect();
        setImmediate(() => {
          const started = monotonicMs();
          loadSessionModules().then(
            () => logger.trace(`session code loaded in ${(monotonicMs() - started).toFixed(0)} ms while StartSession was answered`),
            () => {}, // reported where it is awaited
          );
        });
      },
    });
  } catch (err) {
    preconnection?.discard();
    if (signalled) return exit(signalExitCode(signalled), logger);
    throw err;
  }
  startedSession = start;
  if (signalled) {
    preconnection?.discard();
    return endStarted(signalled);
  }
  logger.debug(`session ${start.sessionId} started in ${(monotonicMs() - t0).toFixed(0)} ms`);
  const note = rememberStreamOrigin(remembered, api.region, options.endpointUrl, start.streamUrl);
  if (note !== undefined) codeCache?.writeNote(STREAM_ORIGINS_NOTE, note);

  const [{ PortSession }, { openStdin }] = await loadSessionModules();
  if (signalled) {
    preconnection?.discard();
    return endStarted(signalled);
  }
  const session = new PortSession({
    sessionId: start.sessionId,
    streamUrl: start.streamUrl,
    tokenValue: start.tokenValue,
    targetPort: options.port,
    api, // registers every token it receives as a secret with the logger
    stdin: openStdin(),
    stdout: process.stdout,
    logger,
    clientVersion: CLIENT_VERSION,
    allowInsecure: api.endpointIsLoopback,
    ca: api.ca,
    preconnection,
    frameRate: options.frameRate,
    maxPayload: options.maxPayload,
    handshakeTimeoutMs: options.handshakeTimeoutSeconds * 1000,
    giveUpMs: options.giveUpSeconds * 1000,
    reconnectBudgetMs: options.reconnectSeconds * 1000,
  });
  onSignal = (name) => session.signal(name);
  const outcome = await session.run();
  // The summary reads /proc and the heap's statistics: only when it is shown.
  if (logger.isEnabled('debug')) {
    const s = session.stats;
    const cpu = process.cpuUsage();
    logger.debug(`session ${start.sessionId} ended: exit ${outcome.code}, ${s.bytesOut} bytes sent, ${s.bytesIn} received, ${s.retransmissions} retransmissions, ${s.reconnects} reconnects, ${s.heapCollections} forced collections, cpu ${((cpu.user + cpu.system) / 1e6).toFixed(2)} s (user ${(cpu.user / 1e6).toFixed(2)}, sys ${(cpu.system / 1e6).toFixed(2)}), peak rss ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MB, ${memorySummary()}`);
  }
  if (outcome.message) logger.error(outcome.message);
  return exit(outcome.code, logger, () => {
    // A session that worked has compiled what the next one needs: keep it for the next start.
    if (outcome.code === ExitCode.Ok) codeCache?.save();
    if (codeCache) logger.debug(codeCache.summary());
  });
}

async function main(): Promise<void> {
  startCpuProfile();
  const parsed = parseArgs(process.argv.slice(2), process.env);
  switch (parsed.kind) {
    case 'help':
      process.stdout.write(usageText());
      return exit(ExitCode.Ok);
    case 'version':
      process.stdout.write(`ssm-proxy ${VERSION} (reports client version ${CLIENT_VERSION} to the SSM agent)\n`);
      return exit(ExitCode.Ok);
    case 'error':
      process.stderr.write(formatErrorLine(parsed.message));
      return exit(ExitCode.Usage);
  }
  let logger: Logger;
  try {
    logger = createLogger({ verbose: parsed.options.verbose, logFile: parsed.options.logFile });
  } catch (err) {
    process.stderr.write(formatErrorLine(err instanceof Error ? err.message : String(err)));
    return exit(err instanceof ProxyError ? err.exitCode : ExitCode.Usage);
  }
  try {
    await run(parsed.options, logger);
  } catch (err) {
    if (err instanceof ProxyError) {
      logger.error(err.message);
      await exit(err.exitCode, logger);
    }
    const e = err as Error;
    logger.error(`unexpected failure: ${e && e.message ? e.message : String(err)}; run again with -vv and report it`);
    logger.debug(e && e.stack ? e.stack : String(err));
    await exit(ExitCode.Failure, logger);
  }
}

void main();
