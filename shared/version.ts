/** pgferry's own version and wire-protocol versions. */
import pkg from '../package.json';

export const PGFERRY_VERSION: string = pkg.version;
