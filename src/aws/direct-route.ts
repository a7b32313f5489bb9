// Whether the SSM API can be called without the AWS SDK (json-client.ts): only where the
// SDK's answer is certain without loading it. Keys from the environment (which the SDK
// would use first), a region given (--region, AWS_REGION, AWS_DEFAULT_REGION), and an
// endpoint known: the one given, or the regional one when nothing in the environment or
// the config or credentials file could change it (FIPS, dual-stack, configured endpoint
// URLs), and no setting of retries, clock-skew correction or User-Agent app id we do not
// read. Anything else goes through the SDK, as does everything with SSM_PROXY_USE_SDK=1.
import { configFileText } from './config-region.ts';
import { expectedApiOrigin } from './partition.ts';
import type { StaticCredentials } from './sigv4.ts';

export interface DirectRouteConfig {
  /** SSM_PROXY_USE_SDK: everything through the SDK. */
  useSdk?: boolean;
  region?: string;
  profile?: string;
  profileFromEnv?: boolean;
  endpointUrl?: string;
}

export type DirectRoute =
  | { ok: true; region: string; endpoint: URL; credentials: StaticCredentials; maxAttempts: number; appId?: string }
  | { ok: false; reason: string };

/**
 * Settings that change the SDK's endpoint, signing, retries or User-Agent, in the config
 * file or (the SDK merges the profile's section of it) the shared credentials file.
 */
const FILE_SETTINGS_WE_DO_NOT_READ =
  /^[ \t]*(endpoint_url|use_fips_endpoint|use_dualstack_endpoint|ignore_configured_endpoint_urls|services|max_attempts|retry_mode|disable_clock_skew_correction|sigv4a_signing_region_set|auth_scheme_preference|account_id_endpoint_mode|sdk_ua_app_id)[ \t]*=/im;
/** The same in the environment (AWS_ENDPOINT_URL_SSM and AWS_ENDPOINT_URL are read by args.ts). */
const ENV_SETTINGS_WE_DO_NOT_READ = [
  'AWS_USE_FIPS_ENDPOINT',
  'AWS_USE_DUALSTACK_ENDPOINT',
  'AWS_RETRY_MODE',
  'AWS_DISABLE_CLOCK_SKEW_CORRECTION',
  'AWS_SIGV4A_SIGNING_REGION_SET',
  'AWS_AUTH_SCHEME_PREFERENCE',
  'AWS_ACCOUNT_ID_ENDPOINT_MODE',
];

export function directRoute(cfg: DirectRouteConfig, env: NodeJS.ProcessEnv = process.env): DirectRoute {
  const no = (reason: string): DirectRoute => ({ ok: false, reason });
  if (cfg.useSdk) return no('SSM_PROXY_USE_SDK is set');
  const accessKeyId = env.AWS_ACCESS_KEY_ID;
  const secretAccessKey = env.AWS_SECRET_ACCESS_KEY;
  if (!accessKeyId || !secretAccessKey) return no('no keys in the environment');
  // --profile sets the environment's keys aside; AWS_PROFILE does not (as in the AWS CLI).
  if (cfg.profile !== undefined && !cfg.profileFromEnv) return no(`--profile ${cfg.profile}`);
  if (cfg.region === undefined) return no('no region given; the SDK looks for one in the config file');
  const setting = ENV_SETTINGS_WE_DO_NOT_READ.find((name) => (env[name] ?? '') !== '');
  if (setting) return no(`${setting} is set`);
  const maxAttemptsSetting = env.AWS_MAX_ATTEMPTS ?? '';
  // The SDK reads it with parseInt: anything but digits is left to it.
  if (maxAttemptsSetting !== '' && !/^\d+$/.test(maxAttemptsSetting)) return no('AWS_MAX_ATTEMPTS is not a whole number');
  const maxAttempts = maxAttemptsSetting === '' ? 3 : Math.max(1, Number(maxAttemptsSetting));
  for (const which of ['config', 'credentials'] as const) {
    const text = configFileText(env, which);
    if (text === undefined) return no(`the ${which} file cannot be read here`);
    if (text !== 'missing' && FILE_SETTINGS_WE_DO_NOT_READ.test(text)) return no(`the ${which} file has endpoint, retry or client settings`);
  }
  let endpoint: URL;
  if (cfg.endpointUrl !== undefined) {
    endpoint = new URL(cfg.endpointUrl);
    if ((endpoint.pathname !== '/' && endpoint.pathname !== '') || endpoint.search !== '' || endpoint.username !== '' || endpoint.password !== '') {
      return no('the endpoint URL has a path or query');
    }
    if (endpoint.protocol !== 'https:' && endpoint.protocol !== 'http:') return no('the endpoint URL is not http(s)');
  } else {
    const origin = expectedApiOrigin(cfg.region, undefined, env);
    if (origin === undefined) return no(`no regional endpoint known for ${cfg.region}`);
    endpoint = new URL(origin);
  }
  // AWS_SDK_UA_APP_ID goes into the User-Agent as the SDK puts it (`app/ID`); an ID the SDK
  // would have to clean up is left to it.
  const appId = env.AWS_SDK_UA_APP_ID ?? '';
  if (appId !== '' && !/^[\w.~!#$%&'*+^`|-]{1,50}$/.test(appId)) return no('AWS_SDK_UA_APP_ID is not a plain token of up to 50 characters');
  const sessionToken = env.AWS_SESSION_TOKEN;
  return {
    ok: true,
    region: cfg.region,
    endpoint,
    credentials: { accessKeyId, secretAccessKey, ...(sessionToken ? { sessionToken } : {}) },
    maxAttempts,
    ...(appId !== '' ? { appId } : {}),
  };
}
