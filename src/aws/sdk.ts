// The only parts of the AWS SDK ssm-proxy uses. Loaded with import() by ssm.ts;
// named static imports here let the bundler drop the other ~150 SSM commands
// (a dynamic import of the package itself keeps every export).
export { SSMClient, StartSessionCommand, ResumeSessionCommand, TerminateSessionCommand } from '@aws-sdk/client-ssm';
export { fromEnv, fromNodeProviderChain } from '@aws-sdk/credential-providers';
