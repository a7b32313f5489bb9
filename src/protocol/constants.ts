// Wire constants of the Session Manager data channel (PROTOCOL.md §4-§6, appendix A).

export const HEADER_LENGTH = 116;
export const PAYLOAD_OFFSET = HEADER_LENGTH + 4;
export const MESSAGE_TYPE_LENGTH = 32;
export const SCHEMA_VERSION = 1;

export const MessageType = {
  InputStreamData: 'input_stream_data',
  OutputStreamData: 'output_stream_data',
  Acknowledge: 'acknowledge',
  ChannelClosed: 'channel_closed',
  StartPublication: 'start_publication',
  PausePublication: 'pause_publication',
  AgentSessionState: 'agent_session_state',
} as const;
export type KnownMessageType = (typeof MessageType)[keyof typeof MessageType];

export const KNOWN_MESSAGE_TYPES: ReadonlySet<string> = new Set(Object.values(MessageType));

export const PayloadType = {
  Unset: 0,
  Output: 1,
  Error: 2,
  Size: 3,
  Parameter: 4,
  HandshakeRequest: 5,
  HandshakeResponse: 6,
  HandshakeComplete: 7,
  EncChallengeRequest: 8,
  EncChallengeResponse: 9,
  Flag: 10,
  StdErr: 11,
  ExitCode: 12,
} as const;
export type PayloadTypeValue = (typeof PayloadType)[keyof typeof PayloadType];

export const PayloadFlag = {
  DisconnectToPort: 1,
  TerminateSession: 2,
  ConnectToPortError: 3,
} as const;

export const ActionStatus = {
  Success: 1,
  Failed: 2,
  Unsupported: 3,
} as const;

/** Header Flags field as the reference implementations send it (§4.7). */
export const HeaderFlags = {
  Data: 0n,
  Syn: 1n,
  Ack: 3n,
} as const;

/** Largest stream payload both reference implementations send (§9.2). */
export const DEFAULT_MAX_PAYLOAD = 1024;

/** Agent version gate for the TerminateSession flag: strictly greater than this (§9.8). */
export const TERMINATE_FLAG_MIN_AGENT_EXCLUSIVE = '2.3.722.0';
