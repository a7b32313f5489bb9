// The region in the AWS config file's profile, read without the AWS SDK: where it is set
// there (as `aws configure` does) and nowhere else, the SSM API's connection can open
// before the SDK has loaded and read it itself. Only a guess: the SDK's own answer is
// the one used, and a wrong guess costs a connection nobody uses.
import { readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

const MAX_CONFIG_BYTES = 1024 * 1024;

function homeDir(env: NodeJS.ProcessEnv): string | undefined {
  const home = env.HOME || env.USERPROFILE;
  if (home) return home;
  try {
    return homedir();
  } catch {
    return undefined;
  }
}

/**
 * The file the SDK reads: `setting` (AWS_CONFIG_FILE, AWS_SHARED_CREDENTIALS_FILE), a leading
 * `~/` in it standing for the home folder as the SDK reads it, else ~/.aws/`name`.
 */
function awsFile(env: NodeJS.ProcessEnv, setting: string | undefined, name: string): string | undefined {
  if (setting && !setting.startsWith('~/')) return setting;
  const home = homeDir(env);
  if (!home) return undefined;
  return setting ? join(home, setting.slice(2)) : join(home, '.aws', name);
}

/**
 * The text of the AWS config file (or, with `which` = 'credentials', of the shared
 * credentials file); 'missing' when there is none; undefined when it cannot be read here
 * (not a regular file, too large, unreadable).
 */
export function configFileText(env: NodeJS.ProcessEnv = process.env, which: 'config' | 'credentials' = 'config'): string | 'missing' | undefined {
  const file = which === 'config' ? awsFile(env, env.AWS_CONFIG_FILE, 'config') : awsFile(env, env.AWS_SHARED_CREDENTIALS_FILE, 'credentials');
  if (!file) return undefined;
  try {
    // Only a regular file: a pipe (AWS_CONFIG_FILE=<(…)) read here would be empty for the
    // SDK afterwards, and opening one without a writer would block.
    const st = statSync(file);
    if (!st.isFile() || st.size > MAX_CONFIG_BYTES) return undefined;
    return readFileSync(file, 'utf8');
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing' : undefined;
  }
}

/**
 * `region` from the section of `profile` ('default' when undefined) in the AWS config
 * file: `[default]` or `[profile NAME]`. Undefined when the file, the section or the
 * setting is missing, or the value does not look like a region.
 */
export function configFileRegion(profile: string | undefined, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const text = configFileText(env);
  if (typeof text !== 'string') return undefined;
  const name = profile ?? 'default';
  let inProfile = false;
  let region: string | undefined;
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const section = /^\[\s*(.*?)\s*\]/.exec(line);
    if (section) {
      const title = section[1].replace(/\s+/g, ' ');
      inProfile = title === `profile ${name}` || (name === 'default' && title === 'default');
      continue;
    }
    if (!inProfile) continue;
    const setting = /^region\s*=\s*([a-z0-9-]+)\s*(?:[#;].*)?$/.exec(line);
    if (setting) region = setting[1];
  }
  return region;
}
