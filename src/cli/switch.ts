// The words an on/off setting in the environment takes (SSM_PROXY_USE_SDK; "off" for
// SSM_PROXY_CODE_CACHE). Shared by the argument parser and the loader, which reads its
// settings before the application runs.
export const SWITCH_ON = /^(1|true|yes|on)$/i;
export const SWITCH_OFF = /^(0|false|no|off)$/i;
