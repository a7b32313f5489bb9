// Bundles the CLI into one ES module so `ssm-proxy` starts without resolving
// hundreds of files from node_modules on every connection.
import { build } from 'esbuild';

await build({
  entryPoints: ['src/cli/main.ts'],
  outfile: 'dist/ssm-proxy.mjs',
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  minify: false,
  sourcemap: false,
  legalComments: 'none',
  logLevel: 'warning',
  // Some AWS SDK dependencies are CommonJS and call require(); give the ESM bundle one.
  banner: { js: "import { createRequire as __ssmCreateRequire } from 'node:module'; const require = __ssmCreateRequire(import.meta.url);" },
});
