// The bundle's entry: dist/ssm-proxy.mjs, imported by bin/ssm-proxy.
import { main } from './loader.ts';

main();
