// Bundles the CLI into one ES module so `ssm-proxy` starts without resolving
// hundreds of files from node_modules on every connection.
import { build } from 'esbuild';

import { rmSync } from 'node:fs';

rmSync('dist', { recursive: true, force: true });
await build({
  entryPoints: { 'ssm-proxy': 'src/cli/main.ts' },
  outdir: 'dist',
  outExtension: { '.js': '.mjs' },
  // The AWS SDK sits behind import(): in its own chunk it is not even parsed
  // for --help, --version or a usage error.
  splitting: true,
  chunkNames: 'chunks/[name]-[hash]',
  bundle: true,
  // The AWS SDK ships ES module builds: named exports survive code splitting and tree-shake better.
  mainFields: ['module', 'main'],
  // ws masks every client frame; the optional native bufferutil does it much faster
  // than ws's JavaScript loop. A native addon cannot be bundled: ws require()s it at
  // run time from node_modules and falls back to JavaScript when it is missing.
  external: ['bufferutil', 'utf-8-validate'],
  platform: 'node',
  format: 'esm',
  target: 'node20',
  // `node scripts/build.mjs --no-minify` keeps names readable in CPU profiles.
  minify: !process.argv.includes('--no-minify'),
  sourcemap: false,
  legalComments: 'none',
  logLevel: 'warning',
  // Some AWS SDK dependencies are CommonJS and call require(); give the ESM bundle one.
  banner: { js: "import { createRequire as __ssmCreateRequire } from 'node:module'; const require = __ssmCreateRequire(import.meta.url);" },
});
