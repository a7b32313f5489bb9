// The three SSM control-plane calls (PROTOCOL.md §2). With keys in the environment they
// are signed and sent here (json-client.ts; direct-route.ts says when); otherwise through
// the AWS SDK, loaded with import() inside createSsmApi so that neither that route nor
// --help, --version and usage errors pay for it.
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import type { Agent as HttpAgent, ClientRequest } from 'node:http';
import { readFileSync } from 'node:fs';
import type { SSMClient, SSMClientConfig } from '@aws-sdk/client-ssm';
import type { fromNodeProviderChain } from '@aws-sdk/credential-providers';
import { ExitCode, ProxyError } from '../cli/exit-codes.ts';
import { silentLogger, type Logger } from '../cli/log.ts';
import { installWarningFilter } from '../cli/warnings.ts';
import { classifyAwsError, type AwsErrorContext } from './errors.ts';
import { proxiesConfigured, proxyFor, RoutingHttpAgent, RoutingHttpsAgent } from '../transport/proxy.ts';
import { monotonicMs } from '../transport/clock.ts';
import { Preconnection, agentWithPreconnection } from '../transport/preconnect.ts';
import { expectedApiOrigin } from './partition.ts';
import { configFileRegion } from './config-region.ts';
import { trustOptions } from '../transport/tls-context.ts';
import { codeCacheHandle } from '../loader/handle.ts';
import { VERSION } from '../cli/args.ts';
import { directRoute, type DirectRoute } from './direct-route.ts';
import { SsmJsonClient } from './json-client.ts';

export interface SsmConfig {
  region?: string;
  profile?: string;
  /**
   * The profile came from AWS_PROFILE / AWS_DEFAULT_PROFILE: then, as in the AWS CLI, keys
   * in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY are used before the profile's credentials
   * (the SDK alone would skip them). Only --profile sets them aside.
   */
  profileFromEnv?: boolean;
  endpointUrl?: string;
  /** Every call through the AWS SDK, even with keys in the environment. */
  useSdk?: boolean;
  logger?: Logger;
  /** PEM file of CAs to trust for the SSM API (and the STS/SSO calls of the credential chain). */
  caBundle?: string;
  /** Overrides for tests; the defaults suit real use. */
  timeouts?: Partial<SsmTimeouts>;
}

export interface SsmTimeouts {
  /** TCP+TLS connect, per attempt. */
  connectMs: number;
  /** Whole HTTP exchange, per attempt. */
  requestMs: number;
  /** StartSession/ResumeSession including the SDK's retries. */
  callMs: number;
  /** Per instance-metadata request when probing for EC2 role credentials. */
  imdsMs: number;
  /**
   * The whole credential lookup: a credential_process has no time limit of its own, and
   * one that hangs would hold ssh forever. Long enough to type an MFA code it asks for.
   */
  credentialsMs: number;
}

const DEFAULT_TIMEOUTS: SsmTimeouts = { connectMs: 5_000, requestMs: 15_000, callMs: 30_000, imdsMs: 1_000, credentialsMs: 120_000 };
const DEFAULT_TERMINATE_TIMEOUT_MS = 3_000;

export interface SessionStart {
  sessionId: string;
  streamUrl: string;
  tokenValue: string;
}

export interface StartSessionRequest {
  target: string;
  documentName: string;
  port: number;
  reason?: string;
  /**
   * Called once, after the request has been written to the socket: the time until the
   * answer comes is idle, and the caller can use it (loading what comes next).
   */
  onSent?: () => void;
}

export interface SsmApi {
  startSession(req: StartSessionRequest): Promise<SessionStart>;
  /**
   * A fresh token for a reconnect. `streamUrl` is the returned one, else the one
   * from this object's startSession, else '' (reuse the URL you connected to).
   * Throws ProxyError(ConnectionLost) when the session no longer exists.
   */
  resumeSession(sessionId: string): Promise<SessionStart | 'timed-out'>;
  /** Best effort; never throws. */
  terminateSession(sessionId: string, timeoutMs?: number): Promise<void>;
  readonly region: string;
  /** The SSM endpoint is this machine (a simulator), so a ws:// stream URL is acceptable. */
  readonly endpointIsLoopback: boolean;
  /** The CA bundle read for --ca-bundle / AWS_CA_BUNDLE; the data channel trusts it too. */
  readonly ca?: string;
}

type CredentialChain = ReturnType<typeof fromNodeProviderChain>;

const LOOPBACK_HOSTS = new Set(['127.0.0.1', '::1', '[::1]', 'localhost']);

export function isLoopbackUrl(url: string | undefined): boolean {
  if (!url) return false;
  try {
    return LOOPBACK_HOSTS.has(new URL(url).hostname.toLowerCase());
  } catch {
    return false;
  }
}

/** Env-configured IMDS limits, as the AWS CLI reads them (seconds / attempts). */
function imdsSettings(defaultMs: number): { timeout: number; maxRetries: number } {
  const seconds = Number(process.env.AWS_METADATA_SERVICE_TIMEOUT);
  const attempts = Number(process.env.AWS_METADATA_SERVICE_NUM_ATTEMPTS);
  return {
    timeout: Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : defaultMs,
    maxRetries: Number.isInteger(attempts) && attempts > 1 ? attempts - 1 : 0,
  };
}

function readCaBundle(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new ProxyError(ExitCode.Usage, `cannot read the CA bundle ${path} (${reason}); check --ca-bundle or AWS_CA_BUNDLE`, 'CaBundle');
  }
  // Without one, every TLS connection would fail later as "certificate not trusted; pass
  // its CA with --ca-bundle", which is what the user just did.
  if (!text.includes('-----BEGIN CERTIFICATE-----')) {
    throw new ProxyError(ExitCode.Usage, `the CA bundle ${path} holds no PEM certificate (-----BEGIN CERTIFICATE-----); check --ca-bundle or AWS_CA_BUNDLE`, 'CaBundle');
  }
  return text;
}

/** The SDK logs arbitrary objects; flatten them to one string for our logger. */
function sdkLogLine(args: unknown[]): string {
  return args.map((a) => (typeof a === 'string' ? a : a instanceof Error ? a.message : safeJson(a))).join(' ');
}

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value);
  } catch {
    return String(value);
  }
}

/**
 * Runs `call` and tells `onSent` when the first HTTP request made meanwhile has been
 * written to its socket ('finish' comes after connect, TLS and the write). Node's http
 * client announces each request on this diagnostics channel; the SDK gives no hook.
 */
async function whileWatchingSend<T>(onSent: (() => void) | undefined, call: () => Promise<T>): Promise<T> {
  if (!onSent) return call();
  let told = false;
  const watch = (message: unknown) => {
    const request = (message as { request?: ClientRequest }).request;
    unsubscribe('http.client.request.start', watch);
    request?.once('finish', () => {
      if (told) return;
      told = true;
      onSent();
    });
  };
  subscribe('http.client.request.start', watch);
  try {
    return await call();
  } finally {
    unsubscribe('http.client.request.start', watch);
  }
}

/** Runs `call` with an AbortSignal and rejects at `ms` even if the SDK is stuck in a retry delay. */
async function withDeadline<T>(ms: number, call: (signal: AbortSignal) => Promise<T>, onTimeout: () => Error): Promise<T> {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => {
      controller.abort();
      reject(onTimeout());
    }, ms);
  });
  try {
    return await Promise.race([call(controller.signal), deadline]);
  } finally {
    clearTimeout(timer);
  }
}

type SessionOutput = { SessionId?: string; StreamUrl?: string; TokenValue?: string };

/** How the three calls reach the API: through the AWS SDK, or signed here (json-client.ts). */
interface ApiCaller {
  readonly region: string;
  /** Looks the credentials up (the SDK's chain); throws a ProxyError for a person. */
  ensureCredentials(ctx: AwsErrorContext, forceRefresh?: boolean): Promise<void>;
  /** StartSession or ResumeSession, with the SDK's retries, until `abortSignal`. */
  call(operation: 'StartSession' | 'ResumeSession', input: Record<string, unknown>, abortSignal: AbortSignal): Promise<SessionOutput>;
  /** One attempt, its connection and answer within `timeoutMs`. */
  terminate(sessionId: string, timeoutMs: number, abortSignal: AbortSignal): Promise<void>;
}

/** What both callers share: the settings and the API's connection. */
interface CallerSetup {
  cfg: SsmConfig;
  logger: Logger;
  timeouts: SsmTimeouts;
  ca: string | undefined;
  /** The CA bundle as agent options ({} without one). */
  trust: { ca?: string };
  /** HTTPS_PROXY / HTTP_PROXY is set (read, and checked, once). */
  proxies: boolean;
  apiConnection: ReturnType<typeof agentWithPreconnection>;
  secureEndpoint: boolean;
  onTunnel: (target: string, proxy: URL) => void;
}

/**
 * Resolves the region and prepares the calls. Throws ProxyError(Usage) when
 * no region is configured anywhere, or the CA bundle cannot be read.
 * Credentials are only looked up by the first call.
 */
export async function createSsmApi(cfg: SsmConfig): Promise<SsmApi> {
  const logger = cfg.logger ?? silentLogger;
  const timeouts: SsmTimeouts = { ...DEFAULT_TIMEOUTS, ...cfg.timeouts };
  const ca = cfg.caBundle !== undefined ? readCaBundle(cfg.caBundle) : undefined;

  // The SDK v3 ignores HTTPS_PROXY; the CLI and the plugin honour it, so do we. The route
  // is decided for each connection's host (NO_PROXY may list the SSM endpoint and not
  // STS, or the other way round), so it holds whatever region or endpoint the SDK resolves.
  const secureEndpoint = cfg.endpointUrl === undefined || new URL(cfg.endpointUrl).protocol === 'https:';
  const onTunnel = (target: string, proxy: URL) => logger.debug(`connecting to ${target} through the proxy ${proxy.host}`);
  // Read before anything connects: a malformed proxy setting is an error at start.
  const proxies = proxiesConfigured();

  // The API's connection (DNS, TCP, TLS) opens ahead where we know where it will go and no
  // proxy is in the way: at once on the direct route, else while the SDK loads, or once it
  // has resolved the region. The direct calls and the SDK's StartSession/ResumeSession
  // client use this agent (the SDK's defaults otherwise: keep-alive, 50 sockets).
  // Given the CA bundle itself, not its context: that comes with the first connection (RoutingHttpsAgent).
  const trust = ca !== undefined ? { ca } : {};
  const apiConnection = agentWithPreconnection(secureEndpoint, { keepAlive: true, maxSockets: 50, ...trust }, () => logger.trace('SSM API: using the connection opened ahead'), onTunnel);
  const setup: CallerSetup = { cfg, logger, timeouts, ca, trust, proxies, apiConnection, secureEndpoint, onTunnel };

  const route = directRoute(cfg);
  let caller: ApiCaller;
  if (route.ok) {
    openApiConnection(setup, route.region);
    logger.debug(`SSM API: ${route.endpoint.origin}, keys from the environment, requests signed by ssm-proxy (the AWS SDK is not loaded)`);
    caller = directCaller(setup, route);
  } else {
    logger.trace(`SSM API: through the AWS SDK (${route.reason})`);
    caller = await sdkCaller(setup);
  }
  const region = caller.region;

  const endpointForMessages = cfg.endpointUrl;
  const context = (operation: string, extra: Partial<AwsErrorContext> = {}): AwsErrorContext => ({
    operation,
    region,
    ...(cfg.profile !== undefined ? { profile: cfg.profile } : {}),
    ...(endpointForMessages !== undefined ? { endpoint: endpointForMessages } : {}),
    ...extra,
  });
  const timeoutError = (operation: string) => () =>
    new ProxyError(
      ExitCode.Network,
      `${operation} got no answer from ${endpointForMessages ?? `the SSM endpoint in ${region}`} within ${Math.round(timeouts.callMs / 1000)} s; check your network and proxy settings`,
      'TimeoutError',
    );
  const send = (operation: 'StartSession' | 'ResumeSession', input: Record<string, unknown>) =>
    withDeadline(timeouts.callMs, (abortSignal) => caller.call(operation, input, abortSignal), timeoutError(operation));

  const streamUrls = new Map<string, string>();

  function registerToken(token: string): void {
    logger.addSecret(token);
  }

  return {
    region,
    endpointIsLoopback: isLoopbackUrl(cfg.endpointUrl),
    ...(ca !== undefined ? { ca } : {}),

    async startSession(req) {
      const ctx = context('StartSession', { target: req.target, documentName: req.documentName });
      await caller.ensureCredentials(ctx);
      const input = {
        Target: req.target,
        DocumentName: req.documentName,
        Parameters: { portNumber: [String(req.port)] },
        ...(req.reason ? { Reason: req.reason } : {}),
      };
      logger.debug(`StartSession ${req.target} port ${req.port} document ${req.documentName} in ${region}`);
      let out: SessionOutput;
      try {
        out = await whileWatchingSend(req.onSent, () => send('StartSession', input));
      } catch (err) {
        throw classifyAwsError(err, ctx);
      } finally {
        apiConnection.discard(); // if StartSession went elsewhere
      }
      if (typeof out.TokenValue === 'string' && out.TokenValue) registerToken(out.TokenValue);
      const missing = (['SessionId', 'StreamUrl', 'TokenValue'] as const).filter((k) => typeof out[k] !== 'string' || !out[k]);
      if (missing.length > 0) {
        throw new ProxyError(
          ExitCode.Protocol,
          `StartSession answered without ${missing.join(', ')}; the endpoint ${endpointForMessages ?? `in ${region}`} does not behave like SSM, check --endpoint-url`,
          'IncompleteResponse',
        );
      }
      const start: SessionStart = { sessionId: out.SessionId!, streamUrl: out.StreamUrl!, tokenValue: out.TokenValue! };
      streamUrls.set(start.sessionId, start.streamUrl);
      logger.debug(`session ${start.sessionId} started`);
      return start;
    },

    async resumeSession(sessionId) {
      const ctx = context('ResumeSession', { sessionId });
      await caller.ensureCredentials(ctx);
      const input = { SessionId: sessionId };
      let out: SessionOutput;
      try {
        out = await send('ResumeSession', input);
      } catch (first) {
        const classified = classifyAwsError(first, ctx);
        if (classified.exitCode !== ExitCode.Credentials) throw classified;
        // Long sessions outlive short-term credentials: reload them once (PROTOCOL.md §11.6).
        logger.debug(`ResumeSession: ${classified.message}; reloading credentials once`);
        await caller.ensureCredentials(ctx, true);
        try {
          out = await send('ResumeSession', input);
        } catch (second) {
          throw classifyAwsError(second, ctx);
        }
      }
      if (typeof out.TokenValue !== 'string' || !out.TokenValue) {
        logger.debug(`ResumeSession for ${sessionId} returned no token: the session timed out`);
        return 'timed-out';
      }
      registerToken(out.TokenValue);
      const returnedUrl = typeof out.StreamUrl === 'string' ? out.StreamUrl : '';
      const streamUrl = returnedUrl || streamUrls.get(sessionId) || '';
      if (returnedUrl) streamUrls.set(sessionId, returnedUrl);
      return { sessionId: (typeof out.SessionId === 'string' && out.SessionId) || sessionId, streamUrl, tokenValue: out.TokenValue };
    },

    async terminateSession(sessionId, timeoutMs = DEFAULT_TERMINATE_TIMEOUT_MS) {
      try {
        await withDeadline(
          timeoutMs,
          (abortSignal) => caller.terminate(sessionId, timeoutMs, abortSignal),
          () => new ProxyError(ExitCode.Network, `TerminateSession timed out after ${timeoutMs} ms`, 'TimeoutError'),
        );
        logger.debug(`session ${sessionId} terminated`);
      } catch (err) {
        const classified = classifyAwsError(err, context('TerminateSession', { sessionId }));
        logger.debug(`TerminateSession ${sessionId} ignored: ${classified.message}`);
      }
    },
  };
}

/**
 * Opens the API's connection ahead to where `region` and the endpoint setting say, unless a
 * proxy is in the way. Only a head start: when it fails, the request connects on its own.
 */
function openApiConnection(setup: CallerSetup, region: string | undefined): boolean {
  const origin = expectedApiOrigin(region, setup.cfg.endpointUrl);
  if (!origin || proxyFor(new URL(origin))) return false;
  try {
    setup.apiConnection.use(new Preconnection(new URL(origin), setup.ca));
    setup.logger.trace(`opening a connection to ${origin} for the SSM API`);
    return true;
  } catch (err) {
    setup.logger.trace(`could not open a connection to ${origin} ahead: ${(err as Error).message}`);
    return false;
  }
}

/** The calls signed here with the environment's keys; the AWS SDK is not loaded. */
function directCaller(setup: CallerSetup, route: Extract<DirectRoute, { ok: true }>): ApiCaller {
  const { timeouts, logger } = setup;
  const client = new SsmJsonClient({
    endpoint: route.endpoint,
    region: route.region,
    credentials: route.credentials,
    agent: setup.apiConnection.agent,
    userAgent: `ssm-proxy/${VERSION} node/${process.version}${route.appId !== undefined ? ` app/${route.appId}` : ''}`,
    maxAttempts: route.maxAttempts,
    trace: (line) => logger.trace(line),
  });
  let terminateAgent: HttpAgent | undefined;
  return {
    region: route.region,
    // Nothing to look up; and nothing to reload: the environment does not change under us.
    async ensureCredentials() {},
    call: (operation, input, signal) => client.call(operation, input, { signal, connectMs: timeouts.connectMs, requestMs: timeouts.requestMs }),
    async terminate(sessionId, timeoutMs, signal) {
      // Its one attempt on a connection of its own, as the SDK route's: the kept-alive one may
      // have gone stale during the session, and a reset would lose the call.
      terminateAgent ??= route.endpoint.protocol === 'https:'
        ? new RoutingHttpsAgent({ keepAlive: false, ...setup.trust }, process.env, setup.onTunnel)
        : new RoutingHttpAgent({ keepAlive: false }, process.env, setup.onTunnel);
      await client.call('TerminateSession', { SessionId: sessionId }, { signal, agent: terminateAgent, maxAttempts: 1, requestMs: timeoutMs, connectMs: Math.min(timeouts.connectMs, timeoutMs) });
    },
  };
}

/** The calls through the AWS SDK: its region resolution, credential chain, signing and retries. */
async function sdkCaller(setup: CallerSetup): Promise<ApiCaller> {
  const { cfg, logger, timeouts, ca, trust, proxies, apiConnection, secureEndpoint, onTunnel } = setup;
  // The region as the SDK will resolve it, where we can tell before loading it: given, or
  // (the usual set-up) in the config file's profile.
  const regionGuess = cfg.region ?? (cfg.endpointUrl === undefined ? configFileRegion(cfg.profile) : undefined);
  if (cfg.region === undefined && regionGuess !== undefined) logger.trace(`region ${regionGuess} from the AWS config file, to open the API's connection early`);
  const connectionUnderWay = (regionGuess !== undefined || cfg.endpointUrl !== undefined) && openApiConnection(setup, regionGuess);

  // Before the SDK loads: its client constructor warns about Node < 22 on every run.
  installWarningFilter();
  const startedLoading = monotonicMs();
  let steps: number | undefined;
  if (connectionUnderWay) {
    // The SDK's files load one per turn of the event loop (when run from the build), so
    // that the connection's DNS answer, TCP and TLS handshakes go on meanwhile. At least
    // one turn: node starts a connection to an IP address on the next tick.
    steps = await codeCacheHandle()?.loadInSteps('src/aws/sdk.ts');
    if (!steps) await new Promise((resolve) => setImmediate(resolve));
  }
  const sdk = await import('./sdk.ts');
  logger.trace(`AWS SDK loaded in ${Math.round(monotonicMs() - startedLoading)} ms${steps ? ` (${steps} files in turns of the event loop)` : ''}`);

  // The credential chain tries every provider and then reports only "Could not load
  // credentials from any providers"; why the profile's own provider (fromIni) failed is
  // in its debug lines. Kept for the message a person sees.
  let chainStep = '';
  const providerFailures = new Map<string, string>();
  const noteProviderLine = (line: string) => {
    const step = /defaultProvider::(\w+)/.exec(line);
    if (step) chainStep = step[1];
    const failure = /^@smithy\/property-provider -> ([\s\S]+)$/.exec(line);
    if (failure && chainStep && !providerFailures.has(chainStep)) providerFailures.set(chainStep, failure[1]);
  };
  const sdkLogger = {
    trace: (...args: unknown[]) => logger.trace(sdkLogLine(args)),
    debug: (...args: unknown[]) => {
      const line = sdkLogLine(args);
      noteProviderLine(line);
      logger.trace(line);
    },
    info: (...args: unknown[]) => logger.debug(sdkLogLine(args)),
    warn: (...args: unknown[]) => logger.warn(sdkLogLine(args)),
    error: (...args: unknown[]) => logger.debug(sdkLogLine(args)),
  };

  // The other clients (TerminateSession's, the credential chain's STS and SSO): node's
  // agents unless a proxy or a CA bundle needs ours.
  const httpsAgent = proxies ? new RoutingHttpsAgent({ keepAlive: true, ...trust }, process.env, onTunnel) : ca !== undefined ? { keepAlive: true, ...trustOptions(ca) } : undefined;
  const httpAgent = proxies ? new RoutingHttpAgent({ keepAlive: true }, process.env, onTunnel) : undefined;
  const requestHandler = (requestMs: number) => ({
    connectionTimeout: timeouts.connectMs,
    requestTimeout: requestMs,
    // Without this the SDK only logs a warning when requestTimeout passes.
    throwOnRequestTimeout: true,
    ...(httpsAgent ? { httpsAgent } : {}),
    ...(httpAgent ? { httpAgent } : {}),
  });

  // The credential chain is created once the region is known, so role
  // assumption and SSO calls use the same region (and partition) as SSM.
  let credentialChain: CredentialChain | undefined;
  const credentials: CredentialChain = async (props) => {
    if (!credentialChain) throw new ProxyError(ExitCode.Failure, 'internal error: credentials requested before the region was resolved');
    return credentialChain(props);
  };

  const baseConfig: SSMClientConfig = {
    credentials,
    ...(cfg.region !== undefined ? { region: cfg.region } : {}),
    ...(cfg.profile !== undefined ? { profile: cfg.profile } : {}),
    ...(cfg.endpointUrl !== undefined ? { endpoint: cfg.endpointUrl } : {}),
  };
  const client: SSMClient = new sdk.SSMClient({
    ...baseConfig,
    requestHandler: { ...requestHandler(timeouts.requestMs), [secureEndpoint ? 'httpsAgent' : 'httpAgent']: apiConnection.agent },
  });

  let region: string;
  try {
    region = await client.config.region();
  } catch (err) {
    if (/region is missing/i.test((err as Error)?.message ?? '')) {
      const where = cfg.profile !== undefined ? ` (profile ${cfg.profile})` : '';
      throw new ProxyError(
        ExitCode.Usage,
        `no AWS region configured${where}; pass --region, set AWS_REGION, or set region in your AWS config profile`,
        'RegionMissing',
      );
    }
    throw classifyAwsError(err, { operation: 'configuration' });
  }
  // None opened yet, or one to where the SDK does not go (it read other settings).
  if (expectedApiOrigin(region, cfg.endpointUrl) !== expectedApiOrigin(regionGuess, cfg.endpointUrl)) openApiConnection(setup, region);

  const imds = imdsSettings(timeouts.imdsMs);
  const envKeys = Boolean(process.env.AWS_ACCESS_KEY_ID && process.env.AWS_SECRET_ACCESS_KEY);
  if (cfg.profileFromEnv && envKeys) logger.debug(`credentials: AWS_ACCESS_KEY_ID from the environment, before profile ${cfg.profile} (as the AWS CLI)`);
  credentialChain = cfg.profileFromEnv && envKeys ? sdk.fromEnv() : sdk.fromNodeProviderChain({
    ...(cfg.profile !== undefined ? { profile: cfg.profile } : {}),
    // STS (role assumption) and SSO calls get the same timeouts and CA bundle as SSM.
    clientConfig: { region, requestHandler: requestHandler(timeouts.requestMs) },
    timeout: imds.timeout,
    maxRetries: imds.maxRetries,
    logger: sdkLogger,
  });

  /** For a named profile, the chain's catch-all failure replaced by why the profile's provider failed. */
  function profileFailure(err: unknown): Error | undefined {
    const why = providerFailures.get('fromIni');
    providerFailures.clear();
    if (cfg.profile === undefined || why === undefined || !/from any providers/i.test((err as Error)?.message ?? '')) return undefined;
    // A credential_process's command line and output may hold secrets: only say that it failed.
    const message = /^Command failed/i.test(why) ? `its credential_process failed; run that command yourself to see why` : why;
    return Object.assign(new Error(message), { name: 'CredentialsProviderError' });
  }

  let terminateClient: SSMClient | undefined;
  const commands = { StartSession: sdk.StartSessionCommand, ResumeSession: sdk.ResumeSessionCommand } as const;

  return {
    region,

    /** Separate so a missing-credentials failure is reported as such, not as an API error. */
    async ensureCredentials(ctx, forceRefresh = false) {
      const started = monotonicMs();
      try {
        await withDeadline(
          timeouts.credentialsMs,
          () => credentials(forceRefresh ? { forceRefresh: true } : {}),
          () =>
            new ProxyError(
              ExitCode.Credentials,
              `no AWS credentials within ${Math.round(timeouts.credentialsMs / 1000)} s${cfg.profile !== undefined ? ` for profile ${cfg.profile}` : ''}: the lookup did not finish (a credential_process or sign-in that hangs?); check where the profile gets its credentials`,
              'CredentialsTimeout',
            ),
        );
      } catch (err) {
        logger.debug(`credential lookup failed after ${Math.round(monotonicMs() - started)} ms`);
        throw classifyAwsError(profileFailure(err) ?? err, { ...ctx, operation: 'credentials' });
      }
      logger.trace(`credentials ready in ${Math.round(monotonicMs() - started)} ms`);
    },

    async call(operation, input, abortSignal) {
      // The commands' input types are the SDK's; ours is the same JSON.
      const Command = commands[operation] as unknown as new (input: Record<string, unknown>) => Parameters<SSMClient['send']>[0];
      return (await client.send(new Command(input), { abortSignal })) as SessionOutput;
    },

    async terminate(sessionId, timeoutMs, abortSignal) {
      terminateClient ??= new sdk.SSMClient({
        ...baseConfig,
        region,
        maxAttempts: 1,
        requestHandler: { ...requestHandler(timeoutMs), connectionTimeout: Math.min(timeouts.connectMs, timeoutMs) },
      });
      await terminateClient.send(new sdk.TerminateSessionCommand({ SessionId: sessionId }), { abortSignal });
    },
  };
}
