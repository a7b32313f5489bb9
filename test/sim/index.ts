// The AWS side in one call: fake SSM API + fake MGS gateway with one simulated agent per session.
import { FakeSsmApi, TEST_CREDENTIALS } from './ssm-api.ts';
import { SessionRegistry, type TargetConfig } from './sessions.ts';
import { Gateway, type Profile, type SessionStats } from './gateway.ts';
import type { FaultConfig } from './faults.ts';
import { type ViolationCounts } from './violations.ts';

export type { FaultConfig, DirectionFaults, CloseClientFault, FaultDecision, FaultAction, Direction } from './faults.ts';
export type { ViolationKind, ViolationCounts, ViolationRecord } from './violations.ts';
export { VIOLATION_KINDS, nonZero, totalOf, emptyCounts } from './violations.ts';
export type { SessionStats, Profile, TimelineEntry, AgentSession, Gateway } from './gateway.ts';
export { TEST_CREDENTIALS } from './ssm-api.ts';

export interface SimOptions {
  /** 'service' (default): the real service's limits and the agent's pacing. 'unlimited': neither. */
  profile?: Profile;
  /** Instance id -> where its agent connects. When omitted every target is accepted and the portNumber parameter is dialled on 127.0.0.1. */
  targets?: Record<string, TargetConfig>;
  agentVersion?: string;
  seed?: number;
  faults?: FaultConfig;
  /** Client frame budget (frames/s, burst). Service default 1000/100; unlimited default none. */
  frameRate?: number;
  frameBurst?: number;
  /** Service default 1024; unlimited default none. */
  maxClientPayload?: number;
  /** Agent read size from the target. Default 1024. */
  agentChunk?: number;
  /**
   * 'oldest-only' (default) is the real agent: one resend of its oldest unacked frame per
   * 100 ms scan (§8.5, quirk Q2). 'per-frame' resends every timed-out frame, for tests that
   * drop many agent frames and are about the client, not about the agent's recovery speed.
   */
  agentRetransmit?: 'oldest-only' | 'per-frame';
  missingAckMs?: number;
  pauseGraceMs?: number;
  /** Close every client websocket this often with 1000 "Bye", like the real service (~hourly). Default off. */
  recycleMs?: number;
  tokenTtlMs?: number;
  /** Pause length after a budget or size violation. Default 1000 ms. */
  penaltyMs?: number;
  /** Pause episodes within windowMs that end the session with "rate exceeded". Default 5 in 10 s. */
  sustain?: { episodes: number; windowMs: number };
  handshakeTimeoutMs?: number;
  /** The agent's HandshakeComplete CustomerMessage (§6.4). Default ''. */
  customerMessage?: string;
  drainMs?: number;
  startPublicationOnReattach?: boolean;
  region?: string;
  /**
   * A long network path: StartSession and the other calls are answered `apiMs` late, and
   * neither an API request nor a websocket upgrade is taken sooner than `connectMs` after
   * its connection was accepted (standing in for the TCP and TLS handshakes). Default none.
   */
  latency?: { apiMs?: number; connectMs?: number };
  /**
   * Serve the API over https:// and the data channel over wss:// with this key and
   * certificate (for 127.0.0.1), as the real service does; clients then need its
   * certificate as their CA bundle. Default: http:// and ws://.
   */
  tls?: { key: string; cert: string };
  /** Fixed listening ports (default: any free port). */
  apiPort?: number;
  gatewayPort?: number;
  logger?: (line: string) => void;
}

export interface Simulator {
  apiUrl: string;
  /** ws://127.0.0.1:PORT, wss:// with tls (StreamUrls are <gatewayUrl>/v1/data-channel/<id>?role=publish_subscribe). */
  gatewayUrl: string;
  statsUrl: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
  region: string;
  registry: SessionRegistry;
  api: FakeSsmApi;
  gateway: Gateway;
  violations(): ViolationCounts;
  totalViolations(): number;
  sessions(): SessionStats[];
  close(): Promise<void>;
}

export async function startSimulator(opts: SimOptions = {}): Promise<Simulator> {
  const profile = opts.profile ?? 'service';
  const service = profile === 'service';
  const registry = new SessionRegistry(opts.tokenTtlMs !== undefined ? { tokenTtlMs: opts.tokenTtlMs } : {});
  const frameRate = opts.frameRate ?? (service ? 1000 : 0);
  const gateway = new Gateway({
    registry,
    profile,
    agentVersion: opts.agentVersion ?? '3.3.1142.0',
    seed: opts.seed ?? 1,
    faults: opts.faults ?? {},
    frameRate,
    frameBurst: opts.frameBurst ?? (service ? 100 : Math.max(1, Math.ceil(frameRate / 10))),
    maxClientPayload: opts.maxClientPayload ?? (service ? 1024 : Infinity),
    agentChunk: opts.agentChunk ?? 1024,
    agentRetransmit: opts.agentRetransmit ?? 'oldest-only',
    missingAckMs: opts.missingAckMs ?? 30_000,
    pauseGraceMs: opts.pauseGraceMs ?? 100,
    recycleMs: opts.recycleMs ?? 0,
    penaltyMs: opts.penaltyMs ?? 1000,
    sustain: opts.sustain ?? { episodes: 5, windowMs: 10_000 },
    handshakeTimeoutMs: opts.handshakeTimeoutMs ?? 15_000,
    customerMessage: opts.customerMessage ?? '',
    drainMs: opts.drainMs ?? 2000,
    startPublicationOnReattach: opts.startPublicationOnReattach ?? true,
    connectDelayMs: opts.latency?.connectMs ?? 0,
    ...(opts.tls ? { tls: opts.tls } : {}),
    logger: opts.logger,
  });
  const gatewayUrl = await gateway.listen(opts.gatewayPort ?? 0);
  const region = opts.region ?? 'us-east-1';
  const api = new FakeSsmApi({ registry, region, targets: opts.targets, streamUrl: (id) => gateway.streamUrl(id), answerDelayMs: opts.latency?.apiMs ?? 0, connectDelayMs: opts.latency?.connectMs ?? 0, ...(opts.tls ? { tls: opts.tls } : {}) });
  let apiUrl: string;
  try {
    apiUrl = await api.listen(opts.apiPort ?? 0);
  } catch (e) {
    await gateway.close();
    throw e;
  }
  let closed = false;
  return {
    apiUrl,
    gatewayUrl,
    statsUrl: gateway.statsUrl,
    credentials: { accessKeyId: TEST_CREDENTIALS.accessKeyId, secretAccessKey: TEST_CREDENTIALS.secretAccessKey },
    region,
    registry,
    api,
    gateway,
    violations: () => ({ ...gateway.violations.counts }),
    totalViolations: () => gateway.violations.total(),
    sessions: () => gateway.stats().sessions,
    close: async () => {
      if (closed) return;
      closed = true;
      await Promise.all([gateway.close(), api.close()]);
    },
  };
}
