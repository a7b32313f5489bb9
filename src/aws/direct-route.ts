// Whether the SSM API can be called without the AWS SDK (json-client.ts): only where the
// SDK's answer is certain without loading it. Keys from the environment (which the SDK
// would use first), a region given (--region, AWS_REGION, AWS_DEFAULT_REGION), and an
// endpoint known: the one given, or the regional one when nothing in the environment or
// the config file could change it (FIPS, dual-stack, configured endpoint URLs, retry
// settings). Anything else goes through the SDK, as does everything with
// SSM_PROXY_USE_SDK=1.
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
  | { ok: true; region: string; endpoint: URL; credentials: StaticCredentials; maxAttempts: number }
  | { ok: false; reason: string };

/** Settings of the config file that change the SDK's endpoint, signing or retries. */
const CONFIG_SETTINGS_WE_DO_NOT_READ = /^[ \t]*(endpoint_url|use_fips_endpoint|use_dualstack_endpoint|ignore_configured_endpoint_urls|services|max_attempts|retry_mode|sigv4a_signing_region_set|auth_scheme_preference|account_id_endpoint_mode)[ \t]*=/im;
/** The same in the environment (AWS_ENDPOINT_URL_SSM and AWS_ENDPOINT_URL are read by args.ts). */
const ENV_SETTINGS_WE_DO_NOT_READ = ['AWS_USE_FIPS_ENDPOINT', 'AWS_USE_DUALSTACK_ENDPOINT', 'AWS_RETRY_MODE', 'AWS_SIGV4A_SIGNING_REGION_SET', 'AWS_AUTH_SCHEME_PREFERENCE', 'AWS_ACCOUNT_ID_ENDPOINT_MODE'];

export function directRoute(cfg: DirectRouteConfig, env: NodeJS.ProcessEnv = process.env): DirectRoute {
  const no = (reason: string): DirectRoute => ({ ok: false, reason });
  if (cfg.useSdk) return no('SSM_PROXY_USE_SDK is set');
  const accessKeyId = env.AWS_ACCESS_KEY_ID;
  const secretAccessKey = env.AWS_SECRET_ACCESS_KEY;
  if (!accessKeyId || !secretAccessKey) return no('no keys in the environment');
  // --profile sets the environment's keys aside; AWS_PROFILE does not (as in the AWS CLI).
  if (cfg.profile !== undefined && !cfg.profileFromEnv) return no(`--profile ${cfg.profile}`);
  if (cfg.region === undefined) return no('the region is in the config file');
  const setting = ENV_SETTINGS_WE_DO_NOT_READ.find((name) => (env[name] ?? '') !== '');
  if (setting) return no(`${setting} is set`);
  const maxAttemptsSetting = env.AWS_MAX_ATTEMPTS;
  const maxAttempts = maxAttemptsSetting === undefined || maxAttemptsSetting === '' ? 3 : Number(maxAttemptsSetting);
  if (!Number.isInteger(maxAttempts) || maxAttempts < 1) return no('AWS_MAX_ATTEMPTS is not a positive whole number');
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
    const text = configFileText(env);
    if (text === undefined) return no('the config file cannot be read here');
    if (text !== 'missing' && CONFIG_SETTINGS_WE_DO_NOT_READ.test(text)) return no('the config file has endpoint or retry settings');
    endpoint = new URL(origin);
  }
  const sessionToken = env.AWS_SESSION_TOKEN;
  return {
    ok: true,
    region: cfg.region,
    endpoint,
    credentials: { accessKeyId, secretAccessKey, ...(sessionToken ? { sessionToken } : {}) },
    maxAttempts,
  };
}
